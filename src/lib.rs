//! # leafe
//!
//! LEAFE ("Learning Feedback-Grounded Agency from Reflective Experience") as a
//! data-centric system: every rollout, reflection and branch is a row in Arrow /
//! Parquet tables on local disk or S3, SQL in DataFusion selects training data,
//! and a training stage distils it into a policy's weights.
//!
//! ```text
//! tasks ─► env ─► explore (rollout · reflect · branch) ─► store (Parquet on local/S3)
//!           ▲        ▲             ▲                            │
//!       Sokoban   policy:       reflector:                       │
//!       gridworld burn MLP      rules (per env)                  │
//!                   eval (Pass@k) ◄─ train (burn) ◄─ query (DataFusion SQL, queries/*.sql)
//!                                                                   │
//!                                                                export (curated datasets)
//! ```
//!
//! The ground floor is the store (tables, commit protocol; knows no
//! environment) and the boundary traits: [`env::Env`], [`policy::Policy`]
//! (with [`policy::Encoder`] and [`policy::Guide`] for networks) and
//! [`reflect::Reflector`]. Everything above is generic over them; each
//! environment is a module of its own under [`worlds`] that carries what is
//! its own (rules, tasks, encoding, guide, rule-based reflector), with the
//! registry of built-in worlds; only the CLI and the experiment pick one.
//!
//! | module | owns |
//! | --- | --- |
//! | [`store`] | table schemas (`schemas/`), streaming Parquet writers, the commit protocol, gc, models |
//! | [`env`] | the `Env` boundary: text observations, string actions, transitions with feedback and mistake flags, rollback by snapshot or replay |
//! | [`reflect`] | the `Reflector` boundary, `Experience`, a reflector from feedback alone |
//! | [`policy`] | the `Policy` boundary over histories with optional experience; `Encoder`, `Guide`; the burn MLP ([`policy::neural`]) |
//! | [`explore`] | Stage 1 for any env/policy/reflector: tree search, plain rollouts, the one mapping to store rows, `World` |
//! | [`query`] | a DataFusion session over committed runs; `queries/*.sql` with parameters |
//! | [`synth`] | synthetic trees of episodes, for trying and benchmarking the store |
//! | [`train`] | burn training: behaviour cloning, LEAFE / RFT distillation from SQL, GRPO |
//! | [`eval`] | Pass@k, eval episodes |
//! | [`analysis`] | `leafe report`: failure analysis tables and charts from `queries/` |
//! | [`export`] | `leafe export`: datasets for TRL, LLaMA-Factory, verl (JSONL / Parquet) |
//! | [`pipeline`] | the exploration job: chunks, resume, shards |
//! | [`worlds`] | the built-in environments, each a module with what it brings: [`worlds::sokoban`], [`worlds::gridworld`]; the `World` registry (`--env`) |
//! | [`experiment`] | `leafe run`: the whole comparison over seeds on Sokoban, the report |
//! | [`setup`] | what a command runs with: config files, environment specs (`cmd:`, `textworld:`), task ids, recorded LLM replies |
//! | [`view`] | `leafe view`: a read-only web page over the store (runs, trees, episodes, patterns), its static export |
//! | [`cli`] | the `leafe` commands (thin) |
//!
//! A module uses only the ones before it in this table (store, env,
//! reflect, policy at the bottom; worlds use the boundaries and `explore`'s
//! `World`); only `store` and `query` know about object_store and
//! DataFusion; only `policy` and `train` import burn.

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
pub mod setup;
pub mod store;
pub mod synth;
pub mod train;
pub mod view;
pub mod worlds;
