//! # leafe
//!
//! LEAFE ("Learning Feedback-Grounded Agency from Reflective Experience") as a
//! data-centric system: every rollout, reflection and branch is a row in Arrow /
//! Parquet tables on local disk or S3, SQL in DataFusion selects training data,
//! and a training stage distils it into a policy's weights.
//!
//! ```text
//! levels/tasks ─► env ─► explore (rollout · reflect · branch) ─► store (Parquet on local/S3)
//!                                                                   │
//!                   eval (Pass@k) ◄─ train (burn) ◄─ query (DataFusion SQL, queries/*.sql)
//!                                                                   │
//!                                                                export (curated datasets)
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | [`env`] | the `Env` trait and Sokoban: rules, level files, generator, deadlocks, solver |
//! | [`policy`] | the `Policy` trait; the burn MLP policy, batched sampling, checkpoint bytes |
//! | [`explore`] | Stage 1: reflector, experience guidance, rollback tree search, plain rollouts |
//! | [`store`] | table schemas (`schemas/`), streaming Parquet writers, the commit protocol, gc, models |
//! | [`query`] | a DataFusion session over committed runs; `queries/*.sql` with parameters |
//! | [`synth`] | synthetic trees of episodes, for trying and benchmarking the store |
//! | [`train`] | burn training: behaviour cloning, LEAFE / RFT distillation from SQL, GRPO |
//! | [`eval`] | Pass@k, eval episodes |
//! | [`analysis`] | `leafe report`: failure analysis tables and charts from `queries/` |
//! | [`export`] | `leafe export`: datasets for TRL, LLaMA-Factory, verl (JSONL / Parquet) |
//! | [`experiment`] | `leafe run`: the whole comparison over seeds, the report |
//! | [`pipeline`] | the exploration job: chunks, resume, shards |
//! | [`cli`] | the `leafe` commands (thin) |
//!
//! A module uses only the ones above it in the data flow; only `store` and
//! `query` know about object_store and DataFusion.

pub mod analysis;
pub mod cli;
pub mod env;
pub mod eval;
pub mod experiment;
pub mod explore;
pub mod export;
pub mod pipeline;
pub mod policy;
pub mod query;
pub mod reflect;
pub mod store;
pub mod synth;
pub mod train;
