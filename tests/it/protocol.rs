//! The env protocol: a built-in environment served by `leafe env serve`
//! behaves exactly like the in-process one (observations, rewards, feedback,
//! mistakes, snapshots that any process of the pool restores), exploration
//! over processes gives the same trees as in process, and every way a
//! process can fail is a clear error naming the command and the task.

use std::sync::Arc;

use leafe::env::process::{ProcessConfig, ProcessEnv, ProcessPool};
use leafe::env::{Env, EnvError, Status};
use leafe::explore::{ExploreConfig, Task, TaskTree, explore};
use leafe::policy::{NeuralPolicy, PolicyNetConfig};
use leafe::worlds::gridworld::{
    GridPlanes, GridReflector, Gridworld, GridworldConfig, GridworldGenConfig, generate,
    write_grid_file,
};
use leafe::worlds::sokoban::levels::read_level_file;
use leafe::worlds::sokoban::{Sokoban, SokobanConfig};
use rand::{Rng, SeedableRng};

fn leafe_bin() -> String {
    assert_cmd::cargo::cargo_bin("leafe").display().to_string()
}

fn fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boxoban/unfiltered-test-000-first60.txt")
}

fn serve_config(env: &str, levels: &str, max_steps: usize) -> ProcessConfig {
    ProcessConfig {
        command: vec![
            leafe_bin(),
            "env".into(),
            "serve".into(),
            env.into(),
            "--levels".into(),
            levels.into(),
            "--max-steps".into(),
            max_steps.to_string(),
        ],
        timeout_ms: 20_000,
        max_steps: 0,
    }
}

fn sokoban(level: &leafe::worlds::sokoban::Level) -> Sokoban {
    Sokoban::new(
        level.clone(),
        SokobanConfig {
            max_steps: 40,
            // As the built-in world makes it (and `leafe env serve` serves it).
            end_on_deadlock: true,
        },
    )
}

