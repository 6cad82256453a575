//! [`RandomPolicy`]: uniform over the legal actions, from each episode's own
//! random stream. What smoke-tests an environment without a model (`leafe
//! explore --policy random`, `leafe eval --policy random`), and a floor to
//! compare a model with.

use rand::Rng;

use super::{Decision, Policy, PolicyError, Result, Turn};

/// Draws each action uniformly from the turn's legal actions.
#[derive(Debug, Clone, Default)]
pub struct RandomPolicy;

impl RandomPolicy {
    /// The name recorded as `episodes.policy`.
    pub const NAME: &'static str = "random";
}

impl Policy for RandomPolicy {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn act(&self, turns: &mut [Turn<'_>], _temperature: f32) -> Result<Vec<Decision>> {
        turns
            .iter_mut()
            .map(|turn| {
                if turn.legal.is_empty() {
                    return Err(PolicyError::Mismatch {
                        policy: Self::NAME.into(),
                        message:
                            "no legal actions to draw from (a free-text environment needs a model)"
                                .into(),
                    });
                }
                let n = turn.legal.len();
                let pick = turn.rng.random_range(0..n);
                Ok(Decision {
                    action: turn.legal[pick].clone(),
                    index: None,
                    log_prob: -(n as f32).ln(),
                    call: None,
                })
            })
            .collect()
    }

    fn reads_history(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_only_legal_actions_and_all_of_them() {
        let legal: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let obs = crate::env::Observation::text("x");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut memory = None;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut turns = [Turn {
                history: &[],
                observation: &obs,
                legal: &legal,
                experience: None,
                rng: &mut rng,
                memory: &mut memory,
            }];
            let d = RandomPolicy.act(&mut turns, 1.0).unwrap();
            assert!(legal.contains(&d[0].action));
            assert!((d[0].log_prob - -(3f32).ln()).abs() < 1e-6);
            seen.insert(d[0].action.clone());
        }
        assert_eq!(seen.len(), 3);
        let mut turns = [Turn {
            history: &[],
            observation: &obs,
            legal: &[],
            experience: None,
            rng: &mut rng,
            memory: &mut memory,
        }];
        assert!(RandomPolicy.act(&mut turns, 1.0).is_err());
    }
}
