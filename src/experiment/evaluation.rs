//! The eval stage: Pass@k of a model on the held-out, shifted and hard
//! splits, each evaluation a run of the store (read back when done before).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;

use super::context::Replicate;
use super::{Cell, EvalConfig, ExpMethod};
use crate::eval::{EvalSpec, evaluate};
use crate::explore::World;
use crate::store::Store;
use crate::train::load_policy;
use crate::worlds::SokobanWorld;
use crate::worlds::sokoban::Level;

/// Evaluates method `m`'s model on the held-out, shifted and hard splits, each as
/// run `<run>.s<seed>.eval.<method>.<split>`; a split evaluated before is
/// read back from its run's commit marker. Returns one cell per split.
pub(super) async fn eval_stage(
    r: &mut Replicate<'_>,
    m: ExpMethod,
    train_env_steps: u64,
    simulated_steps: u64,
) -> anyhow::Result<Vec<Cell>> {
    let (cfg, ks, seed) = (r.cfg, r.ks, r.seed);
    let model = r.model(m);
    let splits = r.splits;
    // The three splits are evaluated at once, each as a task of its own (on
    // two cores, rollouts are one thread each). They share nothing but the
    // store, and each evaluation computes exactly what it would alone (its
    // own batches and seeds), so the figures do not depend on the overlap.
    let mut handles = Vec::new();
    let mut jobs: Vec<(&'static str, &Vec<Level>, Option<TextEval>)> = Vec::new();
    match (&cfg.text, &splits.text) {
        (Some(arena), Some(text)) => {
            for (split, env, tasks) in [
                ("heldout", &arena.env, &text.heldout),
                ("shifted", &arena.shifted_env, &text.shifted),
            ] {
                let t = TextEval {
                    arena: arena.clone(),
                    env: env.clone(),
                    tasks: tasks.clone(),
                };
                jobs.push((split, &splits.heldout, Some(t)));
            }
        }
        _ => {
            for (split, levels) in [
                ("heldout", &splits.heldout),
                ("shifted", &splits.shifted),
                ("hard", &splits.hard),
            ] {
                jobs.push((split, levels, None));
            }
        }
    }
    for (split, levels, text) in jobs {
        let job = EvalJob {
            text,
            store: r.store.clone(),
            run: r.run.to_string(),
            model: model.clone(),
            split,
            levels: levels.clone(),
            samples: cfg.eval.samples,
            ks: ks.to_vec(),
            eval_run: format!("{}.eval.{}.{split}", r.p, m.id()),
            seed,
            command_line: r.command_line.to_string(),
            eval: cfg.eval.clone(),
        };
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = eval_job(&job, &mut None).await;
            let tasks = job
                .text
                .as_ref()
                .map_or(job.levels.len(), |t| t.tasks.len());
            (job.split, tasks, t, result)
        }));
    }
    let mut cells = Vec::new();
    for h in handles {
        let (split, tasks, t, result) = h.await.context("an evaluation task panicked")?;
        let (pass, fresh) = result?;
        let first = ks.first().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
        let last = ks.last().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
        r.stage(
            &format!("eval {} {split}", m.id()),
            t,
            format!(
                "{}Pass@{} {first:.3}, Pass@{} {last:.3}",
                if fresh { "" } else { "done before: " },
                ks.first().unwrap_or(&1),
                ks.last().unwrap_or(&1)
            ),
        );
        cells.push(Cell {
            seed,
            method: m,
            split: split.to_string(),
            tasks,
            samples: cfg.eval.samples,
            pass_at_k: pass,
            train_env_steps,
            simulated_steps,
        });
    }
    Ok(cells)
}

/// The tasks of a text experiment's split and the environment they are in.
pub(super) struct TextEval {
    pub(super) arena: super::text::TextArena,
    /// The split's environment (`arena.env` or `arena.shifted_env`).
    pub(super) env: String,
    pub(super) tasks: Vec<String>,
}

