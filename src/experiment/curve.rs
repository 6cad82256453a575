//! The curve stage: success against environment steps (the paper's Figure
//! 3), from LEAFE and RFT distilled on the first parts of their exploration
//! and GRPO's checkpoints, each evaluated on the held-out split.

use std::time::Instant;

use super::context::Replicate;
use super::evaluation::eval_split;
use super::exploration::ExploreStageSummary;
use super::lookup::{recorded_training, run_stats};
use super::training::{distill_on, part_model};
use super::{CurvePoint, ExpMethod};
use crate::query::like_exact;

/// The curve's intermediate points of the replicate: LEAFE and RFT
/// distilled from the first parts of their exploration, GRPO's checkpoints
/// (saved by [`grpo_stage`]), each evaluated on held-out. Models and
/// evaluations found in the store are not redone.
pub(super) async fn curve_stage(
    r: &mut Replicate<'_>,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<Vec<CurvePoint>> {
    let curve = r.cfg.curve.clone();
    let mut points = Vec::new();
    for m in [ExpMethod::Leafe, ExpMethod::Rft, ExpMethod::Grpo] {
        if !r.cfg.methods.contains(&m) {
            continue;
        }
        for n in curve.fractions() {
            let t = Instant::now();
            let model = part_model(&r.model(m), n, curve.parts);
            let recorded = recorded_training(r.store, &model).await?;
            let env_steps = match (recorded, m) {
                (Some(v), _) => v["env_steps"].as_u64().unwrap_or(0),
                // GRPO's run ended before this fraction of its budget.
                (None, ExpMethod::Grpo) => continue,
                (None, _) => {
                    let Some(chunks) = explored
                        .runs
                        .get(m.explore_id().expect("explored"))
                        .and_then(|e| e.chunks.get(..n))
                    else {
                        continue;
                    };
                    let mut env_steps = 0;
                    for c in chunks {
                        env_steps += run_stats(r.store, &like_exact(c)).await?.2;
                    }
                    let patterns: Vec<String> = chunks.iter().map(|c| like_exact(c)).collect();
                    let part = serde_json::json!({ "part": n, "parts": curve.parts });
                    distill_on(r, m, &model, base, &patterns, env_steps, part).await?;
                    env_steps
                }
            };
            let eval_run = format!("{}.curve.{}.part{n}of{}.heldout", r.p, m.id(), curve.parts);
            let (pass, fresh) = eval_split(
                r,
                &mut None,
                &model,
                ("heldout", &r.splits.heldout),
                curve.samples,
                &[1],
                &eval_run,
            )
            .await?;
            let pass1 = pass.get("1").copied().unwrap_or(f64::NAN);
            r.stage(
                &format!("curve {} {n}/{}", m.id(), curve.parts),
                t,
                format!(
                    "{}{env_steps} env steps, held-out Pass@1 {pass1:.3} ({} samples)",
                    if fresh { "" } else { "done before: " },
                    curve.samples
                ),
            );
            points.push(CurvePoint {
                seed: r.seed,
                method: m,
                part: n,
                parts: curve.parts,
                env_steps,
                pass1,
                samples: curve.samples,
            });
        }
    }
    Ok(points)
}
