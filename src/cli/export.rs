//! `leafe export`: curated datasets for other trainers (see [`crate::export`]).

use std::path::PathBuf;

use clap::Args;

use super::StoreArgs;
use crate::explore::World;
use crate::export::{Dataset, ExportError, ExportOptions, Format, export};
use crate::query::QueryText;
use crate::with_world;

/// Arguments of `leafe export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// counterfactual: successful branches, history up to tau → corrected
    /// continuation; rehearsal: successful trajectories; critical: each
    /// reflection's critical step → the fix that worked (or the reflector's
    /// suggestion); preference: corrected (chosen) vs critical (rejected) action.
    #[arg(long, value_enum)]
    pub dataset: Dataset,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Output file: a path, file:///abs/path or s3://bucket/key.
    #[arg(long)]
    pub out: String,
    /// Runs to export, as a SQL LIKE pattern on run_id.
    #[arg(long, default_value = "%")]
    pub runs: String,
    /// Keep only rows matching this SQL condition on the query's columns,
    /// e.g. "category = 'dead_square'" or "depth >= 2".
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// A query file replacing the default export query (it must return the
    /// default query's columns; see queries/export_*.sql).
    #[arg(long)]
    pub query: Option<PathBuf>,
    /// Directory of the default export queries; embedded copies serve for
    /// files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
    /// Add the experience (diagnosis + fix) as a separate `experience` field;
    /// it is never part of the prompt.
    #[arg(long)]
    pub include_experience: bool,
    /// Drop examples whose prompt repeats an earlier one.
    #[arg(long)]
    pub dedup: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// Examples read per query (a run is exported in windows of about this
    /// many; lower it to use less memory).
    #[arg(long, default_value_t = crate::export::WINDOW_EXAMPLES)]
    pub window: usize,
    /// System prompt of every rebuilt example [default: what the runs
    /// recorded of their environment (an environment process's `hello`),
    /// else the built-in environment's rules].
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// The environment the runs explored: sokoban, gridworld, `cmd:…` or
    /// `textworld:…`; sets the default system prompt and verl's data_source
    /// [default: the one the runs recorded, else sokoban].
    #[arg(long)]
    pub env: Option<String>,
    /// Whose prompts the chat formats carry: `recorded`, the LLM policy's
    /// own requests from llm_calls (the target `{"action": …}` as it
    /// replies: fine-tune the model that explored and serve it as leafe
    /// does); `rebuilt`, the history as chat turns and the bare action;
    /// `auto`, recorded where the runs have them (runs of an LLM policy).
    #[arg(long, value_enum, default_value_t = crate::export::Prompts::Auto)]
    pub prompts: crate::export::Prompts,
}

/// `leafe export`.
pub async fn export_cmd(a: ExportArgs, quiet: bool) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let query = a.query.as_deref().map(QueryText::from_file).transpose()?;
    let recorded = crate::export::recorded_env_description(&store, &a.runs).await?;
    let env = a
        .env
        .clone()
        .or_else(|| recorded.as_ref().map(|d| d.name.clone()))
        .unwrap_or_else(|| "sokoban".into());
    let system_prompt = match (&a.system_prompt, recorded.as_ref().and_then(|d| d.prompt())) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p,
        (None, None) => match a
            .env
            .as_deref()
            .map(|e| crate::setup::process_env(Some(e)))
            .transpose()?
            .flatten()
        {
            Some(p) => p.system_prompt.to_string(),
            None => match with_world!(env.as_str(), |w| w.system_prompt().to_string()) {
                Ok(p) => p,
                // A name the runs recorded for their own environment.
                Err(_) if recorded.is_some() => crate::setup::PROCESS_SYSTEM_PROMPT.to_string(),
                Err(e) => return Err(anyhow::Error::msg(e)),
            },
        },
    };
    // verl's data_source names the environment, not its command line.
    let env = match env.split_once(':') {
        Some((kind @ ("cmd" | "textworld"), _)) => recorded
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| kind.to_string()),
        _ => env,
    };
    let opts = ExportOptions {
        dataset: a.dataset,
        format: a.format,
        runs: a.runs.clone(),
        filter: a.filter.clone(),
        query,
        queries_dir: Some(a.queries.clone()),
        include_experience: a.include_experience,
        dedup: a.dedup,
        system_prompt,
        env,
        window: a.window,
        prompts: a.prompts,
    };
    let pb = super::stage1::bar(0, quiet);
    pb.set_message("examples");
    let started = std::time::Instant::now();
    match export(&store, &opts, &a.out, a.overwrite, |s| {
        pb.set_position(s.examples)
    })
    .await
    {
        Ok(s) => {
            pb.finish_and_clear();
            println!(
                "wrote {} {} examples as {:?} to {} from {} run(s) ({} duplicates dropped, {} skipped) in {:.1}s",
                s.examples,
                a.dataset.name(),
                a.format,
                a.out,
                s.runs,
                s.duplicates,
                s.skipped,
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        Err(ExportError::Empty(msg)) => {
            pb.finish_and_clear();
            eprintln!("{msg}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