#[test]
fn a_served_sokoban_steps_exactly_like_the_in_process_one() {
    let levels = read_level_file(fixture()).unwrap();
    let pool = ProcessPool::new(serve_config("sokoban", fixture().to_str().unwrap(), 40));
    let mut remote = pool.make().unwrap();
    assert_eq!(remote.name(), "sokoban");
    assert_eq!(
        remote.action_space().names(),
        ["up", "down", "left", "right"]
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for idx in [0usize, 7, 13] {
        let mut local = sokoban(&levels[idx]);
        let task = idx.to_string();
        assert_eq!(remote.reset(&task, 0).unwrap(), local.observe());
        let mut mid = None;
        while local.status() == Status::Running {
            if local.steps() == 10 {
                let snap = remote
                    .snapshot()
                    .unwrap()
                    .expect("served Sokoban has snapshots");
                mid = Some((snap, *local.state(), local.observe()));
            }
            let a = ["up", "down", "left", "right"][rng.random_range(0..4)];
            let (r, l) = (remote.step(a).unwrap(), Env::step(&mut local, a).unwrap());
            assert_eq!(r, l, "level {idx} step {}", local.steps());
            assert_eq!(remote.observe(), local.observe());
            assert_eq!(remote.legal_actions(), local.legal_actions());
        }
        assert_eq!(remote.status(), local.status());
        assert!(matches!(
            remote.step("up"),
            Err(EnvError::EpisodeOver { .. })
        ));
        // A snapshot is self-contained: another process of the pool, reset
        // to the same task, restores it and goes on from there.
        let (snap, state, obs) = mid.expect("episodes last beyond 10 steps");
        let mut other = pool.make().unwrap();
        other.reset(&task, 0).unwrap();
        other.restore(&snap).unwrap();
        let mut back = sokoban(&levels[idx]);
        back.restore_state(&state);
        assert_eq!(back.observe(), obs);
        for a in ["left", "up", "right"] {
            assert_eq!(other.step(a).unwrap(), Env::step(&mut back, a).unwrap());
            assert_eq!(other.observe(), back.observe());
        }
    }
    // The pool keeps the processes handed back.
    assert!(pool.idle() >= 1, "{}", pool.idle());
    // An unknown task is refused with its id.
    let err = remote
        .reset(&"nope".to_string(), 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown task_id") && err.contains("nope"),
        "{err}"
    );
}

fn trees_of<E: Env>(
    tasks: Vec<Task<E::Task>>,
    make_env: &dyn Fn() -> leafe::env::Result<E>,
    policy: &NeuralPolicy,
) -> Vec<TaskTree> {
    let cfg = ExploreConfig {
        budget: 120,
        branches: 2,
        max_depth: 2,
        max_steps: 20,
        parallel_tasks: 4,
        seed: 5,
        ..ExploreConfig::default()
    };
    let mut trees = Vec::new();
    explore(tasks, make_env, policy, &GridReflector, &cfg, |t| {
        trees.push(t);
        Ok(())
    })
    .unwrap();
    trees.sort_by_key(|t| t.task_index);
    trees
}

#[test]
fn exploring_over_processes_gives_the_same_trees_replays_included() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grids.txt");
    let grids = generate(&GridworldGenConfig {
        count: 6,
        seed: 4,
        ..GridworldGenConfig::default()
    })
    .unwrap();
    write_grid_file(&file, &grids).unwrap();
    let policy = NeuralPolicy::untrained(
        "untrained",
        PolicyNetConfig::for_encoder(&GridPlanes, 10, 16),
        Arc::new(GridPlanes),
        9,
    )
    .unwrap();
    let local = trees_of(
        grids
            .iter()
            .enumerate()
            .map(|(i, g)| Task {
                index: i as u64,
                task: g.clone(),
                source: format!("g#{i}"),
            })
            .collect(),
        &|| Ok(Gridworld::with_config(GridworldConfig { max_steps: 20 })),
        &policy,
    );
    let pool = ProcessPool::new(serve_config("gridworld", file.to_str().unwrap(), 20));
    let remote = trees_of(
        (0..grids.len())
            .map(|i| Task {
                index: i as u64,
                task: i.to_string(),
                source: format!("g#{i}"),
            })
            .collect(),
        &|| pool.make(),
        &policy,
    );
    assert_eq!(local.len(), remote.len());
    let mut replays = 0;
    for (l, r) in local.iter().zip(&remote) {
        assert_eq!(l.interaction_cost, r.interaction_cost);
        assert_eq!(l.episodes.len(), r.episodes.len());
        for (a, b) in l.episodes.iter().zip(&r.episodes) {
            assert_eq!(
                (a.id, a.parent, a.rollback_step, a.status),
                (b.id, b.parent, b.rollback_step, b.status)
            );
            assert_eq!((a.replayed, a.rollback), (b.replayed, b.rollback));
            assert_eq!(a.steps, b.steps);
            replays += usize::from(b.rollback.is_some());
        }
        assert_eq!(l.reflections.len(), r.reflections.len());
    }
    assert!(replays > 0, "the gridworld rolls back by replay");
    // Processes are reused: far fewer than episodes.
    let episodes: usize = remote.iter().map(|t| t.episodes.len()).sum();
    assert!(
        pool.idle() < episodes,
        "{} processes for {episodes} episodes",
        pool.idle()
    );
}

fn failing(script: &str, timeout_ms: u64) -> String {
    let config = ProcessConfig {
        command: vec!["sh".into(), "-c".into(), script.into()],
        timeout_ms,
        max_steps: 0,
    };
    let err = match ProcessEnv::spawn(config) {
        Err(e) => e,
        Ok(mut env) => env.reset(&"t7".to_string(), 0).unwrap_err(),
    };
    assert!(matches!(err, EnvError::Failed { .. }), "{err}");
    err.to_string()
}

const HELLO: &str = r#"read l; echo '{"id":1,"ok":true,"protocol":1,"name":"x","snapshot":false,"actions":{"type":"free_text"}}'"#;

