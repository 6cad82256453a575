//! Stage 1 on real output: pretrain → checkpoint → explore → store.

use std::collections::{BTreeMap, HashMap};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use leafe::explore::{ExploreConfig, Origin, Task, TaskTree, World, explore};
use leafe::pipeline::{ExploreJob, Shard};
use leafe::policy::{NeuralPolicy, PolicyNetConfig};
use leafe::query::{QuerySession, QueryText};
use leafe::store::Store;
use leafe::train::{FitConfig, PretrainConfig, load_policy, pretrain_world, save_policy};
use leafe::worlds::SokobanWorld;
use leafe::worlds::sokoban::generate::{GeneratorConfig, generate};
use leafe::worlds::sokoban::reflect::SokobanReflector;
use leafe::worlds::sokoban::{Level, Sokoban, SokobanPlanes};

use crate::common::{local_store, rt};

fn levels(count: usize, seed: u64) -> Vec<Level> {
    generate(&GeneratorConfig {
        width: 6,
        height: 6,
        boxes: 2,
        count,
        seed,
        min_pushes: 4,
        ..GeneratorConfig::default()
    })
    .unwrap()
}

fn tiny_base() -> NeuralPolicy {
    let cfg = PretrainConfig {
        demo_levels: 60,
        net: PolicyNetConfig::new().with_hidden(64),
        fit: FitConfig {
            epochs: 6,
            batch_size: 64,
            ..FitConfig::default()
        },
        ..PretrainConfig::default()
    };
    let (policy, report) =
        pretrain_world(&SokobanWorld, &levels(60, 100), &cfg, |_, _, _| {}).unwrap();
    assert!(
        report.epoch_losses.last().unwrap() < report.epoch_losses.first().unwrap(),
        "{:?}",
        report.epoch_losses
    );
    policy
}

fn config() -> ExploreConfig {
    ExploreConfig {
        budget: 300,
        branches: 3,
        max_depth: 2,
        target_successes: 2,
        parallel_tasks: 8,
        seed: 7,
        ..ExploreConfig::default()
    }
}

fn tasks(levels: &[Level]) -> Vec<Task<Level>> {
    levels
        .iter()
        .enumerate()
        .map(|(i, l)| Task {
            index: i as u64,
            task: l.clone(),
            source: format!("t#{i}"),
        })
        .collect()
}

/// The `done` column the store gets for an episode's steps.
fn stored_done(e: &leafe::explore::EpisodeOut) -> Vec<bool> {
    let mut b = leafe::store::StepBatchBuilder::default();
    leafe::explore::rows::push_steps(&mut b, e.id, &e.steps, e.experience_in_context);
    let batch = b.finish();
    let done = batch.column_by_name("done").unwrap().as_boolean().clone();
    (0..done.len()).map(|i| done.value(i)).collect()
}

fn run_explore(policy: &NeuralPolicy, levels: &[Level], cfg: &ExploreConfig) -> Vec<TaskTree> {
    let mut trees = Vec::new();
    let reflector = SokobanReflector::new(cfg.reflector.clone());
    let policy = policy.clone().with_guide(SokobanWorld.guide(&cfg.guidance));
    let max_steps = cfg.max_steps as usize;
    let make_env = || SokobanWorld.make_env(max_steps);
    explore(tasks(levels), &make_env, &policy, &reflector, cfg, |t| {
        trees.push(t);
        Ok(())
    })
    .unwrap();
    trees.sort_by_key(|t| t.task_index);
    trees
}

#[test]
fn a_checkpoint_round_trips_through_the_store_with_identical_probabilities() {
    let policy = tiny_base();
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let lv = levels(5, 3);
    let envs: Vec<_> = lv
        .iter()
        .map(|l| leafe::worlds::sokoban::Sokoban::new(l.clone(), Default::default()))
        .collect();
    let mut planes = Vec::new();
    policy
        .encode_batch(
            envs.iter()
                .map(|e| e.observation())
                .collect::<Vec<_>>()
                .iter(),
            &mut planes,
        )
        .unwrap();
    let before = policy.log_probs(&planes, envs.len()).unwrap();
    rt().block_on(async {
        save_policy(&store, "base", &policy, serde_json::json!({"test": true}))
            .await
            .unwrap();
        let loaded = load_policy(&store, "base", std::sync::Arc::new(SokobanPlanes))
            .await
            .unwrap();
        assert_eq!(loaded.config(), policy.config());
        assert_eq!(loaded.log_probs(&planes, envs.len()).unwrap(), before);
        // Names are never overwritten; unknown names say what exists.
        assert!(
            save_policy(&store, "base", &policy, serde_json::Value::Null)
                .await
                .is_err()
        );
        let err = load_policy(&store, "nope", std::sync::Arc::new(SokobanPlanes))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("base"), "{err}");
    });
    // The distribution is a distribution.
    for row in before.chunks(4) {
        let total: f32 = row.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
}

