//! The `leafe` command line: clap definitions and thin glue from parsed
//! arguments to the library. Nothing here computes anything the library could.

pub mod catalog;
pub mod envs;
pub mod export;
pub mod levels;
pub mod pretrain;
pub mod run;
mod signals;
pub mod stage1;
pub mod stage2;
pub mod view;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::query::{OutputFormat, QuerySession, QueryText, load_query, write_batches};
use crate::store::{DEFAULT_STORE, Store};
use crate::synth::{SynthConfig, synthesize};

/// leafe — learn from failures: roll out, reflect, roll back, branch, distil.
///
/// Every rollout, reflection and branch is a row in Parquet tables under a
/// store (a local path or s3://bucket/prefix); SQL selects what to learn from.
#[derive(Debug, Parser)]
#[command(name = "leafe", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Memory the SQL engine may use (sorts, aggregations, joins) in every
    /// command that runs SQL, e.g. 512M, 2G; beyond it sorts and aggregations
    /// spill to disk, and a query that still cannot fit fails with a one-line
    /// error. Default: a quarter of the machine's memory, at most 2G.
    #[arg(long, global = true, env = "LEAFE_MEMORY_LIMIT", value_parser = crate::query::parse_size)]
    pub memory_limit: Option<usize>,
    /// Directory for the SQL engine's spill files (default: the OS temporary directory).
    #[arg(long, global = true, env = "LEAFE_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the store lives.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Store URL: a path, file:///abs/path, or s3://bucket/prefix (S3 settings
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP).
    #[arg(long, env = "LEAFE_STORE", default_value = DEFAULT_STORE)]
    pub store: String,
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.store)?)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try leafe in a minute: generate levels, pretrain a base policy, explore (reflect, roll back, branch), query the store.
    Demo(DemoArgs),
    /// Write synthetic trees of episodes (roots, reflections, branches) as one committed run.
    Synth(SynthArgs),
    /// Run SQL over the store's committed runs (tables: runs, episodes, steps, reflections, llm_calls).
    Sql(SqlArgs),
    /// List the runs in a store: kind, time, rows per table, committed or not.
    Runs(RunsArgs),
    /// Write the committed-files manifest (_leafe/catalog.json) that Spark, DuckDB and polars read to see exactly the committed runs.
    Catalog(catalog::CatalogArgs),
    /// Query files for other engines: `render` binds parameters and defines inputs as views (Spark, DuckDB); `list` shows them.
    #[command(subcommand)]
    Query(catalog::QueryCmd),
    /// Delete the files of runs that never committed (crashed or killed writers).
    Gc(GcArgs),
    /// Train a base policy by behaviour cloning from solver demonstrations.
    Pretrain(pretrain::PretrainArgs),
    /// Stage 1: roll out a model, reflect on failures, roll back and branch; write the trees (exit 1 when every task failed by the environment).
    Explore(stage1::ExploreArgs),
    /// Stage 2: train a model on explored runs, from SQL (leafe: counterfactual pairs + rehearsal; rft: rehearsal only; grpo: outcome RL on the same budget).
    Train(stage2::TrainArgs),
    /// Pass@k of a model on held-out levels (n samples per task; episodes written to the store).
    Eval(stage2::EvalArgs),
    /// The whole experiment: base, Stage 1, LEAFE / RFT / GRPO / ablation, Pass@k over seeds, report in reports/<run>/.
    Run(run::RunArgs),
    /// Failure analysis of explored runs: mistake categories, critical steps, fixes, success by depth (tables on stdout, report.md + SVG with --out).
    Report(ReportArgs),
    /// Export curated datasets for other trainers: TRL (messages, prompt-completion, DPO), LLaMA-Factory (ShareGPT), verl (Parquet).
    Export(export::ExportArgs),
    /// Sokoban levels: generate level files, solve them.
    #[command(subcommand)]
    Levels(levels::LevelsCmd),
    /// Environments as processes: `leafe env serve sokoban --levels FILE` speaks the env protocol on stdin/stdout.
    #[command(subcommand)]
    Env(envs::EnvCmd),
    /// Browse runs, task trees, episodes and failure patterns in a web page (read-only; --export writes a static copy).
    View(view::ViewArgs),
}

