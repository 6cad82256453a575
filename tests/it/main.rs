//! Integration tests, one binary (each test binary links a large executable).
//!
//! Store tests run against every backend in `common::backends()`: local disk
//! always, and an S3-compatible server when `LEAFE_TEST_S3_BUCKET` (plus the
//! usual `AWS_*` variables) is set — `.ci/run` starts one on 127.0.0.1, and
//! under CI=true its absence is a failure, not a skip.

mod adapters;
mod ancestry;
mod cli;
mod common;
mod docs;
mod env;
mod experiment;
mod export;
mod fuzz;
mod gridworld;
mod harden;
mod interop;
mod llm;
mod polars_sql;
mod protocol;
mod query;
mod reflect;
mod s3_errors;
mod schedule;
mod spark;
mod stage1;
mod store;
mod text_policy;
mod textworld;
mod view;
