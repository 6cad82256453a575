//! `leafe levels …`: generate Sokoban levels and solve level files;
//! generate gridworld task files.
//!
//! Thin: parse flags, build the library configs, call
//! [`crate::worlds::sokoban`], print rows to stdout (`--format table|json`).
//! Logs and progress go through `tracing` (stderr). Exit codes: 0 ok, 1 the
//! run worked but `--require-all` found an unsolved level; errors bubble up
//! as `anyhow` (mapped to exit 2 by `main`).

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::worlds::sokoban::generate::{GeneratorConfig, generate};
use crate::worlds::sokoban::levels::{read_level_file, write_level_file};
use crate::worlds::sokoban::solve::{SolverConfig, solve};

/// Work with Sokoban level files (Boxoban format).
#[derive(Debug, clap::Subcommand)]
pub enum LevelsCmd {
    /// Generate solvable levels (room carving + reverse play, verified by
    /// the solver) and write them as a Boxoban-format file.
    Generate(GenerateArgs),
    /// Solve every level of a Boxoban-format file and print, per level,
    /// whether it was solved, the moves (u d l r), moves and pushes, search
    /// nodes and time, then a summary.
    Solve(SolveArgs),
    /// Generate gridworld tasks (walls, traps `^`, a goal `G`, the agent
    /// `@`; every grid solvable, with a trap next to its shortest path) and
    /// write them as a grid file for `--env gridworld`.
    Gridworld(GridArgs),
}

/// Flags of `leafe levels gridworld`.
#[derive(Debug, clap::Args)]
pub struct GridArgs {
    /// Grid size WIDTHxHEIGHT including the outer walls (3x3 to 10x10).
    #[arg(long, default_value = "6x6", value_parser = parse_size)]
    pub size: (usize, usize),
    /// Traps per grid.
    #[arg(long, default_value_t = 3)]
    pub traps: usize,
    /// Probability that an inner cell is a wall.
    #[arg(long, default_value_t = 0.15)]
    pub wall_density: f64,
    /// Number of grids to write.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Seed: the same flags and seed give the same file, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file ("; N" header, grid, blank line).
    #[arg(long)]
    pub out: PathBuf,
}

/// Output format of row-printing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people, with a summary line.
    Table,
    /// One JSON object per line (JSON Lines), for other tools.
    Json,
}

/// Flags of `leafe levels generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Board size WIDTHxHEIGHT including the outer walls (at most 14x14).
    #[arg(long, default_value = "6x6", value_parser = parse_size)]
    pub size: (usize, usize),
    /// Boxes (and targets) per level.
    #[arg(long, default_value_t = 1)]
    pub boxes: usize,
    /// Number of levels to write.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Seed: the same flags and seed give the same file, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (Boxoban format: "; N" header, grid, blank line).
    #[arg(long)]
    pub out: PathBuf,
    /// Steps of reverse play from the solved state (more = more scrambled).
    #[arg(long, default_value_t = 300)]
    pub reverse_steps: usize,
    /// Keep only levels whose optimal solution has at least this many pushes.
    #[arg(long, default_value_t = 1)]
    pub min_pushes: u32,
    /// Keep only levels whose optimal solution has at most this many pushes.
    #[arg(long)]
    pub max_pushes: Option<u32>,
    /// Node budget of the verifying solver per candidate level.
    #[arg(long, default_value_t = 200_000)]
    pub solver_max_nodes: u64,
    /// Candidates tried per level before giving up with an error.
    #[arg(long, default_value_t = 1_000)]
    pub max_attempts: usize,
}

/// Flags of `leafe levels solve`.
#[derive(Debug, clap::Args)]
pub struct SolveArgs {
    /// Level file in Boxoban format.
    pub file: PathBuf,
    /// Time limit per level in milliseconds (0: no time limit).
    #[arg(long, alias = "limit", default_value_t = 1_000)]
    pub limit_ms: u64,
    /// Node limit per level (nodes expanded).
    #[arg(long, default_value_t = 2_000_000)]
    pub max_nodes: u64,
    /// Heuristic weight: 1 finds the fewest pushes; larger is faster, not optimal.
    #[arg(long, default_value_t = 1)]
    pub weight: u16,
    /// Solve only the first N levels of the file.
    #[arg(long)]
    pub take: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit with status 1 unless every level is solved.
    #[arg(long)]
    pub require_all: bool,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, e.g. 6x6, got {s:?}"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| format!("{v:?} in {s:?}: {e}"))
    };
    Ok((n(w)?, n(h)?))
}