/// Arguments of `leafe report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Runs to analyse, as a SQL LIKE pattern on run_id.
    #[arg(long, default_value = "%")]
    pub run: String,
    /// Directory (path or s3://bucket/prefix) for report.md and the SVG charts.
    #[arg(long)]
    pub out: Option<String>,
    /// Directory of the query files; embedded copies serve for files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: std::path::PathBuf,
    /// Format of the tables on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

async fn report_cmd(a: ReportArgs) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let sections = crate::analysis::analyse(&store, &a.run, Some(&a.queries)).await?;
    if crate::analysis::is_empty(&sections) {
        eprintln!(
            "nothing to report: no episodes or reflections in runs matching `{}` in {}",
            a.run,
            store.url()
        );
        return Ok(1);
    }
    let mut out = std::io::stdout().lock();
    for s in &sections {
        if a.format == OutputFormat::Table {
            writeln!(out, "{}", s.title)?;
        }
        write_batches(&mut out, &s.batches, a.format)?;
    }
    drop(out);
    if let Some(dir) = &a.out {
        crate::analysis::write_report(dir, store.url(), &a.run, &sections).await?;
        eprintln!("wrote {dir}/report.md and its charts");
    }
    Ok(0)
}

/// Arguments of `leafe demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Levels to explore.
    #[arg(long, default_value_t = 128)]
    pub tasks: usize,
    /// Seed of level generation, pretraining and exploration.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `leafe synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Total episodes to write (roots and branches).
    #[arg(long, default_value_t = 1000)]
    pub episodes: u64,
    /// Master seed: the same seed writes the same rows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run id (letters, digits, `.`, `_`, `-`); default: synth-<seed>-<time>.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Deepest branch level of a tree.
    #[arg(long, default_value_t = 2)]
    pub max_depth: i32,
}

/// Arguments of `leafe sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The SQL to run (or use --file).
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub query: Option<String>,
    /// A query file, e.g. queries/failure_patterns.sql.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// A parameter the query file declares, as NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Arguments of `leafe runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Arguments of `leafe gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only collect runs whose writer started at least this long ago, so a live
    /// writer is never collected: e.g. 0s, 30m, 2h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub min_age: Duration,
    /// Report what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has an empty name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A query file, or, when the file is missing, the compiled-in query of
/// the same name (`queries/x.sql` outside the checkout), saying so.
fn sql_file(path: &std::path::Path) -> anyhow::Result<QueryText> {
    if !path.exists()
        && let Some(name) = path.file_stem().and_then(|s| s.to_str())
        && let Ok(q) = load_query(None, name)
    {
        eprintln!(
            "{} not found; using leafe's compiled-in query `{name}`",
            path.display()
        );
        return Ok(q);
    }
    Ok(QueryText::from_file(path)?)
}

/// Parses `90`, `90s`, `30m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 0s, 30m, 2h, 1d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

pub(crate) fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn default_run_id(kind: &str, seed: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{kind}-{seed}-{secs}-{:04x}", rand::random::<u16>())
}