#[test]
fn explored_trees_keep_their_invariants_and_the_same_seed_gives_the_same_trees() {
    let policy = tiny_base();
    let lv = levels(24, 200);
    let cfg = config();
    let trees = run_explore(&policy, &lv, &cfg);
    assert_eq!(trees.len(), lv.len());
    let mut branches = 0;
    let mut successful_branches = 0;
    for tree in &trees {
        assert!(
            tree.interaction_cost <= cfg.budget,
            "budget exceeded: {}",
            tree.interaction_cost
        );
        let own: usize = tree.episodes.iter().map(|e| e.steps.len()).sum();
        assert_eq!(
            own, tree.interaction_cost,
            "cost = own steps only (no replayed prefix)"
        );
        let by_id: HashMap<i64, _> = tree.episodes.iter().map(|e| (e.id, e)).collect();
        assert_eq!(by_id.len(), tree.episodes.len(), "unique ids");
        let reflections: HashMap<i64, _> = tree.reflections.iter().map(|r| (r.id, r)).collect();
        assert_eq!(tree.episodes[0].origin, Origin::Root);
        for e in &tree.episodes {
            assert!(e.depth <= cfg.max_depth);
            let start = e.rollback_step.unwrap_or(0);
            assert_eq!(e.length, start + e.steps.len());
            for (i, s) in e.steps.iter().enumerate() {
                assert_eq!(s.t, start + i, "steps are contiguous from tau");
            }
            assert_eq!(stored_done(e).last().copied(), Some(true));
            if e.origin == Origin::Branch {
                branches += 1;
                successful_branches += usize::from(e.success);
                let parent = by_id[&e.parent.unwrap()];
                assert!(!parent.success, "a branch's parent failed");
                assert_eq!(e.depth, parent.depth + 1);
                let r = reflections[&e.reflection.unwrap()];
                assert_eq!(r.episode, parent.id, "the reflection is on the parent");
                assert_eq!(
                    r.experience.tau,
                    e.rollback_step.unwrap(),
                    "branch starts at tau"
                );
                assert!(
                    r.experience.tau >= parent.rollback_step.unwrap_or(0),
                    "tau lies in the parent's own steps"
                );
                assert_eq!(e.steps[0].t, r.experience.tau);
                assert!(e.experience_in_context);
            }
            if e.success {
                assert_eq!(e.status, "solved");
            }
        }
    }
    assert!(branches > 20, "expected branching, got {branches}");
    assert!(successful_branches > 0, "some branch should succeed");

    // Same seed, same trees — also with another batch composition.
    let again = run_explore(
        &policy,
        &lv,
        &ExploreConfig {
            parallel_tasks: 3,
            ..cfg.clone()
        },
    );
    let key = |ts: &[TaskTree]| -> Vec<(i64, Option<i64>, Vec<usize>)> {
        ts.iter()
            .flat_map(|t| {
                t.episodes.iter().map(|e| {
                    (
                        e.id,
                        e.parent,
                        e.steps.iter().map(|s| s.action_index.unwrap()).collect(),
                    )
                })
            })
            .collect()
    };
    assert_eq!(key(&trees), key(&again));
    let other = run_explore(
        &policy,
        &lv,
        &ExploreConfig {
            seed: 8,
            ..cfg.clone()
        },
    );
    assert_ne!(key(&trees), key(&other));

    // Without experience: branches still start at tau, unguided.
    let ablation = run_explore(
        &policy,
        &lv[..6],
        &ExploreConfig {
            use_experience: false,
            ..cfg
        },
    );
    assert!(
        ablation
            .iter()
            .flat_map(|t| &t.episodes)
            .filter(|e| e.origin == Origin::Branch)
            .all(|e| !e.experience_in_context)
    );
}

