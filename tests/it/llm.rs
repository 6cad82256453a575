//! The LLM policy against a scripted OpenAI-compatible server (a plain HTTP
//! server in the test, answering by a script: deterministic replies,
//! malformed replies, 500s, slow replies). No model, no network.

use std::sync::Arc;

use leafe::env::Env;
use leafe::explore::{ExploreConfig, Origin, Task, explore};
use leafe::policy::llm::{LlmConfig, LlmPolicy};
use leafe::policy::scripted::{completion, server};
use leafe::policy::{Policy, PolicyError};
use leafe::worlds::gridworld::{
    GridReflector, Gridworld, GridworldConfig, GridworldGenConfig, generate,
};
use serde_json::{Value, json};

fn user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn config(url: &str) -> LlmConfig {
    LlmConfig {
        base_url: url.into(),
        model: "scripted".into(),
        timeout_ms: 5_000,
        backoff_ms: 10,
        ..LlmConfig::default()
    }
}

fn explore_grids(policy: &LlmPolicy) -> Vec<leafe::explore::TaskTree> {
    explore_on(policy, &GridReflector, 4, 3)
}

#[test]
fn the_llm_policy_explores_with_the_experience_in_its_prompt() {
    // Walk up-and-down (never reaching the goal), and after a reflection
    // step the other way.
    let (url, seen) = server(Arc::new(|req: &Value, _| {
        let action = if user_text(req).contains("Experience from an earlier attempt") {
            "left"
        } else if user_text(req)
            .matches("action: up")
            .count()
            .is_multiple_of(2)
        {
            "up"
        } else {
            "down"
        };
        (200, completion(&json!({ "action": action }).to_string()), 0)
    }));
    let policy = LlmPolicy::new(
        "scripted-llm",
        LlmConfig {
            logprobs: true,
            ..config(&url)
        },
    )
    .unwrap();
    let trees = explore_grids(&policy);
    assert_eq!(trees.len(), 4);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(policy.stats().requests as usize, requests.len());
    assert_eq!(policy.stats().invalid, 0);
    // Every request: the model, a seed, the legal actions as an enum, the
    // environment's observation.
    for r in &requests {
        assert_eq!(r["model"], "scripted");
        assert!(r["seed"].is_u64());
        assert_eq!(
            r["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"],
            json!(["up", "down", "left", "right"])
        );
        assert!(user_text(r).contains("Current observation"));
    }
    let mut branched = 0;
    for t in &trees {
        for e in &t.episodes {
            for s in &e.steps {
                // The explorer fills in the index from the action space.
                assert_eq!(
                    s.action_index,
                    ["up", "down", "left", "right"]
                        .iter()
                        .position(|a| *a == s.action)
                );
                assert!((s.log_prob + 0.75).abs() < 1e-6, "log-probs are kept");
            }
            if e.origin == Origin::Branch {
                branched += 1;
                assert!(e.experience_in_context);
                assert_eq!(
                    e.steps[0].action, "left",
                    "the experience changed the action"
                );
            }
        }
    }
    assert!(branched > 0);
    assert!(
        requests.iter().any(|r| user_text(r).contains("Diagnosis:")),
        "branch prompts carry the experience summary"
    );
}

#[test]
fn malformed_replies_are_asked_again_then_replaced_by_a_legal_action() {
    // Prose first; a valid action once told what was wrong.
    let (url, _) = server(Arc::new(|req: &Value, _| {
        let reply = if user_text(req).contains("was not valid") {
            json!({ "action": "right" }).to_string()
        } else {
            "I would go north".into()
        };
        (200, completion(&reply), 0)
    }));
    let policy = LlmPolicy::new("llm", config(&url)).unwrap();
    explore_grids(&policy);
    let s = policy.stats();
    assert!(s.reasked > 0 && s.invalid == 0, "{s:?}");
    // Never valid: each turn falls back to a legal action, counted.
    let (url, _) = server(Arc::new(|_: &Value, _| (200, completion("fly away"), 0)));
    let policy = LlmPolicy::new("llm", config(&url)).unwrap();
    let trees = explore_grids(&policy);
    let s = policy.stats();
    assert!(s.invalid > 0 && s.invalid == s.reasked, "{s:?}");
    for t in &trees {
        for e in &t.episodes {
            assert!(e.steps.iter().all(|st| st.action_index.is_some()));
        }
    }
}