/// Runs a parsed command; returns the process exit code (errors become 2 in main).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let defaults = crate::query::MemoryLimits::default();
    crate::query::MemoryLimits::set_process_default(crate::query::MemoryLimits {
        limit: cli.memory_limit.unwrap_or(defaults.limit),
        spill_dir: cli.spill_dir.clone(),
    });
    match cli.command {
        Command::Demo(a) => demo(a).await,
        Command::Synth(a) => {
            let store = a.store.open()?;
            let run_id = a.run_id.unwrap_or_else(|| default_run_id("synth", a.seed));
            let cfg = SynthConfig {
                episodes: a.episodes,
                seed: a.seed,
                max_depth: a.max_depth,
                ..SynthConfig::default()
            };
            let started = std::time::Instant::now();
            let s = synthesize(&store, &run_id, &cfg, &command_line())
                .await
                .with_context(|| format!("synth run `{run_id}` into {}", store.url()))?;
            println!(
                "committed run {run_id}: {} trees, {} episodes, {} steps, {} reflections in {:.2}s",
                s.trees,
                s.episodes,
                s.steps,
                s.reflections,
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Command::Sql(a) => {
            let store = a.store.open()?;
            let text = match &a.file {
                Some(f) => sql_file(f)?,
                None => QueryText::inline(a.query.as_deref().unwrap_or_default()),
            };
            let params: BTreeMap<String, String> = a.params.into_iter().collect();
            // A file that reads other queries (`-- @input NAME`) finds them
            // beside it, else embedded; a parameter may be one of theirs.
            let dir = a.file.as_deref().and_then(|f| f.parent());
            crate::query::check_params(&text, dir, &params)?;
            let bound = text.bind(&crate::query::own_values(&text, &params))?;
            let session = QuerySession::open(&store).await?;
            crate::query::register_inputs(&session, &text, dir, &params).await?;
            let mut out = std::io::BufWriter::new(signals::QuietStdout(std::io::stdout().lock()));
            session.write(&bound, &mut out, a.format).await?;
            out.flush().ok();
            Ok(0)
        }
        Command::Runs(a) => {
            let store = a.store.open()?;
            let runs = store
                .runs()
                .await
                .with_context(|| format!("listing runs of {}", store.url()))?;
            let batch = runs_batch(&runs);
            write_batches(&mut std::io::stdout().lock(), &[batch], a.format)?;
            Ok(0)
        }
        Command::Gc(a) => {
            let store = a.store.open()?;
            let r = store
                .gc(a.min_age, a.dry_run)
                .await
                .with_context(|| format!("gc of {}", store.url()))?;
            let verb = if a.dry_run { "would delete" } else { "deleted" };
            println!(
                "{verb} {} uncommitted run(s) [{}]: {} object(s), {} bytes",
                r.runs.len(),
                r.runs.join(", "),
                r.files,
                r.bytes
            );
            if !r.kept_young.is_empty() {
                println!(
                    "kept {} uncommitted run(s) younger than --min-age (maybe still writing): {}",
                    r.kept_young.len(),
                    r.kept_young.join(", ")
                );
            }
            Ok(0)
        }
        Command::Catalog(a) => catalog::catalog_cmd(a).await,
        Command::Query(cmd) => catalog::query_cmd(cmd).await,
        Command::Levels(cmd) => levels::run(cmd),
        Command::Env(cmd) => envs::run(cmd),
        Command::Pretrain(a) => pretrain::pretrain_cmd(a, cli.quiet).await,
        Command::Explore(a) => stage1::explore_cmd(a, cli.quiet).await,
        Command::Train(a) => stage2::train_cmd(a, cli.quiet).await,
        Command::Eval(a) => stage2::eval_cmd(a).await,
        Command::Run(a) => run::run_cmd(a, cli.quiet).await,
        Command::Export(a) => export::export_cmd(a, cli.quiet).await,
        Command::Report(a) => report_cmd(a).await,
        Command::View(a) => view::view_cmd(a).await,
    }
}

fn runs_batch(runs: &[crate::store::RunInfo]) -> arrow::record_batch::RecordBatch {
    use arrow::array::{
        ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray, UInt64Array,
    };
    use std::sync::Arc;
    let col = |t: &str| {
        Arc::new(UInt64Array::from_iter_values(
            runs.iter().map(|r| r.rows.get(t).copied().unwrap_or(0)),
        )) as ArrayRef
    };
    arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "run_id",
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| r.run_id.as_str()),
            )) as ArrayRef,
        ),
        (
            "kind",
            Arc::new(StringArray::from_iter_values(
                runs.iter().map(|r| r.kind.as_str()),
            )),
        ),
        (
            "committed",
            Arc::new(BooleanArray::from(
                runs.iter().map(|r| r.committed).collect::<Vec<_>>(),
            )),
        ),
        (
            "created_at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(runs.iter().map(|r| r.created_at_us))
                    .with_timezone("UTC"),
            ),
        ),
        ("episodes", col("episodes")),
        ("steps", col("steps")),
        ("reflections", col("reflections")),
        (
            "bytes",
            Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.bytes))),
        ),
    ])
    .expect("static schema")
}

