//! The fix: which moves to take at tau instead (the solver's plan with the
//! oracle, else the moves a simulated step does not lose), in words.

use super::ctx::Ctx;
use super::*;
use crate::worlds::sokoban::board::DIR_NAMES;

impl Ctx<'_> {
    /// The suggested actions at step `k`: the solver's first move from
    /// state `k` if it finds a plan, else the moves that are not blocked,
    /// not flagged as a mistake and not `critical`. The flag says whether
    /// the suggestion is the solver's.
    pub(super) fn suggest(&mut self, k: usize, critical: Option<usize>) -> (Vec<usize>, bool) {
        if !self.config.oracle {
            // Without the oracle nothing is simulated: the fix says only to
            // take another move than the critical one.
            return (Vec::new(), false);
        }
        if self.config.suggest_with_solver {
            let p = self.probe(k);
            if p.solvability == Solvability::Solvable
                && let Some(m) = p.first_move
            {
                return (vec![m], true);
            }
        }
        let mut env = Sokoban::new(self.level.clone(), Default::default());
        crate::worlds::sokoban::guide::count_lookahead(4);
        let start = State {
            status: Status::Running,
            steps: 0,
            ..*self.state(k)
        };
        let safe = (0..4)
            .filter(|&a| {
                env.restore_state(&start);
                let ev = env.apply(a);
                Some(a) != critical && !ev.is_blocked() && !ev.is_mistake()
            })
            .collect();
        (safe, false)
    }
}

/// The "instead …" part of a fix.
pub(super) fn suggestion_text(suggested: &[usize], from_solver: bool) -> String {
    match suggested {
        [] => "take a different move".to_string(),
        [a] if from_solver => format!(
            "move {} (the first move of a solution from this position)",
            DIR_NAMES[a & 3]
        ),
        several => {
            let names: Vec<&str> = several.iter().map(|&a| DIR_NAMES[a & 3]).collect();
            format!("move {}", names.join(" or "))
        }
    }
}