/// Run a `levels` subcommand; returns the exit code.
pub fn run(cmd: LevelsCmd) -> anyhow::Result<u8> {
    match cmd {
        LevelsCmd::Generate(a) => run_generate(a),
        LevelsCmd::Solve(a) => run_solve(a),
        LevelsCmd::Gridworld(a) => run_gridworld(a),
    }
}

fn run_gridworld(a: GridArgs) -> anyhow::Result<u8> {
    use crate::worlds::gridworld::{GridworldGenConfig, generate, write_grid_file};
    let config = GridworldGenConfig {
        width: a.size.0,
        height: a.size.1,
        traps: a.traps,
        wall_density: a.wall_density,
        seed: a.seed,
        count: a.count,
    };
    let grids = generate(&config).context("generating grids")?;
    write_grid_file(&a.out, &grids).with_context(|| format!("writing {}", a.out.display()))?;
    tracing::info!(count = grids.len(), out = %a.out.display(), "wrote grids");
    Ok(0)
}

fn run_generate(a: GenerateArgs) -> anyhow::Result<u8> {
    let config = GeneratorConfig {
        width: a.size.0,
        height: a.size.1,
        boxes: a.boxes,
        count: a.count,
        seed: a.seed,
        reverse_steps: a.reverse_steps,
        min_pushes: a.min_pushes,
        max_pushes: a.max_pushes,
        solver_max_nodes: a.solver_max_nodes,
        max_attempts: a.max_attempts,
        ..GeneratorConfig::default()
    };
    tracing::info!(?config, "generating levels");
    let levels = generate(&config).context("generating levels")?;
    write_level_file(&a.out, &levels).with_context(|| format!("writing {}", a.out.display()))?;
    tracing::info!(count = levels.len(), out = %a.out.display(), "wrote levels");
    Ok(0)
}

/// One printed row of `solve --format json`.
#[derive(serde::Serialize)]
struct SolveRow<'a> {
    index: usize,
    task_id: String,
    solved: bool,
    status: &'a str,
    moves: &'a str,
    num_moves: usize,
    pushes: u32,
    nodes: u64,
    elapsed_ms: f64,
}

fn run_solve(a: SolveArgs) -> anyhow::Result<u8> {
    if a.weight == 0 {
        bail!("--weight must be at least 1");
    }
    let levels = read_level_file(&a.file).context("reading the level file")?;
    let config = SolverConfig {
        max_nodes: a.max_nodes,
        time_limit_ms: (a.limit_ms > 0).then_some(a.limit_ms),
        weight: a.weight,
    };
    let n = a.take.unwrap_or(levels.len()).min(levels.len());
    if a.format == Format::Table {
        println!(
            "{:>5}  {:<16}  {:<10}  {:>5}  {:>6}  {:>9}  {:>9}  solution",
            "index", "task_id", "status", "moves", "pushes", "nodes", "ms"
        );
    }
    let (mut solved, mut total_ms, mut total_nodes) = (0usize, 0.0f64, 0u64);
    for (index, level) in levels.iter().take(n).enumerate() {
        let sol = solve(level, &config);
        let row = SolveRow {
            index,
            task_id: level.task_id(),
            solved: sol.solved(),
            status: sol.solvability.as_str(),
            moves: &sol.moves,
            num_moves: sol.num_moves(),
            pushes: sol.pushes,
            nodes: sol.nodes,
            elapsed_ms: sol.elapsed_ms(),
        };
        solved += row.solved as usize;
        total_ms += row.elapsed_ms;
        total_nodes += row.nodes;
        match a.format {
            Format::Json => println!("{}", serde_json::to_string(&row)?),
            Format::Table => println!(
                "{:>5}  {:<16}  {:<10}  {:>5}  {:>6}  {:>9}  {:>9.2}  {}",
                row.index,
                row.task_id,
                row.status,
                row.num_moves,
                row.pushes,
                row.nodes,
                row.elapsed_ms,
                row.moves
            ),
        }
        tracing::debug!(index, status = row.status, "solved level");
    }
    let pct = if n == 0 {
        0.0
    } else {
        100.0 * solved as f64 / n as f64
    };
    let mean = if n == 0 { 0.0 } else { total_ms / n as f64 };
    if a.format == Format::Table {
        println!(
            "solved {solved}/{n} ({pct:.1}%), {total_nodes} nodes, {total_ms:.1} ms total, {mean:.2} ms per level"
        );
    } else {
        tracing::info!(solved, levels = n, total_nodes, total_ms, "summary");
    }
    Ok(if a.require_all && solved < n { 1 } else { 0 })
}
