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

use std::borrow::Cow;

use crate::env::{ActionSpace, Observation, Step, Transition};
use crate::explore::rows::TreeBatcher;
use crate::explore::{EpisodeOut, Origin, ReflectionOut, TaskTree};
use crate::reflect::Experience;
use crate::store::{Result, RunSpec, Store};

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
    depth: usize,
    length: usize,
    tau: usize,
    category: usize,
}

/// What an episode is, before its steps are drawn.
struct Shape {
    id: i64,
    parent: Option<(i64, i64, usize)>,
    depth: usize,
    sample_index: usize,
    success: bool,
    length: usize,
}

struct Writer<'a> {
    rng: ChaCha8Rng,
    cfg: &'a SynthConfig,
    summary: SynthSummary,
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

    /// Draws one episode's own steps [start, length) as explore's records.
    fn episode(
        &mut self,
        board: &[u8],
        shape: Shape,
        mistake_at: Option<(usize, usize)>,
    ) -> EpisodeOut {
        let start = shape.parent.map_or(0, |p| p.2);
        let mut ret = 0.0f64;
        let mut steps = Vec::with_capacity(shape.length - start);
        for t in start..shape.length {
            let mut b = board.to_vec();
            let cell =
                [8usize, 9, 10, 11, 15, 18, 22, 25, 29, 30, 31, 32][(t + shape.id as usize) % 12];
            b[cell] = b'@';
            let observation = String::from_utf8(b).expect("ascii");
            let action = self.rng.random_range(0..4usize);
            let last = t + 1 == shape.length;
            let mistake = mistake_at
                .filter(|&(at, c)| at == t && c < 2)
                .map(|(_, c)| CATEGORIES[c].0);
            let (feedback, reward) = if last && shape.success {
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
            let mistakes: Vec<Cow<'static, str>> = mistake.map(Cow::Borrowed).into_iter().collect();
            steps.push(Step {
                t,
                observation: Observation::text(observation),
                action: ACTIONS[action].to_string(),
                action_index: Some(action),
                log_prob: -self.rng.random_range(0.02f32..2.0),
                call: None,
                legal: None,
                transition: Transition {
                    reward,
                    status: crate::env::Status::Running,
                    feedback: feedback.to_string(),
                    flags: mistakes.clone(),
                    mistakes,
                    info: None,
                },
            });
            self.summary.steps += 1;
        }
        self.summary.episodes += 1;
        EpisodeOut {
            id: shape.id,
            parent: shape.parent.map(|p| p.0),
            reflection: shape.parent.map(|p| p.1),
            rollback_step: shape.parent.map(|p| p.2),
            rollback: None,
            replayed: 0,
            depth: shape.depth,
            sample_index: shape.sample_index,
            origin: if shape.parent.is_some() {
                Origin::Branch
            } else {
                Origin::Root
            },
            experience_in_context: shape.parent.is_some(),
            success: shape.success,
            status: if shape.success {
                "solved"
            } else {
                "step_limit"
            },
            // The return covers the full trajectory: a branch inherits its
            // prefix's per-step cost.
            episode_return: ret - 0.1 * start as f64,
            length: shape.length,
            steps,
        }
    }
}

/// Writes a synthetic run into `store` under `run_id` and commits it. The
/// trees go through the same mapping to rows as explored ones
/// ([`TreeBatcher`]).
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
        summary: SynthSummary::default(),
    };
    let mut batcher = TreeBatcher::new(cfg.batch_rows, ActionSpace::choice(&ACTIONS));
    let max_steps = cfg.max_steps.max(1) as usize;
    let max_depth = cfg.max_depth.max(0) as usize;
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
        let split = if task % 10 == 9 { "test" } else { "train" };
        let mut tree = TaskTree {
            task_index: task,
            task_id,
            task_source: format!("synth#{task}"),
            episodes: Vec::new(),
            reflections: Vec::new(),
            interaction_cost: 0,
            env_error: None,
        };
        task += 1;
        w.summary.trees += 1;

        let root_id = next_id;
        next_id += 1;
        let length = w.rng.random_range(8..=max_steps.max(8));
        let success = w.rng.random_bool(cfg.root_success);
        let tau = w.rng.random_range(0..length);
        let category = w.rng.random_range(0..CATEGORIES.len());
        let root = Shape {
            id: root_id,
            parent: None,
            depth: 0,
            sample_index: 0,
            success,
            length,
        };
        let e = w.episode(&board, root, (!success).then_some((tau, category)));
        tree.episodes.push(e);
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
            if parent.depth >= max_depth || w.summary.episodes >= cfg.episodes {
                continue;
            }
            let reflection_id = next_reflection;
            next_reflection += 1;
            let (category, diagnosis, fix) = CATEGORIES[parent.category];
            let critical = w.rng.random_range(0..4usize);
            tree.reflections.push(ReflectionOut {
                id: reflection_id,
                episode: parent.id,
                experience: Experience {
                    trigger_step: parent.length - 1,
                    tau: parent.tau,
                    critical_action: Some(ACTIONS[critical].to_string()),
                    category: category.to_string(),
                    irreversible: parent.category < 2,
                    diagnosis: format!("step {}: {diagnosis}", parent.tau),
                    fix: fix.to_string(),
                    suggested_actions: vec![ACTIONS[(critical + 1) % 4].to_string()],
                    written_by: None,
                    call: None,
                },
                reflector: "synth-reflector".into(),
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
                let length =
                    (parent.tau + w.rng.random_range(4..=40)).min(max_steps.max(parent.tau + 1));
                let p = (cfg.branch_success + 0.1 * (depth - 1) as f64).clamp(0.0, 1.0);
                let success = w.rng.random_bool(p);
                let tau = w.rng.random_range(parent.tau..length);
                let category = w.rng.random_range(0..CATEGORIES.len());
                let shape = Shape {
                    id,
                    parent: Some((parent.id, reflection_id, parent.tau)),
                    depth,
                    sample_index: b,
                    success,
                    length,
                };
                let e = w.episode(&board, shape, (!success).then_some((tau, category)));
                tree.episodes.push(e);
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
        tree.interaction_cost = tree.episodes.iter().map(|e| e.interaction_cost()).sum();
        batcher
            .push(&mut run, &tree, "synth-policy", Some(split))
            .await?;
    }
    batcher.flush(&mut run).await?;
    run.commit().await?;
    Ok(w.summary)
}