/// One evaluation of a model on one split, with everything it needs owned
/// (so that splits can be evaluated concurrently).
pub(super) struct EvalJob {
    /// A text experiment's split (then `levels` is unused).
    pub(super) text: Option<TextEval>,
    pub(super) store: Store,
    pub(super) run: String,
    pub(super) model: String,
    pub(super) split: &'static str,
    pub(super) levels: Vec<Level>,
    pub(super) samples: usize,
    pub(super) ks: Vec<u64>,
    pub(super) eval_run: String,
    pub(super) seed: u64,
    pub(super) command_line: String,
    pub(super) eval: EvalConfig,
}

/// Pass@k of `model` on one split (name, levels) with `samples` samples
/// per task, as eval run `eval_run`, or read back from that run's commit
/// marker when it was evaluated before. `policy` caches the loaded model.
/// Returns Pass@k by k and whether it was evaluated now.
pub(super) async fn eval_split(
    r: &Replicate<'_>,
    policy: &mut Option<crate::policy::neural::NeuralPolicy>,
    model: &str,
    (split, levels): (&'static str, &[Level]),
    samples: usize,
    ks: &[u64],
    eval_run: &str,
) -> anyhow::Result<(BTreeMap<String, f64>, bool)> {
    let job = EvalJob {
        text: None,
        store: r.store.clone(),
        run: r.run.to_string(),
        model: model.to_string(),
        split,
        levels: levels.to_vec(),
        samples,
        ks: ks.to_vec(),
        eval_run: eval_run.to_string(),
        seed: r.seed,
        command_line: r.command_line.to_string(),
        eval: r.cfg.eval.clone(),
    };
    eval_job(&job, policy).await
}

impl EvalJob {
    /// What `evaluate` is asked for `levels`, cited as `source`.
    fn spec<'a, T>(&'a self, source: &'a str, levels: &'a [T]) -> EvalSpec<'a, T> {
        EvalSpec {
            model: &self.model,
            levels,
            levels_source: source,
            split: self.split,
            samples: self.samples,
            ks: &self.ks,
            temperature: self.eval.temperature,
            max_steps: self.eval.max_steps,
            seed: self.seed.wrapping_add(1_000_003),
            run_id: Some(&self.eval_run),
            command_line: &self.command_line,
            calls: None,
        }
    }
}

/// Runs (or reads back) one [`EvalJob`].
pub(super) async fn eval_job(
    job: &EvalJob,
    policy: &mut Option<crate::policy::neural::NeuralPolicy>,
) -> anyhow::Result<(BTreeMap<String, f64>, bool)> {
    let store = &job.store;
    if let Some(marker) = store.commit(&job.eval_run).await? {
        let pass =
            serde_json::from_value::<BTreeMap<String, f64>>(marker.meta["pass_at_k"].clone())
                .with_context(|| format!("reading Pass@k of {}", job.eval_run))?;
        return Ok((pass, false));
    }
    let source = format!("reports/{}/levels/{}.txt", job.run, job.split);
    let max_steps = job.eval.max_steps as usize;
    if let Some(text) = &job.text {
        let policy = crate::train::text::load_text_policy(store, &job.model).await?;
        let pool = text.arena.pool(&text.env, max_steps)?;
        let e = evaluate(
            store,
            &policy,
            &|| pool.make(),
            &job.spec(&source, &text.tasks),
        )
        .await?;
        return Ok((
            e.pass_at_k
                .iter()
                .map(|(k, p)| (k.to_string(), *p))
                .collect(),
            true,
        ));
    }
    if policy.is_none() {
        *policy = Some(load_policy(store, &job.model, SokobanWorld.encoder()).await?);
    }
    let policy = policy.as_ref().expect("loaded above");
    let e = evaluate(
        store,
        policy,
        &|| SokobanWorld.make_env(max_steps),
        &job.spec(&source, &job.levels),
    )
    .await?;
    Ok((
        e.pass_at_k
            .iter()
            .map(|(k, p)| (k.to_string(), *p))
            .collect(),
        true,
    ))
}