#[test]
fn server_errors_are_retried_and_client_errors_reported() {
    // Two 500s, then answers: retried with backoff.
    let (url, _) = server(Arc::new(|_: &Value, n| {
        if n <= 2 {
            (500, "{\"error\": \"overloaded\"}".into(), 0)
        } else {
            (200, completion("{\"action\": \"up\"}"), 0)
        }
    }));
    let policy = LlmPolicy::new(
        "llm",
        LlmConfig {
            max_in_flight: 1,
            ..config(&url)
        },
    )
    .unwrap();
    let mut env = Gridworld::with_config(GridworldConfig::default());
    let grid = generate(&GridworldGenConfig {
        count: 1,
        ..Default::default()
    })
    .unwrap()
    .remove(0);
    let obs = env.reset(&grid, 0).unwrap();
    let legal = env.legal_actions();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let mut memory = None;
    let mut turn = [leafe::policy::Turn {
        history: &[],
        observation: &obs,
        legal: &legal,
        experience: None,
        rng: &mut rng,
        memory: &mut memory,
    }];
    let d = policy.act(&mut turn, 1.0).unwrap();
    assert_eq!(d[0].action, "up");
    assert_eq!(policy.stats().retried, 2);
    // A 400 is the caller's mistake: reported at once, with the server's words.
    let (url, seen) = server(Arc::new(|_: &Value, _| {
        (400, "{\"error\": \"unknown model\"}".into(), 0)
    }));
    let policy = LlmPolicy::new("llm", config(&url)).unwrap();
    let err = policy.act(&mut turn, 1.0).unwrap_err();
    assert!(matches!(err, PolicyError::Llm { .. }));
    let text = err.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("unknown model"),
        "{text}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "no retry on a 400");
    // Too slow: a timeout, retried, then an error naming the endpoint.
    let (url, seen) = server(Arc::new(|_: &Value, _| (200, completion("up"), 1_500)));
    let policy = LlmPolicy::new(
        "llm",
        LlmConfig {
            timeout_ms: 200,
            retries: 1,
            ..config(&url)
        },
    )
    .unwrap();
    let text = policy.act(&mut turn, 1.0).unwrap_err().to_string();
    assert!(
        text.contains(&url) && text.contains("request failed"),
        "{text}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "one retry");
}

fn explore_with(
    policy: &LlmPolicy,
    reflector: &dyn leafe::reflect::Reflector,
) -> Vec<leafe::explore::TaskTree> {
    explore_on(policy, reflector, 3, 5)
}

/// Explores `count` generated grids (seed `seed`): budget 60, episodes of 8
/// steps, 2 branches, depth 1, reflection only at failed ends.
fn explore_on(
    policy: &LlmPolicy,
    reflector: &dyn leafe::reflect::Reflector,
    count: usize,
    seed: u64,
) -> Vec<leafe::explore::TaskTree> {
    let grids = generate(&GridworldGenConfig {
        count,
        seed,
        ..GridworldGenConfig::default()
    })
    .unwrap();
    let tasks = grids
        .into_iter()
        .enumerate()
        .map(|(i, g)| Task {
            index: i as u64,
            task: g,
            source: format!("g#{i}"),
        })
        .collect();
    let cfg = ExploreConfig {
        budget: 60,
        max_steps: 8,
        branches: 2,
        max_depth: 1,
        reflect_every: 0,
        ..ExploreConfig::default()
    };
    let mut trees = Vec::new();
    explore(
        tasks,
        &|| Ok(Gridworld::with_config(GridworldConfig { max_steps: 8 })),
        policy,
        reflector,
        &cfg,
        |t| {
            trees.push(t);
            Ok(())
        },
    )
    .unwrap();
    trees
}

fn is_reflection(req: &Value) -> bool {
    req["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("review failed attempts"))
}

#[test]
fn the_llm_reflector_names_tau_from_the_feedback_and_falls_back_when_malformed() {
    use leafe::policy::llm::LlmReflector;
    use leafe::reflect::Reflector;
    let (url, seen) = server(Arc::new(|req: &Value, _| {
        if is_reflection(req) {
            // "tau between A and B": the first owned step.
            let text = user_text(req);
            let a: usize = text
                .split("tau between ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|x| x.parse().ok())
                .unwrap();
            let reply = json!({ "tau": a, "critical_action": "up", "category": "wandered",
                "irreversible": false, "diagnosis": "kept walking into walls", "fix": "walk right" });
            (200, completion(&reply.to_string()), 0)
        } else {
            (200, completion("{\"action\": \"up\"}"), 0)
        }
    }));
    let policy = LlmPolicy::new("llm", config(&url)).unwrap();
    let reflector =
        LlmReflector::new("llm-reflector", config(&url), Box::new(GridReflector)).unwrap();
    assert_eq!(reflector.name(), "llm-reflector");
    let trees = explore_with(&policy, &reflector);
    let reflections: Vec<_> = trees.iter().flat_map(|t| &t.reflections).collect();
    assert!(!reflections.is_empty());
    for r in &reflections {
        assert_eq!(r.reflector, "llm-reflector");
        assert_eq!(r.experience.category, "wandered");
        assert_eq!(r.experience.fix, "walk right");
    }
    let asked: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| is_reflection(r))
        .cloned()
        .collect();
    assert_eq!(asked.len(), reflections.len());
    assert!(
        user_text(&asked[0]).contains("feedback:"),
        "the model reads the feedback"
    );
    assert_eq!(reflector.stats().invalid, 0);

    // A reply whose tau is outside the trajectory, twice: the rules answer,
    // and the reflection says so.
    let (url, _) = server(Arc::new(|req: &Value, _| {
        if is_reflection(req) {
            let reply = json!({ "tau": 999, "critical_action": null, "category": "x",
                "irreversible": false, "diagnosis": "d", "fix": "f" });
            (200, completion(&reply.to_string()), 0)
        } else {
            (200, completion("{\"action\": \"up\"}"), 0)
        }
    }));
    let policy = LlmPolicy::new("llm", config(&url)).unwrap();
    let reflector =
        LlmReflector::new("llm-reflector", config(&url), Box::new(GridReflector)).unwrap();
    let trees = explore_with(&policy, &reflector);
    let reflections: Vec<_> = trees.iter().flat_map(|t| &t.reflections).collect();
    assert!(!reflections.is_empty());
    for r in &reflections {
        assert_eq!(r.reflector, "gridworld-rules (fallback of llm-reflector)");
    }
    let s = reflector.stats();
    assert_eq!(s.invalid as usize, reflections.len());
    assert_eq!(s.reasked as usize, reflections.len());
}

#[test]
fn leafe_explore_drives_an_llm_in_an_environment_process_and_export_reads_the_runs() {
    use crate::common::{leafe, local_store};
    let (url, seen) = server(Arc::new(|req: &Value, _| {
        let legal =
            &req["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"];
        assert_eq!(legal, &json!(["left", "right"]));
        // Left until told otherwise: the pit, a reflection, then right.
        let action = if user_text(req).contains("Experience from an earlier attempt") {
            "right"
        } else {
            "left"
        };
        (200, completion(&json!({ "action": action }).to_string()), 0)
    }));
    let (dir, store) = local_store();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "1\n2\n3\n").unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/corridor.py");
    let env = format!("cmd:python3 {}", script.display());
    let (code, out, err) = leafe(&[
        "explore",
        "--store",
        &store,
        "--env",
        &env,
        "--policy",
        "openai",
        "--base-url",
        &url,
        "--model",
        "scripted",
        "--levels",
        ids.to_str().unwrap(),
        "--run-id",
        "c",
        "--budget",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 tasks in 1 chunk(s)") && out.contains("by replay"),
        "{out}"
    );
    assert!(err.contains("LLM: ") && err.contains("0 invalid"), "{err}");
    assert!(!seen.lock().unwrap().is_empty());
    let (code, csv, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n, SUM(CAST(success AS INT)) AS ok, MIN(policy) AS p FROM episodes \
         WHERE run_id LIKE 'c.%' AND origin = 'branch'",
    ]);
    assert_eq!(code, 0, "{err}");
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert!(
        row[0].parse::<i64>().unwrap() > 0 && row[1].parse::<i64>().unwrap() > 0,
        "{csv}"
    );
    assert_eq!(row[2], "scripted");
    let (code, csv, _) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM reflections WHERE run_id LIKE 'c.%' AND category = 'fell_into_pit'",
    ]);
    assert_eq!(code, 0);
    assert!(
        csv.lines().nth(1).unwrap().parse::<i64>().unwrap() > 0,
        "{csv}"
    );
    // Every request is a row of llm_calls, and every step points at the
    // call that chose it: the action it parsed and the prompt it saw.
    let requests = seen.lock().unwrap().len();
    let (code, csv, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT COUNT(*) AS calls, SUM(CAST(valid AS INT)) AS valid, SUM(CAST(cached AS INT)) AS cached, \
         COUNT(DISTINCT kind) AS kinds, MIN(model) AS model FROM llm_calls WHERE run_id LIKE 'c.%'",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        csv.lines().nth(1).unwrap(),
        format!("{requests},{requests},0,1,scripted"),
        "{csv}"
    );
    let (code, csv, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT COUNT(*) AS steps, \
         SUM(CASE WHEN c.parsed = s.action_text AND c.messages LIKE '%' || s.observation || '%' THEN 1 ELSE 0 END) AS linked \
         FROM steps s LEFT JOIN llm_calls c ON c.run_id = s.run_id AND c.call_id = s.llm_call_id \
         WHERE s.run_id LIKE 'c.%'",
    ]);
    assert_eq!(code, 0, "{err}");
    let row: Vec<i64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(row[0] > 0 && row[0] == row[1], "{csv}");
    // The same job again without a server, every reply from the record:
    // the same steps, and not one request.
    // `--llm-replay only` against a port nothing listens on.
    let replayed = |run_id: &str, more: &[&str]| {
        let mut args = vec![
            "explore",
            "--store",
            &store,
            "--env",
            &env,
            "--policy",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--model",
            "scripted",
            "--levels",
            ids.to_str().unwrap(),
            "--run-id",
            run_id,
            "--llm-replay",
            "only",
        ];
        args.extend_from_slice(more);
        leafe(&args)
    };
    let (code, out2, err) = replayed("c-replayed", &["--budget", "60"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("({requests} from recorded replies)")),
        "{err}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        requests,
        "a replayed run asks nothing"
    );
    let trace = |pattern: &str| {
        let (code, csv, err) = leafe(&[
            "sql",
            "--store",
            &store,
            "--format",
            "csv",
            &format!(
                "SELECT e.task_id, e.origin, e.sample_index, s.t, s.action_text, s.reward FROM steps s \
                 JOIN episodes e ON e.run_id = s.run_id AND e.episode_id = s.episode_id \
                 WHERE s.run_id LIKE '{pattern}' ORDER BY 1, 2, 3, 4"
            ),
        ]);
        assert_eq!(code, 0, "{err}");
        csv
    };
    assert_eq!(trace("c.%"), trace("c-replayed.%"));
    assert_eq!(
        out.split(" env steps")
            .next()
            .unwrap()
            .split("committed), ")
            .nth(1),
        out2.split(" env steps")
            .next()
            .unwrap()
            .split("committed), ")
            .nth(1),
        "{out}\n{out2}"
    );
    // A request that was never recorded (another seed) is refused in one line.
    let (code, _, err) = replayed("c-other-seed", &["--seed", "99"]);
    assert_ne!(code, 0);
    assert!(err.contains("no recorded reply for request"), "{err}");
    let out_file = dir.path().join("c.jsonl");
    let (code, _, err) = leafe(&[
        "export",
        "--store",
        &store,
        "--runs",
        "c.%",
        "--dataset",
        "counterfactual",
        "--format",
        "trl-messages",
        "--system-prompt",
        "walk the corridor",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.lines().count() > 0 && text.contains("right"), "{text}");
    // Pass@k of the LLM in the process environment.
    let (code, csv, err) = leafe(&[
        "eval",
        "--store",
        &store,
        "--env",
        &env,
        "--policy",
        "openai",
        "--base-url",
        &url,
        "--model",
        "scripted",
        "--levels",
        ids.to_str().unwrap(),
        "--samples",
        "4",
        "--max-steps",
        "10",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("model,split,tasks,samples,pass@1"), "{csv}");
    // Walking left always falls into the pit: Pass@4 is 0.
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("scripted,test,3,4,0.0"),
        "{csv}"
    );
    // The burn policy of a process environment is a text model of the
    // store: one that is not there is one clear line.
    let (code, _, err) = leafe(&[
        "explore",
        "--store",
        &store,
        "--env",
        &env,
        "--model",
        "m",
        "--levels",
        ids.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("model `m` not found"), "{err}");
}

/// Opt-in, with a real model: set `LEAFE_LLM_BASE_URL` to a running
/// OpenAI-compatible server (and `LEAFE_LLM_MODEL` to its model name) —
/// docs/llm.md, "A real model", starts llama.cpp's `llama-server` with the Gemma 3
/// 270M GGUF from PyPI. Explores the Python corridor with the model as the
/// policy and the reflector, through the command line, and prints what it did.
#[test]
fn a_real_model_explores_the_corridor_when_asked_to() {
    use crate::common::{leafe, local_store};
    let Ok(url) = std::env::var("LEAFE_LLM_BASE_URL") else {
        eprintln!("skipped: set LEAFE_LLM_BASE_URL to run against a real model");
        return;
    };
    let model = std::env::var("LEAFE_LLM_MODEL").unwrap_or_else(|_| "default".into());
    let (dir, store) = local_store();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, (0..4).map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/corridor.py");
    let env = format!("cmd:python3 {}", script.display());
    let started = std::time::Instant::now();
    let (code, out, err) = leafe(&[
        "explore",
        "--store",
        &store,
        "--env",
        &env,
        "--policy",
        "openai",
        "--reflector",
        "llm",
        "--base-url",
        &url,
        "--model",
        &model,
        "--levels",
        ids.to_str().unwrap(),
        "--run-id",
        "real",
        "--budget",
        "40",
        "--branches",
        "2",
        "--max-depth",
        "1",
        "--reflect-every",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, csv, _) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT origin, COUNT(*) AS episodes, SUM(CAST(success AS INT)) AS solved, SUM(interaction_cost) AS steps \
         FROM episodes GROUP BY origin ORDER BY origin",
    ]);
    let (_, refl, _) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT reflector, category, COUNT(*) AS n FROM reflections GROUP BY 1, 2 ORDER BY 3 DESC",
    ]);
    println!(
        "real model `{model}` at {url}, {:.0} s:\n{out}{err}\n{csv}\n{refl}",
        started.elapsed().as_secs_f64()
    );
}
