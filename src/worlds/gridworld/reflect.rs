//! The rule-based reflector: names the step that walked into a trap, or
//! falls back on the feedback-only reflector.

use super::grid::offset;
use super::*;
use crate::env::{Observation, Status, Step};
use crate::reflect::{Experience, FeedbackReflector, Reflector};

/// The gridworld's rule-based reflector. It reads only what any reflector
/// may read (observations, actions, feedback, flags), with no solver and no
/// lookahead:
///
/// - the first owned step flagged `fell_into_trap` is `tau` (category
///   `"trap"`, irreversible); the diagnosis says where the agent stood and
///   where the trap was (from the observation text before the step), and the
///   suggested actions are the other directions that, judged from that
///   text, lead to neither a wall nor a trap;
/// - else, at a failed end, [`FeedbackReflector`]'s verdict (a loop, or
///   the step limit);
/// - while running without a trap, and for solved episodes, `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridReflector;

impl GridReflector {
    /// The reflector's name in the store.
    pub const NAME: &'static str = "gridworld-rules";
    /// The category of a fall into a trap.
    pub const CATEGORY_TRAP: &'static str = "trap";
}

/// The agent's (row, column) in an observation text.
pub(super) fn agent_in(text: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .find_map(|(r, line)| line.chars().position(|c| c == '@').map(|c| (r, c)))
}

/// The symbol at (row, column) of an observation text, if inside it.
pub(super) fn symbol_at(text: &str, (r, c): (usize, usize)) -> Option<char> {
    text.lines().nth(r)?.chars().nth(c)
}

impl Reflector for GridReflector {
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
        let fell = |s: &Step| {
            s.transition
                .mistakes
                .iter()
                .any(|m| m == FLAG_FELL_INTO_TRAP)
        };
        let Some(k) = (min_tau..n).find(|&i| fell(&steps[i])) else {
            if status == Status::Running {
                return None;
            }
            return FeedbackReflector.reflect(steps, now, status, min_tau);
        };
        let s = &steps[k];
        let dir = s.action.as_str();
        let text = &s.observation.text;
        let agent = agent_in(text);
        let diagnosis = match (agent, action_index(dir)) {
            (Some(p), Some(a)) => match offset(p, a) {
                Some(t) => format!(
                    "at step {k} the agent at row {}, column {} moved {dir} into the trap at row {}, column {} and lost the episode",
                    p.0, p.1, t.0, t.1
                ),
                None => {
                    format!("at step {k} the agent moved {dir} into a trap and lost the episode")
                }
            },
            _ => format!(
                "at step {k} the agent moved {dir} into a trap and lost the episode ({})",
                s.transition.feedback
            ),
        };
        // Safe directions, judged from the text alone: off the text is wall.
        let suggested_actions = agent
            .map(|p| {
                DIR_NAMES
                    .iter()
                    .enumerate()
                    .filter(|&(_, name)| *name != dir)
                    .filter(|&(a, _)| {
                        offset(p, a)
                            .and_then(|q| symbol_at(text, q))
                            .is_some_and(|c| !matches!(c, '#' | '^'))
                    })
                    .map(|(_, name)| name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        Some(Experience {
            trigger_step: n,
            tau: k,
            critical_action: Some(s.action.clone()),
            category: Self::CATEGORY_TRAP.to_string(),
            irreversible: true,
            diagnosis,
            fix: format!("at step {k} do not move {dir} (a trap is there); go around it"),
            suggested_actions,
            written_by: None,
            call: None,
        })
    }
}