#[test]
fn rejection_sampling_resamples_roots_within_the_budget_and_never_reflects() {
    let policy = tiny_base();
    let lv = levels(16, 300);
    let cfg = ExploreConfig {
        max_depth: 0,
        root_samples: 12,
        budget: 400,
        target_successes: 2,
        ..config()
    };
    let trees = run_explore(&policy, &lv, &cfg);
    assert_eq!(trees.len(), lv.len());
    let mut resampled = 0;
    for t in &trees {
        assert!(t.reflections.is_empty());
        assert!(t.interaction_cost <= cfg.budget);
        assert_eq!(
            t.interaction_cost,
            t.episodes.iter().map(|e| e.steps.len()).sum::<usize>()
        );
        assert!(t.episodes.len() <= cfg.root_samples);
        let successes = t.episodes.iter().filter(|e| e.success).count();
        assert!(successes <= cfg.target_successes);
        for (i, e) in t.episodes.iter().enumerate() {
            assert_eq!(e.origin, Origin::Root);
            assert_eq!((e.depth, e.sample_index, e.parent), (0, i, None));
            assert_eq!(e.steps.first().map(|s| s.t), Some(0));
        }
        // A task stops only for a reason: enough successes, no budget, or
        // the sample cap.
        let last = t.episodes.last().unwrap();
        assert!(
            successes == cfg.target_successes
                || t.interaction_cost == cfg.budget
                || last.status == "budget"
                || t.episodes.len() == cfg.root_samples,
            "{} episodes, {successes} successes, cost {}",
            t.episodes.len(),
            t.interaction_cost
        );
        resampled += usize::from(t.episodes.len() > 1);
    }
    assert!(resampled > 0, "no task sampled a second root");
    // Without resampling, one root per task.
    let single = run_explore(
        &policy,
        &lv,
        &ExploreConfig {
            root_samples: 1,
            ..cfg.clone()
        },
    );
    assert!(single.iter().all(|t| t.episodes.len() == 1));
}

