//! `leafe run` end to end on a tiny config: every method, every split, every
//! seed lands in the report; a rerun resumes from the store; another config
//! under the same name is refused.

use leafe::experiment::{ExpMethod, ExperimentConfig};

use crate::common::{leafe, local_store};

const TINY: &str = "tests/fixtures/tiny_experiment.toml";

#[test]
fn the_shipped_default_config_is_the_documented_default() {
    let shipped = leafe::cli::run::load_config(None).unwrap();
    assert_eq!(shipped, ExperimentConfig::default());
    assert!(shipped.seeds.len() >= 3);
    assert_eq!(shipped.ks().last(), Some(&128));
    // The large experiment differs only in GRPO's budget and the curve.
    let large = leafe::cli::run::preset("large").unwrap();
    assert_eq!(large.grpo_budget_scale, 10.0);
    assert_eq!(large.curve.fractions(), [1, 2, 4]);
    let same = ExperimentConfig {
        grpo_budget_scale: shipped.grpo_budget_scale,
        curve: shipped.curve.clone(),
        ..large
    };
    assert_eq!(same, shipped);
}

#[test]
fn a_tiny_experiment_runs_end_to_end_resumes_and_refuses_another_config() {
    let (dir, url) = local_store();
    // Two seeds at once here; one at a time on the fresh store below.
    let args = [
        "run", "--store", &url, "--config", TINY, "--name", "tiny", "--jobs", "2",
    ];
    let (code, out, err) = leafe(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("heldout") && out.contains("LEAFE"), "{out}");
    assert!(err.contains("explore-leafe"), "{err}");

    let report = dir.path().join("store/reports/tiny");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("results.json")).unwrap()).unwrap();
    let cfg: ExperimentConfig = serde_json::from_value(results["config"].clone()).unwrap();
    let cells = results["cells"].as_array().unwrap();
    // 2 seeds × (base + 6 methods) × 3 splits (held-out, shifted, hard).
    assert_eq!(cells.len(), cfg.seeds.len() * cfg.evaluated().len() * 3);
    for c in cells {
        let pass = c["pass_at_k"].as_object().unwrap();
        let mut last = 0.0;
        for k in cfg.ks() {
            let p = pass[&k.to_string()].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p) && p >= last - 1e-12, "{c}");
            last = p;
        }
        let method: ExpMethod = serde_json::from_value(c["method"].clone()).unwrap();
        let steps = c["train_env_steps"].as_u64().unwrap();
        assert_eq!(steps == 0, method == ExpMethod::Base, "{c}");
        // Only the oracle row consulted a simulator, and it is charged for it.
        let simulated = c["simulated_steps"].as_u64().unwrap();
        assert_eq!(simulated > 0, method == ExpMethod::LeafeOracle, "{c}");
        assert!(simulated < steps || simulated == 0, "{c}");
    }
    // Figure 3: LEAFE and RFT distilled from the first 1/4 and 2/4 of their
    // exploration, GRPO's checkpoints; each part costs less than the next.
    let curve = results["curve"].as_array().unwrap();
    assert_eq!(curve.len(), cfg.seeds.len() * 3 * 2, "{curve:?}");
    for seed in &cfg.seeds {
        for m in ["leafe", "rft", "grpo"] {
            let pts: Vec<(u64, u64)> = curve
                .iter()
                .filter(|p| p["seed"] == *seed && p["method"] == m)
                .map(|p| {
                    (
                        p["part"].as_u64().unwrap(),
                        p["env_steps"].as_u64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(pts.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2], "{m}");
            let last = cells
                .iter()
                .find(|c| c["seed"] == *seed && c["method"] == m)
                .unwrap()["train_env_steps"]
                .as_u64()
                .unwrap();
            assert!(
                0 < pts[0].1 && pts[0].1 < pts[1].1 && pts[1].1 <= last,
                "{m}: {pts:?} then {last}"
            );
        }
    }
    assert!(
        std::fs::read_to_string(report.join("success_vs_steps.svg"))
            .unwrap()
            .contains("polyline")
    );
    // GRPO's interaction never exceeds what LEAFE's exploration spent.
    for seed in &cfg.seeds {
        let steps = |m: &str| {
            cells
                .iter()
                .find(|c| c["seed"] == *seed && c["method"] == m)
                .unwrap()["train_env_steps"]
                .as_u64()
                .unwrap()
        };
        assert!(steps("grpo") <= steps("leafe"));
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| LEAFE |") && md.contains("Pass@8"), "{md}");
    for split in ["heldout", "shifted", "hard"] {
        let svg = std::fs::read_to_string(report.join(format!("pass_at_k_{split}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
        assert!(report.join(format!("levels/{split}.txt")).exists());
    }
    // The experiment's config, the trainings and the evals are runs in the store.
    let (code, runs, err) = leafe(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT kind, COUNT(*) AS n FROM runs WHERE run_id LIKE 'tiny%' GROUP BY kind ORDER BY kind",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        // 2 seeds × (7 models × 3 splits + 3 methods × 2 curve points).
        runs.contains("experiment,1") && runs.contains("eval,54"),
        "{runs}"
    );
    // Without rollback, every branch starts at the task's start.
    let (code, starts, err) = leafe(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT MIN(rollback_step) AS lo, MAX(rollback_step) AS hi, COUNT(*) AS n FROM episodes \
         WHERE run_id LIKE 'tiny.s0.explore-norollback.%' AND origin = 'branch'",
    ]);
    assert_eq!(code, 0, "{err}");
    let row: Vec<&str> = starts.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(&row[..2], ["0", "0"], "{starts}");
    assert!(row[2].parse::<u32>().unwrap() > 0, "{starts}");

    // A rerun finds everything done and reports the same numbers.
    let (code, _, err) = leafe(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("resuming") && err.contains("done before"),
        "{err}"
    );
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("results.json")).unwrap()).unwrap();
    assert_eq!(again["cells"], results["cells"]);

    // A fresh store gives the same numbers: every stage is seeded, and
    // seeds run side by side compute what they compute alone (the oracle's
    // charged simulator counts included).
    let (_dir2, url2) = local_store();
    let (code, _, err) = leafe(&[
        "run", "--store", &url2, "--config", TINY, "--name", "tiny", "-q", "--jobs", "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let fresh: serde_json::Value = serde_json::from_slice(
        &std::fs::read(_dir2.path().join("store/reports/tiny/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(fresh["cells"], results["cells"]);
    assert_eq!(fresh["curve"], results["curve"]);
    assert_eq!(fresh["training"], results["training"]);

    // Another config under the same name is refused.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(TINY)
            .unwrap()
            .replace("seeds = [0, 1]", "seeds = [5]"),
    )
    .unwrap();
    let (code, _, err) = leafe(&[
        "run",
        "--store",
        &url,
        "--config",
        other.to_str().unwrap(),
        "--name",
        "tiny",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("another config"), "{err}");
}
