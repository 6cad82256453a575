//! The reflector boundary: reads a trajectory with the environment's
//! feedback, names the critical mistake step `tau` and writes an
//! [`Experience`] (diagnosis + fix) that Stage 1 puts in context when it
//! rolls back to `tau`.
//!
//! This module owns the [`Reflector`] trait, its verdict ([`Experience`]),
//! the settings of the built-in rule-based reflectors ([`ReflectorConfig`])
//! and one reflector that works for every environment,
//! [`FeedbackReflector`]: the first owned step the environment flagged as a
//! mistake. Environment-specific reflectors live with their environment
//! (`worlds::sokoban::reflect`); an LLM reflector implements the same trait.
//!
//! Invariants of every verdict: `min_tau <= tau < steps.len()` (a rollback
//! restarts from the state before step `tau`, inside the part of the
//! trajectory the episode owns); a reflector is deterministic for the same
//! input. Depends only on [`crate::env`].

use crate::env::{Observation, Status, Step};

/// The verdict of a reflection: where to roll back to and what to do there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experience {
    /// The number of steps in the trajectory when the reflection ran.
    pub trigger_step: usize,
    /// The rollback step: branches restart from the state *before* step
    /// `tau`.
    pub tau: usize,
    /// The action at `tau` that the experience warns against, if any (an
    /// action as the environment writes it).
    pub critical_action: Option<String>,
    /// What kind of mistake it was, as a stable snake_case name the
    /// reflector defines (`"dead_square"`, `"loop"`, `"mistake"`, …).
    pub category: String,
    /// Whether the mistake cannot be undone by later moves (the task is lost
    /// after `tau`), rather than wasted moves. A running episode is
    /// interrupted on irreversible verdicts.
    pub irreversible: bool,
    /// What went wrong, grounded in the feedback: what happened, at which
    /// step.
    pub diagnosis: String,
    /// What to do differently from `tau`.
    pub fix: String,
    /// Actions recommended at `tau` (may be empty).
    pub suggested_actions: Vec<String>,
    /// Who wrote the verdict when not the reflector itself: a reflector that
    /// fell back on another one names it (stored as `reflections.reflector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    /// The model request that wrote it (`llm_calls.call_id`), for an LLM
    /// reflector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<i64>,
}

impl Experience {
    /// `"Diagnosis: … Fix: …"`, the text put in an LLM's context or exported.
    pub fn summary(&self) -> String {
        format!("Diagnosis: {} Fix: {}", self.diagnosis, self.fix)
    }
}

/// Reads a trajectory and decides whether, and where, it went wrong.
pub trait Reflector: Send + Sync {
    /// A stable name, stored in the `reflections` table.
    fn name(&self) -> &str;

    /// Reflect on a trajectory.
    ///
    /// `steps` is the FULL trajectory from t = 0 (a branch's inherited
    /// prefix included); `now` is the observation after the last step;
    /// `status` is [`Status::Running`] (periodic reflection) or terminal (a
    /// failed end). `tau` is at least `min_tau`, the first step this episode
    /// owns (earlier steps belong to an ancestor that was already reflected
    /// on).
    ///
    /// Returns `None` when the trajectory is judged on course (only while
    /// running), when it is solved, and when the episode owns no step yet
    /// (`min_tau >= steps.len()`).
    fn reflect(
        &self,
        steps: &[Step],
        now: &Observation,
        status: Status,
        min_tau: usize,
    ) -> Option<Experience>;
}

