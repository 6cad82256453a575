//! `leafe view`: a read-only web application over a store, from the binary
//! alone.
//!
//! Pages: the runs; a run's tasks (filtered, sorted, paged); a task's tree
//! of episodes with the reflections on its edges and the steps training
//! would use marked; an episode step by step with the LLM call behind each
//! step; a branch beside its parent; one task across two runs; the failure
//! patterns of `leafe report`; an experiment's report. Every answer comes
//! from a query file (`queries/view_*.sql` and the report's), run through a
//! [`crate::query::QuerySession`] under the process's memory limit, so a
//! user changes what a view shows by editing SQL.
//!
//! - [`api`]: the JSON endpoints, shared by the server and the export;
//! - [`server`]: HTTP (axum), the security headers, the token;
//! - [`filter`]: the tasks page's free condition, checked;
//! - [`export`]: the same views as static files;
//! - [`assets`]: the page (plain JavaScript modules, no build step).

pub mod api;
pub mod assets;
pub mod export;
pub mod filter;
pub mod server;

pub use api::{Api, ApiError, Params};
pub use export::{ExportSummary, export};
pub use server::{ServeOptions, serve};
