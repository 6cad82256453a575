//! The experiment's report: `reports/<run>/report.md`, `results.json` and one
//! Pass@k-vs-k plot per split (`pass_at_k_<split>.svg`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ExpMethod, Results};
use crate::store::Store;

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() == 1 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// One method's row: per k the mean over seeds and the half-width of its
/// 95 % confidence interval (Student's t), and the mean training
/// interaction in environment steps.
pub type Row = (ExpMethod, Vec<(f64, f64)>, f64);

/// Rows per split.
pub type Summary = BTreeMap<String, Vec<Row>>;

/// Aggregates the cells over seeds.
pub fn summarize(r: &Results) -> Summary {
    let mut out: Summary = BTreeMap::new();
    // Splits in order of first appearance.
    let mut seen = std::collections::BTreeSet::new();
    let splits: Vec<&str> = r
        .cells
        .iter()
        .map(|c| c.split.as_str())
        .filter(|s| seen.insert(*s))
        .collect();
    for split in splits {
        let mut rows = Vec::new();
        for m in r.config.evaluated() {
            let cells: Vec<_> = r
                .cells
                .iter()
                .filter(|c| c.split == split && c.method == m)
                .collect();
            if cells.is_empty() {
                continue;
            }
            let per_k =
                r.ks.iter()
                    .map(|k| {
                        let v: Vec<f64> = cells
                            .iter()
                            .map(|c| c.pass_at_k.get(&k.to_string()).copied().unwrap_or(f64::NAN))
                            .collect();
                        super::stats::mean_ci95(&v)
                    })
                    .collect();
            let steps =
                cells.iter().map(|c| c.train_env_steps as f64).sum::<f64>() / cells.len() as f64;
            rows.push((m, per_k, steps));
        }
        out.insert(split.to_string(), rows);
    }
    out
}

/// One point of a method's success-vs-steps curve: mean environment steps
/// over seeds, held-out Pass@1 mean and 95 % half-width, samples per task.
pub type CurvePt = (f64, f64, f64, usize);

/// Per method, its held-out Pass@1 against the environment steps its
/// training used, in order of steps: the intermediate points of
/// `Results::curve` and the final point of the held-out cells (base: 0).
pub fn curves(r: &Results) -> Vec<(ExpMethod, Vec<CurvePt>)> {
    let mut out = Vec::new();
    for m in r.config.evaluated() {
        let mut pts = Vec::new();
        let mut parts: Vec<(usize, usize)> = r
            .curve
            .iter()
            .filter(|p| p.method == m)
            .map(|p| (p.part, p.parts))
            .collect();
        parts.sort_unstable();
        parts.dedup();
        for (part, n) in parts {
            let at: Vec<_> = r
                .curve
                .iter()
                .filter(|p| p.method == m && p.part == part && p.parts == n)
                .collect();
            let steps = at.iter().map(|p| p.env_steps as f64).sum::<f64>() / at.len() as f64;
            let (mean, ci) =
                super::stats::mean_ci95(&at.iter().map(|p| p.pass1).collect::<Vec<_>>());
            pts.push((steps, mean, ci, at[0].samples));
        }
        let fin: Vec<_> = r
            .cells
            .iter()
            .filter(|c| c.method == m && c.split == "heldout")
            .collect();
        if !fin.is_empty() {
            let steps =
                fin.iter().map(|c| c.train_env_steps as f64).sum::<f64>() / fin.len() as f64;
            let (mean, ci) = super::stats::mean_ci95(
                &fin.iter()
                    .map(|c| c.pass_at_k.get("1").copied().unwrap_or(f64::NAN))
                    .collect::<Vec<_>>(),
            );
            pts.push((steps, mean, ci, fin[0].samples));
        }
        if !pts.is_empty() {
            out.push((m, pts));
        }
    }
    out
}

