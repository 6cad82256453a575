//! Synthetic experience: realistic-looking LEAFE trees written as one run, so
//! the store, the queries and the benchmarks can be exercised without a policy.
//!
//! Shape of what it writes (all seeded; the same seed gives the same rows, only
//! timestamps differ): per task a root episode; a failed root gets a reflection
//! that names a rollback step tau (flagging the mistake on that step when the
//! category is an irreversible one), then 2–3 branches that store only their own
//! steps t >= tau; failed branches are reflected on again up to `max_depth`.
//! Exactly `episodes` episodes are written (the last tree may be cut short).
//! Observations are 6×6 boards with a moving player, so text columns compress
//! the way real ones do.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::store::{
    EpisodeBatchBuilder, EpisodeRow, ReflectionBatchBuilder, ReflectionRow, Result, RunSpec,
    StepBatchBuilder, StepRow, Store, Table, now_us,
};

/// Settings of `leafe synth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Total episodes to write (roots and branches).
    pub episodes: u64,
    /// Master seed.
    pub seed: u64,
    /// Probability that a root episode succeeds.
    pub root_success: f64,
    /// Probability that a branch succeeds at depth 1 (rises by 0.1 per level).
    pub branch_success: f64,
    /// Deepest branch level.
    pub max_depth: i32,
    /// Step limit of an episode.
    pub max_steps: i32,
    /// Rows per batch handed to the writer.
    pub batch_rows: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            episodes: 1000,
            seed: 0,
            root_success: 0.3,
            branch_success: 0.45,
            max_depth: 2,
            max_steps: 60,
            batch_rows: 64 * 1024,
        }
    }
}

/// What a synth run wrote.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SynthSummary {
    /// Episodes written.
    pub episodes: u64,
    /// Steps written.
    pub steps: u64,
    /// Reflections written.
    pub reflections: u64,
    /// Trees (tasks) started.
    pub trees: u64,
}

const ACTIONS: [&str; 4] = ["up", "down", "left", "right"];
const CATEGORIES: [(&str, &str, &str); 4] = [
    (
        "dead_square",
        "pushed a box into a corner that is not a target; it can never be moved to a target again",
        "before pushing, check that the square behind the box is a target or has a way out",
    ),
    (
        "frozen_boxes",
        "pushed a box against another box along a wall, freezing both",
        "push the boxes one at a time and keep a free square beside each",
    ),
    (
        "loop",
        "walked back and forth without pushing any box",
        "head for the nearest box that can reach a target",
    ),
    (
        "step_limit",
        "ran out of steps after a long detour",
        "take the shortest path to the box before pushing",
    ),
];

struct Pending {
    id: i64,
    depth: i32,
    length: i32,
    tau: i32,
    category: usize,
}

struct Writer<'a> {
    rng: ChaCha8Rng,
    cfg: &'a SynthConfig,
    episodes: EpisodeBatchBuilder,
    steps: StepBatchBuilder,
    reflections: ReflectionBatchBuilder,
    summary: SynthSummary,
    obs: String,
}

impl Writer<'_> {
    fn board(&mut self, task: u64) -> Vec<u8> {
        // A per-task 6×6 room: border walls, a few inner walls, a box, a target.
        let mut r =
            ChaCha8Rng::seed_from_u64(self.cfg.seed ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut b = vec![b' '; 42];
        for y in 0..6 {
            for x in 0..6 {
                let edge = x == 0 || y == 0 || x == 5 || y == 5;
                b[y * 7 + x] = if edge || r.random_bool(0.12) {
                    b'#'
                } else {
                    b' '
                };
            }
            b[y * 7 + 6] = b'\n';
        }
        b[2 * 7 + 2] = b'$';
        b[3 * 7 + 3] = b'.';
        b
    }

    /// Emits one episode's own steps [start, length) and its row.
    #[allow(clippy::too_many_arguments)]
    fn episode(
        &mut self,
        board: &[u8],
        row: EpisodeRow<'_>,
        start: i32,
        mistake_at: Option<(i32, usize)>,
    ) {
        let mut ret = 0.0f64;
        for t in start..row.length {
            self.obs.clear();
            let mut b = board.to_vec();
            let cell = [8usize, 9, 10, 11, 15, 18, 22, 25, 29, 30, 31, 32]
                [(t as usize + row.episode_id as usize) % 12];
            b[cell] = b'@';
            self.obs.push_str(std::str::from_utf8(&b).expect("ascii"));
            let action = self.rng.random_range(0..4usize);
            let last = t + 1 == row.length;
            let mistake = mistake_at
                .filter(|&(at, c)| at == t && c < 2)
                .map(|(_, c)| CATEGORIES[c].0);
            let (feedback, reward) = if last && row.success {
                ("pushed the last box onto a target: solved", 10.9f32)
            } else if let Some(m) = mistake {
                if m == "dead_square" {
                    ("pushed a box onto a dead square (irreversible)", -0.1)
                } else {
                    ("froze a group of boxes (irreversible)", -0.1)
                }
            } else {
                match self.rng.random_range(0..6) {
                    0 => ("blocked by a wall", -0.1),
                    1 => ("pushed a box", -0.1),
                    _ => (
                        ["moved up", "moved down", "moved left", "moved right"][action],
                        -0.1,
                    ),
                }
            };
            ret += reward as f64;
            self.steps.push(&StepRow {
                episode_id: row.episode_id,
                t,
                observation: &self.obs,
                state: None,
                action: action as i32,
                action_text: ACTIONS[action],
                reward,
                done: last,
                feedback,
                mistake,
                log_prob: -self.rng.random_range(0.02f32..2.0),
                experience_in_context: row.experience_in_context,
            });
            self.summary.steps += 1;
        }
        // The return covers the full trajectory: a branch inherits its prefix's
        // per-step cost.
        let row = EpisodeRow {
            episode_return: ret - 0.1 * start as f64,
            ..row
        };
        self.episodes.push(&row);
        self.summary.episodes += 1;
    }
}