async fn count(store: &Store, sql: &str) -> i64 {
    let s = QuerySession::open(store).await.unwrap();
    let b = s
        .collect(&QueryText::inline(sql).bind(&BTreeMap::new()).unwrap())
        .await
        .unwrap();
    b[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[test]
fn an_exploration_job_lands_in_the_store_resumes_without_duplicates_and_shards() {
    let policy = tiny_base();
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let lv = levels(20, 300);
    let job = |run_id: &str, shard: Shard| ExploreJob {
        run_id: run_id.into(),
        model: "base".into(),
        levels_source: "gen.txt".into(),
        levels: lv.clone(),
        split: Some("train".into()),
        shard,
        chunk_tasks: 6,
        config: config(),
        command_line: "test".into(),
    };
    rt().block_on(async {
        save_policy(&store, "base", &policy, serde_json::Value::Null).await.unwrap();
        let s = job("j", Shard::ALL).run(&SokobanWorld, &store, &()).await.unwrap();
        assert_eq!((s.tasks, s.chunks, s.skipped), (20, 4, 0));
        let episodes = count(&store, "SELECT COUNT(*) FROM episodes WHERE run_id LIKE 'j.%'").await;
        assert_eq!(episodes as usize, s.episodes);
        assert_eq!(count(&store, "SELECT COUNT(DISTINCT task_id) FROM episodes").await, 20);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM reflections").await as usize, s.reflections);
        assert_eq!(count(&store, "SELECT SUM(interaction_cost) FROM episodes").await as usize, s.env_steps);
        // Store round trip keeps the tree pointers: every branch's first step is at tau.
        let bad = count(
            &store,
            "SELECT COUNT(*) FROM episodes e JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id \
             WHERE e.origin = 'branch' AND s.t < e.rollback_step",
        )
        .await;
        assert_eq!(bad, 0);
        let orphans = count(
            &store,
            "SELECT COUNT(*) FROM episodes b LEFT JOIN reflections r ON r.run_id = b.run_id AND r.reflection_id = b.reflection_id \
             WHERE b.origin = 'branch' AND (r.episode_id IS NULL OR r.episode_id <> b.parent_episode_id)",
        )
        .await;
        assert_eq!(orphans, 0);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM runs WHERE kind = 'explore'").await, 4);

        // A crash before the last chunk's commit: its marker never came.
        let last = store.commits().await.unwrap().into_iter().filter(|m| m.run_id.starts_with("j.c")).max_by_key(|m| m.run_id.clone()).unwrap();
        std::fs::remove_file(std::path::Path::new(&url).join(format!("_leafe/commits/{}.json", last.run_id))).unwrap();
        assert_eq!(count(&store, "SELECT COUNT(DISTINCT task_id) FROM episodes").await, 18);
        let s2 = job("j", Shard::ALL).run(&SokobanWorld, &store, &()).await.unwrap();
        assert_eq!((s2.tasks, s2.skipped), (2, 18));
        assert_eq!(count(&store, "SELECT COUNT(DISTINCT task_id) FROM episodes").await, 20);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM episodes").await, episodes, "same trees, no duplicates");
        let s3 = job("j", Shard::ALL).run(&SokobanWorld, &store, &()).await.unwrap();
        assert_eq!((s3.tasks, s3.skipped), (0, 20));
        // Other settings under the same id are refused.
        let mut other = job("j", Shard::ALL);
        other.config.seed = 99;
        assert!(other.run(&SokobanWorld, &store, &()).await.unwrap_err().to_string().contains("other settings"));

        // Two shards split the tasks between them.
        let a = job("k", Shard { index: 0, count: 2 }).run(&SokobanWorld, &store, &()).await.unwrap();
        let b = job("k", Shard { index: 1, count: 2 }).run(&SokobanWorld, &store, &()).await.unwrap();
        assert_eq!((a.tasks, b.tasks), (10, 10));
        assert_eq!(count(&store, "SELECT COUNT(DISTINCT task_id) FROM episodes WHERE run_id LIKE 'k.%'").await, 20);
    });
}

#[test]
fn observations_in_the_store_encode_to_the_same_planes_as_the_live_state() {
    use leafe::worlds::sokoban::{CHANNELS, encode_text_planes};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for level in levels(20, 9) {
        let mut env = Sokoban::new(level, Default::default());
        for _ in 0..30 {
            let (mut a, mut b) = (
                vec![0.0; CHANNELS.len() * 100],
                vec![0.0; CHANNELS.len() * 100],
            );
            env.encode_planes(10, 10, &mut a).unwrap();
            encode_text_planes(&env.render_text(), 10, 10, &mut b).unwrap();
            assert_eq!(a, b, "{}", env.render_text());
            if env
                .act(rng.random_range(0..4))
                .unwrap()
                .status
                .is_terminal()
            {
                break;
            }
        }
    }
    let mut out = vec![0.0; CHANNELS.len() * 4];
    assert!(encode_text_planes("#x", 2, 2, &mut out).is_err());
    assert!(encode_text_planes("#####", 2, 2, &mut out).is_err());
}

#[test]
fn grpo_samples_through_the_store_within_budget_and_sql_advantages_match_rust() {
    use leafe::train::grpo::{GrpoConfig, grpo};
    let policy = tiny_base();
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let lv = levels(12, 400);
    let cfg = GrpoConfig {
        group_size: 4,
        tasks_per_iteration: 6,
        epochs: 1,
        ..GrpoConfig::default()
    };
    rt().block_on(async {
        let budget = 2000;
        let (_, report) = grpo(
            &store,
            &policy,
            &lv,
            &|| SokobanWorld.make_env(cfg.max_steps as usize),
            "g",
            budget,
            None,
            &cfg,
            "test",
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(report.iterations >= 2, "{report:?}");
        let steps = count(
            &store,
            "SELECT SUM(interaction_cost) FROM episodes WHERE origin = 'grpo'",
        )
        .await as u64;
        assert_eq!(steps, report.env_steps);
        // At most one iteration's worth over budget (the last is sized to what is left).
        assert!(
            report.env_steps < budget + (cfg.group_size * cfg.max_steps as usize) as u64,
            "{report:?}"
        );

        // Group-normalised advantages from SQL equal a direct computation.
        let s = QuerySession::open(&store).await.unwrap();
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/queries/grpo_groups.sql"
        ));
        // With the shaped return as the reward (success: checked below).
        let q = QueryText::from_file(path)
            .unwrap()
            .bind(&BTreeMap::from([(
                "reward".to_string(),
                "return".to_string(),
            )]))
            .unwrap();
        let mut groups: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
        for b in s.collect(&q).await.unwrap() {
            let run = b
                .column_by_name("run_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let task = b
                .column_by_name("task_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let ret = b
                .column_by_name("episode_return")
                .unwrap()
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone();
            let adv = b
                .column_by_name("advantage")
                .unwrap()
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone();
            for i in 0..b.num_rows() {
                groups
                    .entry((run.value(i).into(), task.value(i).into()))
                    .or_default()
                    .push((ret.value(i), adv.value(i)));
            }
        }
        assert!(!groups.is_empty());
        for rows in groups.values() {
            assert_eq!(rows.len(), cfg.group_size);
            let n = rows.len() as f64;
            let mean = rows.iter().map(|r| r.0).sum::<f64>() / n;
            let std = (rows.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / n).sqrt();
            for &(ret, adv) in rows {
                assert!(
                    (adv - (ret - mean) / (std + 1e-6)).abs() < 1e-6,
                    "{adv} vs {ret} {mean} {std}"
                );
            }
        }
        // The default reward is success (1/0): the same normalisation of it.
        let q = QueryText::from_file(path)
            .unwrap()
            .bind(&BTreeMap::new())
            .unwrap();
        let mut by_group: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
        for b in s.collect(&q).await.unwrap() {
            let run = b
                .column_by_name("run_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let task = b
                .column_by_name("task_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            let ok = b.column_by_name("success").unwrap().as_boolean().clone();
            let adv = b
                .column_by_name("advantage")
                .unwrap()
                .as_primitive::<arrow::datatypes::Float64Type>()
                .clone();
            for i in 0..b.num_rows() {
                by_group
                    .entry((run.value(i).into(), task.value(i).into()))
                    .or_default()
                    .push((f64::from(u8::from(ok.value(i))), adv.value(i)));
            }
        }
        for rows in by_group.values() {
            let n = rows.len() as f64;
            let mean = rows.iter().map(|r| r.0).sum::<f64>() / n;
            let std = (rows.iter().map(|r| (r.0 - mean).powi(2)).sum::<f64>() / n).sqrt();
            for &(r, adv) in rows {
                assert!(
                    (adv - (r - mean) / (std + 1e-6)).abs() < 1e-6,
                    "{adv} vs {r}"
                );
                if std == 0.0 {
                    assert_eq!(adv, 0.0, "an all-equal group carries no signal");
                }
            }
        }
    });
}

/// GRPO with the success reward learns a trivially easy task: walk right,
/// then push the box onto the target. From an untrained network the
/// samples' success rate rises well above where it started.
#[test]
fn grpo_raises_the_success_of_an_untrained_policy_on_a_trivially_easy_task() {
    use leafe::train::grpo::{GrpoConfig, GrpoReward, grpo};
    let cfg_net = PolicyNetConfig::new().with_hidden(32);
    let net = cfg_net.init(&leafe::policy::default_device(), 5);
    let policy = NeuralPolicy::new(
        "untrained",
        cfg_net,
        net,
        std::sync::Arc::new(SokobanPlanes),
    )
    .unwrap();
    let easy = leafe::worlds::sokoban::levels::parse_levels("######\n#@ $.#\n######", "easy")
        .unwrap()
        .remove(0);
    let lv = vec![easy; 8];
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let cfg = GrpoConfig {
        group_size: 8,
        tasks_per_iteration: 8,
        max_steps: 4,
        epochs: 2,
        batch_size: 64,
        learning_rate: 3e-3,
        kl_coef: 0.0,
        reward: GrpoReward::Success,
        ..GrpoConfig::default()
    };
    let (_, report) = rt()
        .block_on(grpo(
            &store,
            &policy,
            &lv,
            &|| SokobanWorld.make_env(cfg.max_steps as usize),
            "easy",
            40 * 8 * 8 * 4,
            None,
            &cfg,
            "test",
            |_, _| {},
        ))
        .unwrap();
    let s = &report.success_rates;
    assert!(s.len() >= 30, "{report:?}");
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (first, last) = (mean(&s[..3]), mean(&s[s.len() - 5..]));
    assert!(
        last > first + 0.3 && last > 0.8,
        "success {first:.2} → {last:.2}: {s:?}"
    );
}

/// One GRPO update on a fixed batch raises the log-probability of the
/// positive-advantage actions and lowers that of the negative ones.
#[test]
fn a_grpo_update_raises_positive_advantage_actions_on_a_fixed_batch() {
    use leafe::env::Observation;
    use leafe::train::grpo::{GrpoConfig, update_on_batch};
    let policy = tiny_base();
    let lv = levels(4, 77);
    let obs: Vec<Observation> = lv
        .iter()
        .map(|l| Sokoban::new(l.clone(), Default::default()).observation())
        .collect();
    let width = policy.config().input_size();
    let logp = |p: &NeuralPolicy, o: &Observation, a: usize| {
        let mut planes = vec![0.0; width];
        p.encoder()
            .encode(o, p.config().board, &mut planes)
            .unwrap();
        p.log_probs(&planes, 1).unwrap()[a]
    };
    // Levels 0 and 1: action `up` was good; levels 2 and 3: `left` was bad.
    let rows: Vec<(Observation, usize, f32, f32)> = obs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let (a, adv) = if i < 2 { (0, 1.0) } else { (2, -1.0) };
            (o.clone(), a, logp(&policy, o, a), adv)
        })
        .collect();
    let cfg = GrpoConfig {
        epochs: 5,
        learning_rate: 1e-3,
        kl_coef: 0.0,
        ..GrpoConfig::default()
    };
    let updated = update_on_batch(&policy, &policy, &rows, &cfg).unwrap();
    for (o, a, before, adv) in &rows {
        let after = logp(&updated, o, *a);
        if *adv > 0.0 {
            assert!(
                after > *before + 1e-3,
                "positive advantage: {before} → {after}"
            );
        } else {
            assert!(
                after < *before - 1e-3,
                "negative advantage: {before} → {after}"
            );
        }
    }
    // No advantage, no KL: nothing moves.
    let zero: Vec<_> = rows
        .iter()
        .map(|(o, a, l, _)| (o.clone(), *a, *l, 0.0))
        .collect();
    let same = update_on_batch(&policy, &policy, &zero, &cfg).unwrap();
    for (o, a, before, _) in &zero {
        assert!((logp(&same, o, *a) - before).abs() < 1e-5);
    }
}

/// Distillation's weighted loss (Σ w·CE / Σ w, rehearsal rows weighted by
/// beta): on states where the counterfactual action and a rehearsed action
/// disagree, a small beta moves the policy toward the counterfactual
/// action, a large one toward the rehearsed action.
#[test]
fn beta_weights_rehearsal_against_the_counterfactual_actions() {
    use leafe::env::Observation;
    use leafe::train::{FitConfig, Samples, fit};
    let policy = tiny_base();
    let obs: Vec<Observation> = levels(6, 91)
        .iter()
        .map(|l| Sokoban::new(l.clone(), Default::default()).observation())
        .collect();
    let (counterfactual, rehearsed) = (3usize, 1usize); // right vs down
    let width = policy.config().input_size();
    let margin = |net: &leafe::policy::PolicyNet| {
        let p = NeuralPolicy::new(
            "m",
            policy.config().clone(),
            net.clone(),
            policy.encoder().clone(),
        )
        .unwrap();
        obs.iter()
            .map(|o| {
                let mut planes = vec![0.0; width];
                p.encoder()
                    .encode(o, p.config().board, &mut planes)
                    .unwrap();
                let lp = p.log_probs(&planes, 1).unwrap();
                lp[counterfactual] - lp[rehearsed]
            })
            .sum::<f32>()
            / obs.len() as f32
    };
    let trained = |beta: f32| {
        let mut s = Samples::default();
        let pairs: Vec<(Observation, usize)> =
            obs.iter().map(|o| (o.clone(), counterfactual)).collect();
        s.extend_encoded(&pairs, policy.encoder().as_ref(), policy.config().board)
            .unwrap();
        let pairs: Vec<(Observation, usize)> = obs.iter().map(|o| (o.clone(), rehearsed)).collect();
        s.extend_encoded(&pairs, policy.encoder().as_ref(), policy.config().board)
            .unwrap();
        s.weights = [vec![1.0; obs.len()], vec![beta; obs.len()]].concat();
        let cfg = FitConfig {
            epochs: 40,
            batch_size: 64,
            learning_rate: 3e-3,
            seed: 0,
        };
        fit(
            policy.net().clone(),
            policy.config(),
            &s,
            &cfg,
            |_, _, _| {},
        )
        .unwrap()
        .0
    };
    let before = margin(policy.net());
    let (small, large) = (margin(&trained(0.25)), margin(&trained(4.0)));
    assert!(
        small > 0.0 && small > before,
        "beta 0.25: toward the counterfactual action ({before} → {small})"
    );
    assert!(
        large < 0.0 && large < small,
        "beta 4: toward the rehearsed action ({large})"
    );
}