/// The Markdown report.
pub fn markdown(r: &Results) -> String {
    let summary = summarize(r);
    let mut md = String::new();
    let _ = writeln!(md, "# leafe experiment `{}`\n", r.run);
    let _ = writeln!(
        md,
        "Regenerate (resumes from the store; reruns only what is missing):\n\n```\n{}\n```\n",
        r.command_line
    );
    let c = &r.config;
    let evaluation = format!(
        "Seeds {:?}. Evaluation: {} samples per task at temperature {}, step limit {}; Pass@k is the unbiased estimator, mean over seeds ± the half-width of its 95 % confidence interval (Student's t).",
        c.seeds, c.eval.samples, c.eval.temperature, c.eval.max_steps,
    );
    if let Some(t) = &c.text {
        let _ = writeln!(
            md,
            "Setting: the text environment `{}` with leafe's text policy; {} demonstration tasks for the base policy, {} exploration tasks; \
             held-out: {} tasks of the same environment; shifted: {} tasks of `{}`. {evaluation}\n",
            t.env,
            r.splits.get("demos").copied().unwrap_or(0),
            r.splits.get("train").copied().unwrap_or(0),
            r.splits.get("heldout").copied().unwrap_or(0),
            r.splits.get("shifted").copied().unwrap_or(0),
            t.shifted_env,
        );
    } else {
        let _ = writeln!(
            md,
            "Setting: Sokoban, train {}×{} with {} boxes (≥ {} pushes); {} demonstration levels for the base policy, {} exploration tasks; \
         held-out: {} levels of the training distribution; shifted: {} levels of {}×{} with {} boxes; hard: {} levels of {}×{} with {} boxes. \
         {evaluation}\n",
            c.levels.train.width,
            c.levels.train.height,
            c.levels.train.boxes,
            c.levels.train.min_pushes,
            r.splits.get("demos").copied().unwrap_or(0),
            r.splits.get("train").copied().unwrap_or(0),
            r.splits.get("heldout").copied().unwrap_or(0),
            r.splits.get("shifted").copied().unwrap_or(0),
            c.levels.shifted.width,
            c.levels.shifted.height,
            c.levels.shifted.boxes,
            r.splits.get("hard").copied().unwrap_or(0),
            c.levels.hard.width,
            c.levels.hard.height,
            c.levels.hard.boxes,
        );
    }
    let _ = writeln!(
        md,
        "Interaction: LEAFE explores each task with a budget of {} environment steps ({} branches per rollback point, depth ≤ {}); \
         LEAFE w/o experience does the same with unguided branches; LEAFE w/o rollback starts its branches from the task's start with the experience; \
         RFT samples up to {} independent rollouts per task under the same per-task budget; \
         GRPO (group {}, {} tasks per iteration) gets {}× the environment steps LEAFE's exploration spent. \
         The column `env steps` is the training interaction each method is charged for (mean over seeds): environment steps, \
         plus the simulated transitions (solver nodes, lookahead moves) of a method that consulted a simulator.\n",
        c.explore.budget,
        c.explore.branches,
        c.explore.max_depth,
        c.rft_root_samples,
        c.grpo.group_size,
        c.grpo.tasks_per_iteration,
        c.grpo_budget_scale,
    );
    for m in c.evaluated() {
        let sim: Vec<f64> = r
            .cells
            .iter()
            .filter(|x| x.method == m && x.split == "heldout")
            .map(|x| x.simulated_steps as f64)
            .collect();
        if sim.iter().any(|&v| v > 0.0) {
            let _ = writeln!(
                md,
                "{} consulted a simulator: {:.0} of its env steps (mean over seeds) are simulated transitions.\n",
                m.label(),
                sim.iter().sum::<f64>() / sim.len() as f64
            );
        }
    }
    for (split, rows) in &summary {
        let _ = writeln!(md, "## {split}\n");
        let _ = write!(md, "| method | env steps |");
        for k in &r.ks {
            let _ = write!(md, " Pass@{k} |");
        }
        let _ = write!(md, "\n|---|---:|");
        for _ in &r.ks {
            let _ = write!(md, "---:|");
        }
        md.push('\n');
        for (m, per_k, steps) in rows {
            let _ = write!(md, "| {} | {:.0} |", m.label(), steps);
            for (mean, std) in per_k {
                let _ = write!(md, " {mean:.3} ± {std:.3} |");
            }
            md.push('\n');
        }
        let _ = writeln!(md, "\n![Pass@k on {split}](pass_at_k_{split}.svg)\n");
    }
    if let (Some(h), Some(last)) = (summary.get("heldout"), r.ks.len().checked_sub(1)) {
        let get = |m: ExpMethod| h.iter().find(|row| row.0 == m).map(|row| &row.1);
        if let (Some(l), Some(g)) = (get(ExpMethod::Leafe), get(ExpMethod::Grpo)) {
            let _ = writeln!(
                md,
                "LEAFE − GRPO on held-out: Pass@{} {:+.3}, Pass@{} {:+.3} (means over seeds).\n",
                r.ks[0],
                l[0].0 - g[0].0,
                r.ks[last],
                l[last].0 - g[last].0
            );
        }
    }
    let curves = curves(r);
    if curves.iter().any(|(_, pts)| pts.len() > 1) {
        let _ = writeln!(md, "## Success against environment steps (Figure 3)\n");
        let _ = writeln!(
            md,
            "Held-out Pass@1 against the environment steps each method's training used (simulated transitions \
             included where a method consulted a simulator). LEAFE and RFT are also distilled from the first \
             parts of their exploration (the tasks are explored in {} chunks; a part costs what its tasks cost), \
             GRPO is checkpointed at the same fractions of its budget; those points are evaluated with {} samples \
             per task, each method's last point is the main evaluation ({} samples). Mean over seeds ± 95 % CI.\n",
            r.config.curve.parts, r.config.curve.samples, r.config.eval.samples
        );
        let _ = writeln!(
            md,
            "| method | env steps | held-out Pass@1 | samples |\n|---|---:|---:|---:|"
        );
        for (m, pts) in &curves {
            for (steps, mean, ci, samples) in pts {
                let _ = writeln!(
                    md,
                    "| {} | {steps:.0} | {mean:.3} ± {ci:.3} | {samples} |",
                    m.label()
                );
            }
        }
        let _ = writeln!(
            md,
            "\n![Held-out Pass@1 against environment steps](success_vs_steps.svg)\n"
        );
    }
    if !r.paired.is_empty() {
        let _ = writeln!(md, "## Paired differences over tasks\n");
        let _ = writeln!(
            md,
            "Per task, each method's Pass@k averaged over seeds; the mean difference over tasks and its 95 % \
             interval from {} bootstrap resamples of the tasks. An interval that excludes 0 is a difference the \
             task sample supports.\n",
            super::BOOTSTRAP_RESAMPLES
        );
        let _ = writeln!(
            md,
            "| split | comparison | k | tasks | mean | 95 % interval |\n|---|---|---:|---:|---:|---|"
        );
        for p in &r.paired {
            let _ = writeln!(
                md,
                "| {} | {} − {} | {} | {} | {:+.3} | [{:+.3}, {:+.3}] |",
                p.split,
                p.a.label(),
                p.b.label(),
                p.k,
                p.tasks,
                p.mean,
                p.lo,
                p.hi
            );
        }
        md.push('\n');
    }
    if !r.training.is_empty() {
        let _ = writeln!(md, "## Training data\n");
        let _ = writeln!(
            md,
            "| seed | method | counterfactual pairs | rehearsal rows | env steps |\n|---:|---|---:|---:|---:|"
        );
        for t in &r.training {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                t["seed"],
                t["method"].as_str().unwrap_or("?"),
                t.get("pairs").map_or("–".into(), |v| v.to_string()),
                t.get("rehearsal").map_or("–".into(), |v| v.to_string()),
                t["env_steps"]
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "## Stage timings (this invocation; 0 s = found done in the store)\n"
    );
    let _ = writeln!(
        md,
        "| seed | stage | seconds | detail |\n|---:|---|---:|---|"
    );
    for s in &r.stages {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} |",
            s.seed.map_or("–".into(), |v| v.to_string()),
            s.stage,
            s.seconds,
            s.detail
        );
    }
    let total: f64 = r.stages.iter().map(|s| s.seconds).sum();
    let _ = writeln!(md, "\nTotal: {total:.0} s.");
    md
}

