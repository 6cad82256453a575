//! `leafe run`: the experiment end to end (see [`crate::experiment`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{StoreArgs, command_line};
use crate::experiment::{ExperimentConfig, Log, report, run_experiment};

/// The default experiment, shipped with the binary (`leafe run --print-config`
/// shows it; pass an edited copy with --config).
pub const DEFAULT_CONFIG: &str = include_str!("../experiment/default.toml");

/// The large experiment, shipped with the binary (`leafe run --preset
/// large`): the default with GRPO at 10× LEAFE's budget and a finer curve.
pub const LARGE_CONFIG: &str = include_str!("../experiment/large.toml");

/// The text experiment, shipped with the binary (`leafe run --preset
/// textworld`): the comparison on TextWorld games with the text policy.
pub const TEXTWORLD_CONFIG: &str = include_str!("../experiment/textworld.toml");

/// Arguments of `leafe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Experiment config (TOML; every field optional, see --print-config).
    /// Default: the shipped default experiment.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A shipped experiment: `default` (≈ 13 min on 2 cores in the dev
    /// profile, 7 in release), `large`
    /// (GRPO at 10× LEAFE's environment steps and a finer
    /// success-vs-steps curve; ≈ 4× as long), or `textworld` (the
    /// comparison on TextWorld games with the text policy; needs
    /// `textworld` in $LEAFE_PYTHON).
    #[arg(long, value_parser = ["default", "large", "textworld"])]
    pub preset: Option<String>,
    /// Run name: model, run and report ids derive from it. Default:
    /// `exp-<hash of the config>`, so rerunning the same config resumes it
    /// (or, if finished, rebuilds the report from the store).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Seeds run at once. Default: the machine's cores. Each seed's
    /// figures are the same whatever this is (every stage is seeded); more
    /// jobs take more memory (the default experiment peaked at 1.0 GiB one
    /// seed at a time, 1.3 GiB two at a time).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

struct Stderr;

impl Log for Stderr {
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// The config a run uses: the file, or the shipped default.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<ExperimentConfig> {
    match path {
        None => preset("default"),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("config {}", p.display()))
        }
    }
}

/// A shipped experiment by name: `default` or `large`.
pub fn preset(name: &str) -> anyhow::Result<ExperimentConfig> {
    let text = match name {
        "default" => DEFAULT_CONFIG,
        "large" => LARGE_CONFIG,
        "textworld" => TEXTWORLD_CONFIG,
        other => anyhow::bail!("no shipped experiment `{other}` (default, large, textworld)"),
    };
    toml::from_str(text).with_context(|| format!("the shipped {name} config"))
}

/// `leafe run`.
pub async fn run_cmd(a: RunArgs, quiet: bool) -> anyhow::Result<u8> {
    let cfg = match a.preset.as_deref() {
        Some(name) => preset(name)?,
        None => load_config(a.config.as_deref())?,
    };
    if a.print_config {
        print!("{}", toml::to_string(&cfg).context("printing the config")?);
        return Ok(0);
    }
    let store = a.store.open()?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("exp-{}", cfg.fingerprint()));
    let started = std::time::Instant::now();
    let log: &dyn Log = if quiet { &() } else { &Stderr };
    log.line(&format!(
        "experiment {name}: {} seed(s), methods {:?}, store {}",
        cfg.seeds.len(),
        cfg.evaluated(),
        store.url()
    ));
    let jobs = a.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let results = run_experiment(&store, &name, &cfg, &command_line(), jobs, log)
        .await
        .with_context(|| format!("experiment {name}"))?;
    let summary = report::summarize(&results);
    for (split, rows) in &summary {
        println!(
            "\n{split} ({} tasks, {} samples each; mean ± 95% CI over {} seed(s))",
            results.splits.get(split.as_str()).copied().unwrap_or(0),
            cfg.eval.samples,
            cfg.seeds.len()
        );
        print!("{:<22}{:>10}", "method", "env steps");
        for k in &results.ks {
            print!("{:>15}", format!("Pass@{k}"));
        }
        println!();
        for (m, per_k, steps) in rows {
            print!("{:<22}{:>10.0}", m.label(), steps);
            for (mean, std) in per_k {
                print!("{:>15}", format!("{mean:.3}±{std:.3}"));
            }
            println!();
        }
    }
    println!(
        "\nreport: {}/reports/{name}/report.md (results.json, pass_at_k_*.svg) — {:.0}s",
        store.url().trim_end_matches('/'),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