/// Settings of the built-in rule-based reflectors. Each reflector reads the
/// fields that apply to it (the solver fields: only an environment with a
/// solver, Sokoban).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReflectorConfig {
    /// Nodes each solver call may expand before answering "unknown" (an
    /// unknown answer never counts as proof).
    pub solver_max_nodes: u64,
    /// Heuristic weight of the solver (1 = A*).
    pub solver_weight: u16,
    /// Periodic reflection: the number of recent steps whose positions are
    /// checked for repeats.
    pub loop_window: usize,
    /// Periodic reflection: a position seen this many times within the
    /// window is a loop. Values below 2 count as 2.
    pub loop_repeats: usize,
    /// Periodic reflection: this many consecutive owned steps without
    /// progress is a loop too, even without repeats (0 disables the rule).
    pub idle_limit: usize,
    /// When the environment flags a mistake at step k, also ask the solver
    /// whether the state before step k was already lost; if it proves so,
    /// the earlier step that really lost the task becomes `tau`.
    pub verify_flagged: bool,
    /// Ask the solver for the first move of a plan from the state at `tau`
    /// (the suggested action).
    pub suggest_with_solver: bool,
    /// Let the reflector consult what the agent cannot know: Sokoban's
    /// solver (rule 2's proof of a lost level, `verify_flagged`,
    /// `suggest_with_solver`) and a simulator lookahead for its suggested
    /// moves. Off by default: the reflector reads the trajectory, its
    /// rewards and the environment's feedback only (mistake flags,
    /// repeated positions, the step limit). On, it is the `sokoban-oracle`
    /// reflector of the ablation row.
    pub oracle: bool,
}

impl Default for ReflectorConfig {
    fn default() -> Self {
        ReflectorConfig {
            solver_max_nodes: 20_000,
            solver_weight: 1,
            loop_window: 16,
            loop_repeats: 3,
            idle_limit: 40,
            verify_flagged: true,
            suggest_with_solver: true,
            oracle: false,
        }
    }
}

/// A reflector for any environment, from its feedback alone:
///
/// - the first owned step with a mistake flag is `tau`, its action the
///   critical action, its first mistake flag the category (irreversible);
/// - else, at a failed end, the earliest owned step whose observation
///   repeats later in the trajectory starts a loop (category `"loop"`);
///   without repeats, the first owned step (category `"step_limit"` for a
///   truncated episode, `"failed"` otherwise);
/// - while running, `None` unless a mistake was flagged, or the owned
///   steps came back to one observation [`FeedbackReflector::LOOP_REPEATS`]
///   times (a loop, as at a failed end: what the exploration's
///   `interrupt_on_loops` stops an episode for).
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedbackReflector;

impl FeedbackReflector {
    /// The reflector's name in the store.
    pub const NAME: &'static str = "feedback-rules";
    /// While running, an observation seen this many times in the owned
    /// steps is a loop.
    pub const LOOP_REPEATS: usize = 3;
}

