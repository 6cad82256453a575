//! The second built-in environment, end to end through the same commands as
//! Sokoban: `levels gridworld` → `pretrain --env gridworld` → `explore`
//! (the environment is read off the model) → `sql` → `train` → `eval` →
//! `export` → `report`. The gridworld has no native snapshots, so every
//! rollback here is a reset + replay of the action prefix, charged to the
//! budget.

use crate::common::{leafe, local_store};

fn ok(args: &[&str]) -> String {
    let (code, out, err) = leafe(args);
    assert_eq!(code, 0, "leafe {args:?}: {err}");
    out
}

fn csv_value(out: &str) -> Vec<String> {
    out.lines()
        .nth(1)
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect()
}

#[test]
fn the_gridworld_runs_through_every_command() {
    let (dir, url) = local_store();
    let train = dir.path().join("grids.txt");
    let test = dir.path().join("held.txt");
    let (t, h) = (train.to_str().unwrap(), test.to_str().unwrap());
    ok(&[
        "levels",
        "gridworld",
        "--count",
        "80",
        "--seed",
        "1",
        "--out",
        t,
    ]);
    ok(&[
        "levels",
        "gridworld",
        "--count",
        "16",
        "--seed",
        "2",
        "--out",
        h,
    ]);
    assert!(std::fs::read_to_string(t).unwrap().contains('^'));

    let out = ok(&[
        "pretrain",
        "--store",
        &url,
        "--env",
        "gridworld",
        "--levels",
        t,
        "--out-model",
        "gbase",
        "--demo-levels",
        "20",
        "--epochs",
        "2",
        "--eval-levels",
        h,
        "--eval-samples",
        "8",
    ]);
    assert!(
        out.contains("saved model gbase") && out.contains("pass@8"),
        "{out}"
    );

    // No --env: the model says it plays the gridworld.
    let out = ok(&[
        "explore",
        "--store",
        &url,
        "--model",
        "gbase",
        "--levels",
        t,
        "--run-id",
        "g",
        "--budget",
        "200",
        "--chunk-tasks",
        "40",
    ]);
    assert!(out.contains("80 tasks in 2 chunk(s)"), "{out}");
    assert!(out.contains("by replay"), "{out}");

    // Branches exist, every rollback was a replay, and its cost is in the
    // episodes' interaction cost: more than the stored steps.
    let out = ok(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(*) AS branches, \
                CAST(SUM(e.interaction_cost) AS BIGINT) AS cost, \
                CAST(SUM(s.n) AS BIGINT) AS stored \
         FROM episodes e JOIN (SELECT run_id, episode_id, COUNT(*) AS n FROM steps GROUP BY 1, 2) s \
           ON s.run_id = e.run_id AND s.episode_id = e.episode_id \
         WHERE e.run_id LIKE 'g.%' AND e.origin = 'branch' AND e.rollback_step > 0",
    ]);
    let v = csv_value(&out);
    let (branches, cost, stored): (i64, i64, i64) = (
        v[0].parse().unwrap(),
        v[1].parse().unwrap(),
        v[2].parse().unwrap(),
    );
    assert!(branches > 0, "{out}");
    assert!(cost > stored, "replayed prefixes are charged: {out}");
    // No task spent more than its budget, replays included.
    let out = ok(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT MAX(c) AS worst FROM (SELECT task_id, SUM(interaction_cost) AS c FROM episodes \
         WHERE run_id LIKE 'g.%' GROUP BY task_id)",
    ]);
    assert!(csv_value(&out)[0].parse::<i64>().unwrap() <= 200, "{out}");
    // The gridworld's reflector named traps, with actions by name.
    let out = ok(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM reflections WHERE run_id LIKE 'g.%' AND category = 'trap' \
         AND reflector = 'gridworld-rules' AND critical_action_text IN ('up', 'down', 'left', 'right') \
         AND critical_action BETWEEN 0 AND 3",
    ]);
    assert!(csv_value(&out)[0].parse::<i64>().unwrap() > 0, "{out}");

    let out = ok(&[
        "train",
        "--store",
        &url,
        "--method",
        "leafe",
        "--init",
        "gbase",
        "--runs",
        "g.%",
        "--out-model",
        "gleafe",
        "--epochs",
        "2",
    ]);
    assert!(out.contains("saved model gleafe"), "{out}");
    let out = ok(&[
        "eval",
        "--store",
        &url,
        "--model",
        "gleafe",
        "--levels",
        h,
        "--samples",
        "8",
        "--format",
        "csv",
    ]);
    assert!(out.starts_with("model,split,tasks,samples,pass@1"), "{out}");
    assert!(out.contains("gleafe,test,16,8,"), "{out}");

    let jsonl = dir.path().join("cf.jsonl");
    ok(&[
        "export",
        "--store",
        &url,
        "--runs",
        "g.%",
        "--env",
        "gridworld",
        "--dataset",
        "counterfactual",
        "--format",
        "trl-messages",
        "--out",
        jsonl.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let first = text.lines().next().expect("some counterfactual examples");
    let v: serde_json::Value = serde_json::from_str(first).unwrap();
    let messages = v["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.contains("trap") && !system.contains("Sokoban"),
        "{first}"
    );
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(["up", "down", "left", "right"].contains(&last), "{first}");

    let out = ok(&["report", "--store", &url, "--run", "g.%", "--format", "csv"]);
    assert!(out.contains("trap"), "{out}");

    // A wrong --env for the model is a one-line error.
    let (code, _, err) = leafe(&[
        "explore", "--store", &url, "--model", "gbase", "--env", "sokoban", "--levels", h,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("gridworld-planes") && err.lines().count() == 1,
        "{err}"
    );
}