const COLORS: [&str; 8] = [
    "#7f7f7f", "#d62728", "#ff7f0e", "#8c564b", "#1f77b4", "#2ca02c", "#9467bd", "#e377c2",
];

/// A Pass@k-vs-k line plot (log2 k on x) of one split, as SVG.
pub fn svg(r: &Results, split: &str, rows: &[Row]) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (60.0, 170.0, 30.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let n = r.ks.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + pw * i as f64 / n;
    let y = |p: f64| top + ph * (1.0 - p.clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">Pass@k, {split} ({}; mean ± 95% CI over seeds)</text>"#,
        left + pw / 2.0,
        r.run
    );
    for tick in 0..=5 {
        let p = tick as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{p:.1}</text>"##,
            x2 = left + pw,
            yy = y(p),
            tx = left - 6.0,
            ty = y(p) + 4.0
        );
    }
    for (i, k) in r.ks.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{k}</text>"#,
            x(i),
            top + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">k (samples per task)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (j, (m, per_k, _)) in rows.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let points: Vec<String> = per_k
            .iter()
            .enumerate()
            .map(|(i, (mean, _))| format!("{:.1},{:.1}", x(i), y(*mean)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, (mean, std)) in per_k.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="{color}"/><circle cx="{0:.1}" cy="{3:.1}" r="2.5" fill="{color}"/>"#,
                x(i),
                y(mean - std),
                y(mean + std),
                y(*mean)
            );
        }
        let ly = top + 14.0 + 18.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0,
            m.label()
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Held-out Pass@1 against environment steps (log10 steps on x), as SVG:
/// a line per method through its points, the base policy as a dashed
/// horizontal line (it trained on no environment steps).
pub fn curve_svg(r: &Results, curves: &[(ExpMethod, Vec<CurvePt>)]) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (60.0, 190.0, 30.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let trained = curves
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|p| p.0 >= 1.0);
    let (mut lo, mut hi, mut top_p) = (f64::INFINITY, 0.0f64, 0.0f64);
    for p in trained {
        lo = lo.min(p.0.log10());
        hi = hi.max(p.0.log10());
    }
    for (_, pts) in curves {
        for p in pts {
            top_p = top_p.max(p.1);
        }
    }
    let (lo, hi) = if lo.is_finite() {
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    } else {
        (3.0, 6.0)
    };
    // Scaled to the means (error bars may leave the frame, clipped).
    let ymax = ((top_p * 1.3) * 40.0).ceil() / 40.0;
    let ymax = if ymax > 0.0 { ymax.min(1.0) } else { 1.0 };
    let x = |steps: f64| left + pw * (steps.max(1.0).log10() - lo) / (hi - lo);
    let y = |p: f64| top + ph * (1.0 - (p / ymax).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">Held-out Pass@1 vs environment steps ({})</text>"#,
        left + pw / 2.0,
        r.run
    );
    for tick in 0..=4 {
        let p = ymax * tick as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{p:.3}</text>"##,
            x2 = left + pw,
            yy = y(p),
            tx = left - 6.0,
            ty = y(p) + 4.0
        );
    }
    let mut e = lo;
    while e <= hi + 1e-9 {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">1e{e:.0}</text>"#,
            x(10f64.powf(e)),
            top + ph + 16.0
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">environment steps of training (log scale)</text>"#,
        left + pw / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for (j, (m, pts)) in curves.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let ly = top + 14.0 + 18.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0,
            m.label()
        );
        if pts.iter().all(|p| p.0 < 1.0) {
            let _ = writeln!(
                s,
                r#"<line x1="{left}" x2="{}" y1="{1:.1}" y2="{1:.1}" stroke="{color}" stroke-dasharray="5,4"/>"#,
                left + pw,
                y(pts[0].1)
            );
            continue;
        }
        let line: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for p in pts {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="{color}"/><circle cx="{0:.1}" cy="{3:.1}" r="3" fill="{color}"/>"#,
                x(p.0),
                y(p.1 - p.2),
                y(p.1 + p.2),
                y(p.1)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Writes report.md, results.json and the plots to `reports/<run>/`.
pub async fn write(store: &Store, r: &Results) -> crate::store::Result<()> {
    let summary = summarize(r);
    store
        .put_report_file(
            &r.run,
            "results.json",
            serde_json::to_vec_pretty(r).expect("results serialize"),
        )
        .await?;
    for (split, rows) in &summary {
        store
            .put_report_file(
                &r.run,
                &format!("pass_at_k_{split}.svg"),
                svg(r, split, rows).into_bytes(),
            )
            .await?;
    }
    let curves = curves(r);
    if curves.iter().any(|(_, pts)| pts.len() > 1) {
        store
            .put_report_file(
                &r.run,
                "success_vs_steps.svg",
                curve_svg(r, &curves).into_bytes(),
            )
            .await?;
    }
    store
        .put_report_file(&r.run, "report.md", markdown(r).into_bytes())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_std_is_the_sample_statistic() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]), (0.5, 0.0));
        assert!(mean_std(&[]).0.is_nan());
    }
}