impl Reflector for FeedbackReflector {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn reflect(
        &self,
        steps: &[Step],
        now: &Observation,
        status: Status,
        min_tau: usize,
    ) -> Option<Experience> {
        let n = steps.len();
        if status == Status::Solved || min_tau >= n {
            return None;
        }
        if let Some(k) = (min_tau..n).find(|&i| steps[i].transition.mistake().is_some()) {
            let s = &steps[k];
            let flag = s.transition.mistake().unwrap_or("mistake").to_string();
            return Some(Experience {
                trigger_step: n,
                tau: k,
                critical_action: Some(s.action.clone()),
                diagnosis: format!(
                    "at step {k} the action `{}` was a mistake ({flag}): {}",
                    s.action, s.transition.feedback
                ),
                fix: format!("at step {k}, do not `{}`; choose another action", s.action),
                category: flag,
                irreversible: true,
                suggested_actions: Vec::new(),
                written_by: None,
                call: None,
            });
        }
        // The earliest owned state that the trajectory comes back to.
        let obs = |i: usize| {
            if i < n {
                &steps[i].observation.text
            } else {
                &now.text
            }
        };
        if status == Status::Running {
            let looping = (min_tau..=n)
                .any(|i| (min_tau..=n).filter(|&j| obs(j) == obs(i)).count() >= Self::LOOP_REPEATS);
            if !looping {
                return None;
            }
        }
        let repeat = (min_tau..n).find(|&i| (i + 1..=n).any(|j| obs(j) == obs(i)));
        let (tau, category, diagnosis) = match repeat {
            Some(i) => (
                i,
                "loop",
                format!(
                    "from step {i} the trajectory went in circles: it came back to the same observation"
                ),
            ),
            None => (
                min_tau,
                if status.is_truncated() {
                    "step_limit"
                } else {
                    "failed"
                },
                format!("the episode ended {status} without solving the task"),
            ),
        };
        let action = steps[tau].action.clone();
        Some(Experience {
            trigger_step: n,
            tau,
            fix: format!("at step {tau}, try something other than `{action}`"),
            critical_action: Some(action),
            category: category.to_string(),
            irreversible: false,
            diagnosis,
            suggested_actions: Vec::new(),
            written_by: None,
            call: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Transition;
    use std::borrow::Cow;

    fn step(t: usize, text: &str, action: &str, mistake: Option<&'static str>) -> Step {
        let mistakes: Vec<Cow<'static, str>> = mistake.map(Cow::Borrowed).into_iter().collect();
        Step {
            t,
            observation: Observation::text(text),
            action: action.into(),
            action_index: None,
            log_prob: 0.0,
            call: None,
            legal: None,
            transition: Transition {
                reward: 0.0,
                status: Status::Running,
                feedback: format!("did {action}"),
                flags: mistakes.clone(),
                mistakes,
                info: None,
            },
        }
    }

    #[test]
    fn flags_the_first_owned_mistake_and_respects_min_tau() {
        let steps = vec![
            step(0, "a", "x", Some("trap")),
            step(1, "b", "y", None),
            step(2, "c", "z", Some("pit")),
        ];
        let now = Observation::text("d");
        let e = FeedbackReflector
            .reflect(&steps, &now, Status::Unsolvable, 0)
            .unwrap();
        assert_eq!((e.tau, e.category.as_str()), (0, "trap"));
        assert_eq!(e.critical_action.as_deref(), Some("x"));
        assert!(e.irreversible);
        let e = FeedbackReflector
            .reflect(&steps, &now, Status::Running, 1)
            .unwrap();
        assert_eq!((e.tau, e.category.as_str()), (2, "pit"));
        assert!(
            FeedbackReflector
                .reflect(&steps, &now, Status::Solved, 0)
                .is_none()
        );
        assert!(
            FeedbackReflector
                .reflect(&steps, &now, Status::Unsolvable, 3)
                .is_none()
        );
    }

    #[test]
    fn loops_and_plain_failures_at_the_end_only() {
        let steps = vec![
            step(0, "a", "x", None),
            step(1, "b", "y", None),
            step(2, "c", "z", None),
            step(3, "b", "y", None),
        ];
        let now = Observation::text("e");
        assert!(
            FeedbackReflector
                .reflect(&steps, &now, Status::Running, 0)
                .is_none()
        );
        // While running, a third visit of one observation is a loop.
        let mut looping = steps.clone();
        looping.push(step(4, "c", "z", None));
        let e = FeedbackReflector
            .reflect(&looping, &Observation::text("b"), Status::Running, 0)
            .unwrap();
        assert_eq!((e.tau, e.category.as_str()), (1, "loop"));
        assert!(
            FeedbackReflector
                .reflect(&looping, &Observation::text("b"), Status::Running, 2)
                .is_none(),
            "the repeats before min_tau are not the branch's own"
        );
        let e = FeedbackReflector
            .reflect(&steps, &now, Status::StepLimit, 0)
            .unwrap();
        assert_eq!((e.tau, e.category.as_str()), (1, "loop"));
        assert!(!e.irreversible);
        let e = FeedbackReflector
            .reflect(&steps[..2], &now, Status::StepLimit, 0)
            .unwrap();
        assert_eq!((e.tau, e.category.as_str()), (0, "step_limit"));
    }
}