#[test]
fn crashed_hung_and_garbled_processes_are_clear_errors() {
    // Crash before answering, with its log line in the error.
    let e = failing("echo 'cannot load the game' >&2; exit 3", 5_000);
    assert!(e.contains("cmd:sh -c") && e.contains("hello"), "{e}");
    assert!(
        e.contains("died") && e.contains("cannot load the game"),
        "{e}"
    );
    // Crash in the middle of a task: the task is named.
    let e = failing(&format!("{HELLO}; read l; exit 4"), 5_000);
    assert!(e.contains("task t7: reset") && e.contains("died"), "{e}");
    // Hang.
    let e = failing(&format!("{HELLO}; sleep 5"), 300);
    assert!(
        e.contains("task t7: reset") && e.contains("no answer within 300 ms"),
        "{e}"
    );
    // Garbage, a wrong id, a refusal, a missing field, another protocol.
    let e = failing(&format!("{HELLO}; read l; echo 'garbage'; sleep 1"), 5_000);
    assert!(
        e.contains("not a JSON object") && e.contains("garbage"),
        "{e}"
    );
    let e = failing(
        &format!(r#"{HELLO}; read l; echo '{{"id":99,"ok":true}}'; sleep 1"#),
        5_000,
    );
    assert!(e.contains("answered id 99 to request id 2"), "{e}");
    let e = failing(
        &format!(
            r#"{HELLO}; read l; echo '{{"id":2,"ok":false,"error":"no such game"}}'; sleep 1"#
        ),
        5_000,
    );
    assert!(e.contains("refused: no such game"), "{e}");
    let e = failing(
        &format!(r#"{HELLO}; read l; echo '{{"id":2,"ok":true}}'; sleep 1"#),
        5_000,
    );
    assert!(e.contains("no `observation.text`"), "{e}");
    let e = failing(r#"read l; echo '{"id":1,"ok":true,"protocol":7}'"#, 5_000);
    assert!(e.contains("protocol version 7"), "{e}");
    let e = failing("", 5_000);
    assert!(e.contains("hello"), "{e}");
    // A command that does not exist.
    let config = ProcessConfig::from_command_line("/nonexistent/env --x");
    let e = ProcessEnv::spawn(config).unwrap_err().to_string();
    assert!(e.contains("cannot start `/nonexistent/env`"), "{e}");
}

#[test]
fn the_python_example_of_the_protocol_page_plays() {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/corridor.py");
    let config = ProcessConfig {
        command: vec!["python3".into(), script.display().to_string()],
        timeout_ms: 10_000,
        max_steps: 0,
    };
    let mut env = ProcessEnv::spawn(config).unwrap();
    assert_eq!(env.name(), "corridor");
    let task = "1".to_string();
    let start = env.reset(&task, 0).unwrap();
    assert_eq!(start.text, "O@...G");
    let pit = env.step("left").unwrap();
    assert_eq!(
        (pit.status, pit.mistake()),
        (Status::Unsolvable, Some("fell_into_pit"))
    );
    // Replay-only: the rollback to the start is a reset + replay of nothing.
    assert!(env.snapshot().unwrap().is_none());
    leafe::env::replay(&mut env, &task, 0, &[]).unwrap();
    let mut last = None;
    for _ in 0..4 {
        last = Some(env.step("right").unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.status, Status::Solved);
    assert_eq!(last.feedback, "reached the goal");
}

#[test]
fn a_task_the_environment_fails_is_recorded_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // The corridor of docs/protocol.md, except that task "crash" kills the
    // process on its third step.
    let script = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/corridor.py"),
    )
    .unwrap()
    .replace(
        "        steps += 1\n",
        "        steps += 1\n        if task == \"crash\" and steps == 3:\n            sys.exit(9)\n",
    )
    .replace(
        "    elif req[\"verb\"] == \"reset\":\n",
        "    elif req[\"verb\"] == \"reset\":\n        task = req[\"task_id\"]\n",
    )
    .replace(
        "        length, pos, steps = 3 + int(req[\"task_id\"]) % 5, 0, 0",
        "        length, pos, steps = 3 + (len(task) % 5), 0, 0",
    );
    let path = dir.path().join("crashy.py");
    std::fs::write(&path, script).unwrap();
    let pool = ProcessPool::new(ProcessConfig {
        command: vec!["python3".into(), path.display().to_string()],
        timeout_ms: 10_000,
        max_steps: 0,
    });
    struct Right;
    impl leafe::policy::Policy for Right {
        fn name(&self) -> &str {
            "right"
        }
        fn act(
            &self,
            turns: &mut [leafe::policy::Turn<'_>],
            _: f32,
        ) -> leafe::policy::Result<Vec<leafe::policy::Decision>> {
            Ok(turns
                .iter()
                .map(|_| leafe::policy::Decision {
                    action: "right".into(),
                    index: Some(1),
                    log_prob: 0.0,
                    call: None,
                })
                .collect())
        }
    }
    let tasks: Vec<Task<String>> = ["a", "crash", "bb", "ccc"]
        .iter()
        .enumerate()
        .map(|(i, t)| Task {
            index: i as u64,
            task: t.to_string(),
            source: format!("t#{i}"),
        })
        .collect();
    let cfg = ExploreConfig {
        parallel_tasks: 2,
        max_steps: 20,
        ..ExploreConfig::default()
    };
    let mut trees = Vec::new();
    explore(
        tasks,
        &|| pool.make(),
        &Right,
        &leafe::reflect::FeedbackReflector,
        &cfg,
        |t| {
            trees.push(t);
            Ok(())
        },
    )
    .unwrap();
    trees.sort_by_key(|t| t.task_index);
    assert_eq!(trees.len(), 4);
    for (i, t) in trees.iter().enumerate() {
        if i == 1 {
            let e = t.env_error.as_deref().expect("the crash is recorded");
            assert!(e.contains("task crash: step") && e.contains("died"), "{e}");
            assert_eq!(t.episodes.len(), 1);
            assert_eq!(t.episodes[0].status, "env_error");
            assert_eq!(
                t.episodes[0].steps.len(),
                2,
                "the steps before the crash are kept"
            );
        } else {
            assert!(t.env_error.is_none(), "{:?}", t.env_error);
            assert!(t.episodes[0].success, "walking right solves the corridor");
        }
    }
}

#[test]
fn a_task_the_environment_cannot_start_is_stored_as_an_env_error_root() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grids.txt");
    let grids = generate(&GridworldGenConfig {
        count: 2,
        seed: 1,
        ..GridworldGenConfig::default()
    })
    .unwrap();
    write_grid_file(&file, &grids).unwrap();
    let pool = ProcessPool::new(serve_config("gridworld", file.to_str().unwrap(), 20));
    let policy = NeuralPolicy::untrained(
        "untrained",
        PolicyNetConfig::for_encoder(&GridPlanes, 10, 16),
        Arc::new(GridPlanes),
        1,
    )
    .unwrap();
    let tasks: Vec<Task<String>> = ["0", "no-such-task", "1"]
        .iter()
        .enumerate()
        .map(|(i, t)| Task {
            index: i as u64,
            task: t.to_string(),
            source: format!("ids#{i}"),
        })
        .collect();
    let trees = trees_of(tasks, &|| pool.make(), &policy);
    assert_eq!(trees.len(), 3);
    let failed = &trees[1];
    let e = failed.env_error.as_deref().unwrap();
    assert!(
        e.contains("unknown task_id") && e.contains("no-such-task"),
        "{e}"
    );
    // The task id, not its place in the file: the reset failed, not the start.
    assert_eq!(failed.task_id, "no-such-task");
    assert_eq!(failed.episodes.len(), 1);
    assert_eq!(
        (failed.episodes[0].status, failed.episodes[0].steps.len()),
        ("env_error", 0)
    );
    // Written like any tree: one episode row says the task failed.
    let mut batcher = leafe::explore::rows::TreeBatcher::new(
        16,
        leafe::worlds::gridworld::action_space().clone(),
    );
    let (_sdir, url) = crate::common::local_store();
    let store = leafe::store::Store::open(&url).unwrap();
    crate::common::rt().block_on(async {
        let mut run = store
            .begin_run(leafe::store::RunSpec {
                run_id: "f".into(),
                kind: "explore".into(),
                seed: None,
                config: serde_json::Value::Null,
                command_line: "test".into(),
                meta: serde_json::Value::Null,
            })
            .await
            .unwrap();
        for t in &trees {
            batcher.push(&mut run, t, "p", None).await.unwrap();
        }
        batcher.flush(&mut run).await.unwrap();
        run.commit().await.unwrap();
    });
    assert!(trees[0].env_error.is_none() && trees[2].env_error.is_none());
    let (code, csv, err) = crate::common::leafe(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT task_id, status, task_source, error FROM episodes WHERE status = 'env_error'",
    ]);
    assert_eq!(code, 0, "{err}");
    let row = csv.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("no-such-task,env_error,ids#1,") && row.contains("unknown task_id"),
        "{csv}"
    );
}