async fn demo(a: DemoArgs) -> anyhow::Result<u8> {
    use crate::explore::ExploreConfig;
    use crate::pipeline::{ExploreJob, Shard};
    use crate::train::{PretrainConfig, pretrain_world, save_policy};
    use crate::worlds::SokobanWorld;
    use crate::worlds::sokoban::generate::{GeneratorConfig, generate};

    let store = a.store.open()?;
    let tag = default_run_id("demo", a.seed);
    // The default setting: 6×6 boards, 2 boxes, at least 5 pushes to solve.
    let setting = |count: usize, seed: u64| GeneratorConfig {
        width: 6,
        height: 6,
        boxes: 2,
        min_pushes: 5,
        count,
        seed,
        ..GeneratorConfig::default()
    };
    let train_levels = generate(&setting(300, a.seed.wrapping_mul(2) + 1))?;
    let explore_levels = generate(&setting(a.tasks, a.seed.wrapping_mul(2) + 2))?;
    println!(
        "1. Generated {} training and {} exploration levels (6×6, 2 boxes).",
        train_levels.len(),
        explore_levels.len()
    );

    let pcfg = PretrainConfig {
        seed: a.seed,
        ..PretrainConfig::default()
    };
    let (policy, report) = tokio::task::block_in_place(|| {
        pretrain_world(&SokobanWorld, &train_levels, &pcfg, |_, _, _| {})
    })?;
    let model = format!("base-{tag}");
    save_policy(
        &store,
        &model,
        &policy,
        serde_json::json!({ "demo": tag, "pretrain": pcfg }),
    )
    .await?;
    println!(
        "2. Pretrained model {model} by behaviour cloning on {} solver demonstrations (loss {:.3} → {:.3}).",
        report.samples,
        report.epoch_losses.first().copied().unwrap_or(f32::NAN),
        report.epoch_losses.last().copied().unwrap_or(f32::NAN)
    );

    let job = ExploreJob {
        run_id: tag.clone(),
        model: model.clone(),
        levels_source: "demo".into(),
        levels: explore_levels,
        split: Some("train".into()),
        shard: Shard::ALL,
        chunk_tasks: 64,
        config: ExploreConfig {
            seed: a.seed,
            ..ExploreConfig::default()
        },
        command_line: command_line(),
    };
    let s = job.run(&SokobanWorld, &store, &()).await?;
    println!(
        "3. Explored {} tasks: root rollouts solved {}, with reflection + rollback + branching {} ({} episodes, {} reflections, {} env steps).\n",
        s.tasks, s.root_solved, s.solved_tasks, s.episodes, s.reflections, s.env_steps
    );

    let session = QuerySession::open(&store).await?;
    let queries: [(&str, &str); 2] = [
        (
            "Failure patterns (queries/failure_patterns.sql):",
            "failure_patterns",
        ),
        (
            "Counterfactual training pairs per tree depth (what Stage 2 distils):",
            "pairs_by_depth",
        ),
    ];
    let run = BTreeMap::from([("run".to_string(), format!("{tag}.%"))]);
    for (title, name) in queries {
        let bound = load_query(None, name)?.bind(&run)?;
        let batches = session.collect(&bound).await?;
        println!("{title}");
        write_batches(&mut std::io::stdout().lock(), &batches, OutputFormat::Table)?;
    }
    println!(
        "Next: leafe sql --store {} \"SELECT origin, depth, COUNT(*), AVG(CAST(success AS INT)) FROM episodes GROUP BY 1, 2 ORDER BY 1, 2\"",
        store.url()
    );
    if s.episodes == 0 {
        bail!("the demo wrote no episodes");
    }
    Ok(0)
}

/// The whole `leafe` command line: parse the arguments, set up logging, run
/// the command, map the outcome to an exit code (0 success, 1 a requested
/// check failed, 2 error). The binary is this one call, so that a build
/// compiles the command line once, in the library.
pub fn main() -> std::process::ExitCode {
    // SIGPIPE stays ignored (Rust's default): a write to an environment
    // process that died is an error leafe records, not a silent kill. A
    // reader of stdout that goes away (`leafe sql … | head`) still ends
    // leafe quietly, as it would other Unix tools (`signals::quiet_on_broken_stdout`).
    signals::quiet_on_broken_stdout();
    let cli = <Cli as clap::Parser>::parse();
    let default_level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(async {
        signals::clean_up_on_interrupt();
        run(cli).await
    }) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) if signals::is_broken_stdout(&e) => signals::die_of_sigpipe(),
        Err(e) => {
            // One line: the context chain, each cause once (many errors already
            // quote their source), newlines folded.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::from(2)
        }
    }
}