/// Writes a synthetic run into `store` under `run_id` and commits it.
pub async fn synthesize(
    store: &Store,
    run_id: &str,
    cfg: &SynthConfig,
    command_line: &str,
) -> Result<SynthSummary> {
    let spec = RunSpec {
        run_id: run_id.to_string(),
        kind: "synth".into(),
        seed: Some(cfg.seed as i64),
        config: serde_json::to_value(cfg).expect("config serializes"),
        command_line: command_line.to_string(),
        meta: serde_json::Value::Null,
    };
    let mut run = store.begin_run(spec).await?;
    let mut w = Writer {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        cfg,
        episodes: EpisodeBatchBuilder::default(),
        steps: StepBatchBuilder::default(),
        reflections: ReflectionBatchBuilder::default(),
        summary: SynthSummary::default(),
        obs: String::with_capacity(64),
    };
    let now = now_us();
    let mut next_id = 0i64;
    let mut next_reflection = 0i64;
    let mut task = 0u64;
    while w.summary.episodes < cfg.episodes {
        let board = w.board(task);
        let task_id = format!(
            "synth-{:016x}",
            cfg.seed
                .wrapping_mul(31)
                .wrapping_add(task)
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
        let source = format!("synth#{task}");
        let split = if task % 10 == 9 { "test" } else { "train" };
        task += 1;
        w.summary.trees += 1;

        let root_id = next_id;
        next_id += 1;
        let length = w.rng.random_range(8..=cfg.max_steps);
        let success = w.rng.random_bool(cfg.root_success);
        let tau = w.rng.random_range(0..length);
        let category = w.rng.random_range(0..CATEGORIES.len());
        let base = EpisodeRow {
            episode_id: root_id,
            tree_id: root_id,
            parent_episode_id: None,
            reflection_id: None,
            rollback_step: None,
            depth: 0,
            sample_index: 0,
            origin: "root",
            task_id: &task_id,
            task_source: Some(&source),
            split: Some(split),
            policy: "synth-policy",
            experience_in_context: false,
            success,
            status: if success { "solved" } else { "step_limit" },
            episode_return: 0.0,
            length,
            interaction_cost: length as i64,
            created_at_us: now,
        };
        w.episode(
            &board,
            base.clone(),
            0,
            (!success).then_some((tau, category)),
        );
        let mut failed = Vec::new();
        if !success {
            failed.push(Pending {
                id: root_id,
                depth: 0,
                length,
                tau,
                category,
            });
        }
        while let Some(parent) = failed.pop() {
            if parent.depth >= cfg.max_depth || w.summary.episodes >= cfg.episodes {
                continue;
            }
            let reflection_id = next_reflection;
            next_reflection += 1;
            let (category, diagnosis, fix) = CATEGORIES[parent.category];
            let critical = w.rng.random_range(0..4usize);
            let diagnosis = format!("step {}: {diagnosis}", parent.tau);
            w.reflections.push(&ReflectionRow {
                reflection_id,
                episode_id: parent.id,
                tree_id: root_id,
                trigger_step: parent.length - 1,
                rollback_step: parent.tau,
                critical_action: Some(critical as i32),
                critical_action_text: Some(ACTIONS[critical]),
                category,
                diagnosis: &diagnosis,
                fix,
                suggested_actions: Some(ACTIONS[(critical + 1) % 4]),
                reflector: "synth-reflector",
                created_at_us: now,
            });
            w.summary.reflections += 1;
            let branches = w.rng.random_range(2..=3);
            for b in 0..branches {
                if w.summary.episodes >= cfg.episodes {
                    break;
                }
                let id = next_id;
                next_id += 1;
                let depth = parent.depth + 1;
                let length = (parent.tau + w.rng.random_range(4..=40))
                    .min(cfg.max_steps.max(parent.tau + 1));
                let p = (cfg.branch_success + 0.1 * (depth - 1) as f64).clamp(0.0, 1.0);
                let success = w.rng.random_bool(p);
                let tau = w.rng.random_range(parent.tau..length);
                let category = w.rng.random_range(0..CATEGORIES.len());
                let row = EpisodeRow {
                    episode_id: id,
                    parent_episode_id: Some(parent.id),
                    reflection_id: Some(reflection_id),
                    rollback_step: Some(parent.tau),
                    depth,
                    sample_index: b,
                    origin: "branch",
                    experience_in_context: true,
                    success,
                    status: if success { "solved" } else { "step_limit" },
                    length,
                    interaction_cost: (length - parent.tau) as i64,
                    ..base.clone()
                };
                w.episode(
                    &board,
                    row,
                    parent.tau,
                    (!success).then_some((tau, category)),
                );
                if !success {
                    failed.push(Pending {
                        id,
                        depth,
                        length,
                        tau,
                        category,
                    });
                }
            }
        }
        if w.steps.len() >= cfg.batch_rows {
            let b = w.steps.finish();
            run.write(Table::Steps, &b).await?;
        }
        if w.episodes.len() >= cfg.batch_rows {
            let b = w.episodes.finish();
            run.write(Table::Episodes, &b).await?;
            let b = w.reflections.finish();
            run.write(Table::Reflections, &b).await?;
        }
    }
    let (s, e, r) = (
        w.steps.finish(),
        w.episodes.finish(),
        w.reflections.finish(),
    );
    run.write(Table::Steps, &s).await?;
    run.write(Table::Episodes, &e).await?;
    run.write(Table::Reflections, &r).await?;
    run.commit().await?;
    Ok(w.summary)
}
