//! Integration tests of `explore::reflect` and `explore::guidance`: the
//! reflector finds the known critical step of hand-made trajectories, its
//! `tau` on random Boxoban rollouts is the step that made the level hopeless
//! (checked by the solver), and guidance adjusts exactly the moves its
//! rustdoc names.
//!
//! Workloads are small on purpose (debug build, 2 cores): a handful of
//! fixture levels, small hand-made boards, few property cases.

use std::path::PathBuf;

use leafe::env::{Env, Status};
use leafe::worlds::sokoban::guide::{Guidance, GuidanceConfig, Visited};
use leafe::worlds::sokoban::levels::{parse_levels, read_level_file};
use leafe::worlds::sokoban::reflect::{
    Category, ReflectorConfig, SokobanReflector, StepRecord, Verdict as Experience,
};
use leafe::worlds::sokoban::solve::{Solvability, SolverConfig, solve_from};
use leafe::worlds::sokoban::{DOWN, LEFT, Level, RIGHT, Sokoban, SokobanConfig, State, UP};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NEG_INF: f32 = f32::NEG_INFINITY;

fn level(grid: &str) -> Level {
    parse_levels(grid, "test")
        .expect("test level parses")
        .remove(0)
}

fn fixture_levels(name: &str, n: usize) -> Vec<Level> {
    let rel = PathBuf::from("tests/fixtures/boxoban").join(name);
    let mut p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&rel);
    // The scratch crate used during development lives elsewhere; fall back
    // to the repository path so the tests run from both.
    if !p.exists() {
        p = PathBuf::from("/work/main").join(&rel);
    }
    let mut levels = read_level_file(&p).expect("fixture parses");
    levels.truncate(n);
    levels
}

/// Play `actions` from the level's start; returns the env and the records.
fn play(level: &Level, max_steps: u16, actions: &[usize]) -> (Sokoban, Vec<StepRecord>) {
    let mut env = Sokoban::new(
        level.clone(),
        SokobanConfig {
            max_steps,
            end_on_deadlock: false,
        },
    );
    let steps = actions
        .iter()
        .map(|&a| StepRecord::play(&mut env, a))
        .collect();
    (env, steps)
}

/// The oracle reflector (solver and lookahead allowed): the ablation
/// variant these tests pin down; [`feedback_only`] is the default.
fn oracle() -> SokobanReflector {
    SokobanReflector::new(ReflectorConfig {
        oracle: true,
        ..ReflectorConfig::default()
    })
}

fn reflect(
    level: &Level,
    env: &Sokoban,
    steps: &[StepRecord],
    min_tau: usize,
) -> Option<Experience> {
    oracle().reflect_level(level, steps, env.state(), env.status(), min_tau)
}

fn exact() -> SolverConfig {
    SolverConfig {
        max_nodes: 200_000,
        time_limit_ms: None,
        weight: 1,
    }
}

fn solvability(level: &Level, s: &State, config: &SolverConfig) -> Solvability {
    solve_from(level, &s.boxes, s.player, config).solvability
}

/// The states of a trajectory: before each step, then the current one.
fn states(steps: &[StepRecord], now: &State) -> Vec<State> {
    steps.iter().map(|s| s.state).chain([*now]).collect()
}

/// One box, target in the top-left; the top row is live, the right column
/// and the top-right corner are dead.
const CORNER: &str = "#######\n#.    #\n#   $ #\n#   @ #\n#     #\n#######";
/// Two boxes under a top row that holds two targets.
const FREEZE: &str = "########\n#.    .#\n#      #\n#  $$  #\n#   @  #\n########";

// ------------------------------------------------------------ reflector

#[test]
fn a_push_into_a_corner_is_the_critical_step() {
    let l = level(CORNER);
    // 0: push the box up (fine, the top row leads to the target), 1-2: walk
    // round it, 3: push it right into the top-right corner, 4-5: wander.
    let (env, steps) = play(&l, 120, &[UP, LEFT, UP, RIGHT, DOWN, DOWN]);
    for status in [Status::Running, Status::StepLimit] {
        let e = oracle()
            .reflect_level(&l, &steps, env.state(), status, 0)
            .expect("a flagged mistake is always reported");
        assert_eq!(e.category, Category::DeadSquare);
        assert_eq!(e.tau, 3);
        assert_eq!(e.critical_action, Some(RIGHT));
        assert_eq!(e.trigger_step, 6);
        assert!(
            e.diagnosis.contains("step 3")
                && e.diagnosis.contains("moved right")
                && e.diagnosis.contains("row 1, column 4 to row 1, column 5")
                && e.diagnosis.contains("corner"),
            "{}",
            e.diagnosis
        );
        assert!(
            e.fix.starts_with(
                "At step 3 do not push the box at row 1, column 4 right into the corner"
            ),
            "{}",
            e.fix
        );
        // With the box at column 4 and the player at column 3 of the top
        // row, a solution walks down and round the box to push it left.
        assert_eq!(e.suggested_actions, vec![DOWN]);
        assert!(
            e.fix
                .contains("instead move down (the first move of a solution"),
            "{}",
            e.fix
        );
        assert!(
            e.summary().starts_with("Diagnosis: At step 3"),
            "{}",
            e.summary()
        );
        assert!(e.summary().contains(" Fix: At step 3"), "{}", e.summary());
    }
}

#[test]
fn a_two_box_freeze_against_the_wall_is_the_critical_step() {
    let l = level(FREEZE);
    // 0-1: push the right box up to the top row, 2-4: walk under the left
    // box, 5-6: push it up next to the first: both frozen off target.
    let (env, steps) = play(&l, 120, &[UP, UP, DOWN, DOWN, LEFT, UP, UP]);
    let e = reflect(&l, &env, &steps, 0).unwrap();
    assert_eq!(e.category, Category::FrozenBoxes);
    assert_eq!((e.tau, e.critical_action), (6, Some(UP)));
    assert!(
        e.diagnosis.contains("to row 1, column 3")
            && e.diagnosis.contains("row 1, column 4")
            && e.diagnosis.contains("2 of them are off target"),
        "{}",
        e.diagnosis
    );
    // The verdict is real: solvable before the push, not after it.
    let s = states(&steps, env.state());
    assert_eq!(solvability(&l, &s[6], &exact()), Solvability::Solvable);
    assert_eq!(solvability(&l, &s[7], &exact()), Solvability::Unsolvable);
    assert!(!e.suggested_actions.contains(&UP));
}

#[test]
fn walking_back_and_forth_is_a_loop_from_the_last_progress() {
    let l = level(CORNER);
    let mut actions = vec![UP];
    for _ in 0..5 {
        actions.extend([LEFT, RIGHT]);
    }
    let (env, steps) = play(&l, 120, &actions);
    let e = reflect(&l, &env, &steps, 0).expect("positions repeat: a loop");
    assert_eq!(e.category, Category::Loop);
    assert_eq!(
        e.tau, 1,
        "the stretch starts after the progress push at step 0"
    );
    // From the start of the stretch a solution walks right (round the box
    // to push it left), so the left step is the one to avoid.
    assert_eq!(e.critical_action, Some(LEFT));
    assert_eq!(e.suggested_actions, vec![RIGHT]);
    assert!(e.diagnosis.contains("came back 6 times"), "{}", e.diagnosis);
    // Respect min_tau: the stretch is clipped to what the episode owns.
    let e = reflect(&l, &env, &steps, 5).unwrap();
    assert_eq!((e.category, e.tau), (Category::Loop, 5));
    // At the step limit the same trajectory is a loop too.
    let (env, steps) = play(&l, actions.len() as u16, &actions);
    assert_eq!(env.status(), Status::StepLimit);
    let e = reflect(&l, &env, &steps, 0).unwrap();
    assert_eq!((e.category, e.tau), (Category::Loop, 1));
}

#[test]
fn a_long_walk_without_repeats_is_a_step_limit_failure() {
    let l = level(CORNER);
    // One progress push, then a tour of the room that never repeats a
    // position, until the limit of 12 steps.
    let actions = [
        UP, LEFT, LEFT, LEFT, DOWN, DOWN, RIGHT, RIGHT, RIGHT, RIGHT, UP, UP,
    ];
    let (env, steps) = play(&l, 12, &actions);
    assert_eq!(env.status(), Status::StepLimit);
    let e = reflect(&l, &env, &steps, 0).unwrap();
    assert_eq!(e.category, Category::StepLimit);
    assert_eq!(e.tau, 1);
    assert!(
        e.diagnosis.contains("From step 1 to step 11 (11 steps"),
        "{}",
        e.diagnosis
    );
    // The same walk while running is no loop yet: on course.
    let (env, steps) = play(&l, 120, &actions);
    assert_eq!(reflect(&l, &env, &steps, 0), None);
    // ... unless the idle limit is short.
    let strict = SokobanReflector::new(ReflectorConfig {
        idle_limit: 10,
        oracle: true,
        ..ReflectorConfig::default()
    });
    let e = strict
        .reflect_level(&l, &steps, env.state(), Status::Running, 0)
        .unwrap();
    assert_eq!((e.category, e.tau), (Category::Loop, 1));
}

#[test]
fn mistakes_before_min_tau_are_never_chosen() {
    let l = level(FREEZE);
    // Step 5 pushes the left box down onto the dead bottom row, step 8 the
    // right one.
    let actions = [LEFT, LEFT, UP, UP, RIGHT, DOWN, UP, RIGHT, DOWN, UP];
    let (env, steps) = play(&l, 120, &actions);
    assert!(steps[5].events.is_mistake() && steps[8].events.is_mistake());
    let e = reflect(&l, &env, &steps, 0).unwrap();
    assert_eq!(
        (e.category, e.tau, e.critical_action),
        (Category::DeadSquare, 5, Some(DOWN))
    );
    // Trusting the flags: the first flagged owned step is step 8.
    let flags_only = SokobanReflector::new(ReflectorConfig {
        verify_flagged: false,
        oracle: true,
        ..ReflectorConfig::default()
    });
    let e = flags_only
        .reflect_level(&l, &steps, env.state(), Status::Running, 6)
        .unwrap();
    assert_eq!((e.category, e.tau), (Category::DeadSquare, 8));
    // Verifying: the level was lost before step 6, so no owned step is to
    // blame; tau is the first owned step and the diagnosis says why.
    let e = reflect(&l, &env, &steps, 6).unwrap();
    assert_eq!(e.category, Category::Unsolvable);
    assert_eq!((e.tau, e.critical_action), (6, None));
    assert!(e.suggested_actions.is_empty());
    assert!(
        e.diagnosis.contains("already unsolvable at step 6")
            && e.diagnosis.contains("flagged a mistake at step 5"),
        "{}",
        e.diagnosis
    );
}

#[test]
fn solved_clean_and_unowned_trajectories_get_no_experience() {
    let l = level(CORNER);
    let (env, steps) = play(&l, 120, &[UP, RIGHT, UP, LEFT, LEFT, LEFT]);
    assert_eq!(env.status(), Status::Solved);
    assert_eq!(reflect(&l, &env, &steps, 0), None);
    let (env, steps) = play(&l, 120, &[UP, RIGHT]);
    assert_eq!(reflect(&l, &env, &steps, 0), None, "on course");
    let r = SokobanReflector::default();
    let start = *env.state();
    for status in [Status::Running, Status::StepLimit, Status::Unsolvable] {
        assert_eq!(r.reflect_level(&l, &[], &start, status, 0), None);
        assert_eq!(r.reflect_level(&l, &steps, &start, status, 2), None);
        assert_eq!(r.reflect_level(&l, &steps, &start, status, 9), None);
    }
    assert_eq!(leafe::reflect::Reflector::name(&r), "sokoban-feedback");
}

#[test]
fn an_unflagged_hopeless_push_is_found_by_the_solver() {
    // The top row holds one target: a box there is live, but two boxes there
    // can never both reach a target. No single box is on a dead square or
    // frozen, so only the solver sees it.
    let l = level("########\n#.     #\n#  $ $ #\n#  @   #\n#   .  #\n########");
    // 0: first box up (fine), 1-3: walk under the second, 4: push it up too.
    let (env, steps) = play(&l, 120, &[UP, RIGHT, DOWN, RIGHT, UP, LEFT, LEFT]);
    assert!(steps.iter().all(|s| !s.events.is_mistake()));
    let e = reflect(&l, &env, &steps, 0).unwrap();
    assert_eq!(e.category, Category::Unsolvable);
    assert_eq!((e.tau, e.critical_action), (4, Some(UP)));
    assert!(
        e.diagnosis
            .contains("At step 4 the agent moved up and pushed the box at row 2, column 5")
            && e.diagnosis.contains("proves that no solution exists")
            && e.diagnosis.contains(
                "the boxes at row 1, column 3 and row 1, column 5 can only ever reach the \
                 target(s) at row 1, column 1"
            ),
        "{}",
        e.diagnosis
    );
    let s = states(&steps, env.state());
    assert_eq!(solvability(&l, &s[4], &exact()), Solvability::Solvable);
    assert_eq!(solvability(&l, &s[5], &exact()), Solvability::Unsolvable);
    // min_tau past the mistake: lost before the episode took over.
    let e = reflect(&l, &env, &steps, 5).unwrap();
    assert_eq!(
        (e.category, e.tau, e.critical_action),
        (Category::Unsolvable, 5, None)
    );
}

#[test]
fn on_boxoban_rollouts_tau_is_the_step_that_made_the_level_hopeless() {
    let levels = fixture_levels("unfiltered-test-000-first60.txt", 6);
    let reflector = oracle();
    let solver = exact();
    let mut rng = ChaCha8Rng::seed_from_u64(2603);
    let (mut irreversible, mut wandering) = (0, 0);
    for l in &levels {
        for _ in 0..3 {
            let actions: Vec<usize> = (0..60).map(|_| rng.random_range(0..4)).collect();
            let (env, steps) = play(l, 60, &actions);
            if env.status() == Status::Solved {
                continue;
            }
            assert_eq!(env.status(), Status::StepLimit);
            let e = reflector
                .reflect_level(l, &steps, env.state(), env.status(), 0)
                .expect("a failed end always gets an experience");
            assert!(e.tau < steps.len());
            let s = states(&steps, env.state());
            if e.category.is_irreversible() {
                irreversible += 1;
                assert_eq!(e.critical_action, Some(steps[e.tau].action));
                assert_eq!(
                    solvability(l, &s[e.tau + 1], &solver),
                    Solvability::Unsolvable,
                    "after tau's action the level is hopeless: {}",
                    e.diagnosis
                );
                assert_ne!(
                    solvability(l, &s[e.tau], &solver),
                    Solvability::Unsolvable,
                    "before tau it was not: {}",
                    e.diagnosis
                );
                // Every owned state after tau stays hopeless (monotone).
                assert_eq!(
                    solvability(l, env.state(), &solver),
                    Solvability::Unsolvable
                );
            } else {
                wandering += 1;
                assert_ne!(
                    solvability(l, env.state(), &solver),
                    Solvability::Unsolvable
                );
            }
        }
    }
    assert!(
        irreversible >= 3,
        "random play deadlocks often: {irreversible}"
    );
    let _ = wandering;
}

#[test]
fn config_is_strict_serde_with_defaults() {
    let c: ReflectorConfig = serde_json::from_str(r#"{"solver_max_nodes": 500}"#).unwrap();
    assert_eq!(c.solver_max_nodes, 500);
    assert_eq!(c.loop_repeats, ReflectorConfig::default().loop_repeats);
    assert!(serde_json::from_str::<ReflectorConfig>(r#"{"loop_windw": 3}"#).is_err());
    let l = level(CORNER);
    let (env, steps) = play(&l, 120, &[UP, LEFT, UP, RIGHT]);
    let e = reflect(&l, &env, &steps, 0).unwrap();
    let back: Experience = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back, e);
    assert!(
        serde_json::to_string(&e)
            .unwrap()
            .contains(r#""category":"dead_square""#)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// On a small board (the solver is exact there) every verdict keeps the
    /// module's invariants, for any trajectory and any min_tau.
    #[test]
    fn verdicts_keep_their_invariants(
        actions in prop::collection::vec(0usize..4, 1..30),
        min_tau_frac in 0.0f64..1.0,
        running in any::<bool>(),
    ) {
        let l = level(FREEZE);
        let (env, steps) = play(&l, 120, &actions);
        let min_tau = (min_tau_frac * steps.len() as f64) as usize;
        let status = if running || env.status() == Status::Solved { env.status() } else { Status::StepLimit };
        let got = oracle().reflect_level(&l, &steps, env.state(), status, min_tau);
        let Some(e) = got else {
            prop_assert!(status != Status::StepLimit);
            return Ok(());
        };
        prop_assert!(status != Status::Solved);
        prop_assert!(e.tau >= min_tau && e.tau < steps.len());
        prop_assert_eq!(e.trigger_step, steps.len());
        let s = states(&steps, env.state());
        let solver = exact();
        if e.category.is_irreversible() {
            prop_assert_eq!(solvability(&l, &s[e.tau + 1], &solver), Solvability::Unsolvable);
            if e.critical_action.is_some() {
                prop_assert_eq!(solvability(&l, &s[e.tau], &solver), Solvability::Solvable);
                prop_assert_eq!(e.critical_action, Some(steps[e.tau].action));
            } else {
                // Lost before the episode took over.
                prop_assert_eq!(e.tau, min_tau);
                prop_assert_eq!(solvability(&l, &s[min_tau], &solver), Solvability::Unsolvable);
            }
        } else {
            prop_assert_eq!(solvability(&l, env.state(), &solver), Solvability::Solvable);
        }
        prop_assert!(e.summary().starts_with("Diagnosis: "));
    }
}

// ------------------------------------------------------------- guidance

/// Player in the middle: up pushes a box onto the dead top row, left pushes
/// the other onto the dead left column; down and right are free moves.
const TWO_TRAPS: &str = "#######\n#     #\n#  $  #\n# $@  #\n#   . #\n#  .  #\n#######";

fn experience(
    tau: usize,
    category: Category,
    critical: Option<usize>,
    suggested: Vec<usize>,
) -> Experience {
    Experience {
        trigger_step: tau + 1,
        tau,
        critical_action: critical,
        category,
        diagnosis: String::new(),
        fix: String::new(),
        suggested_actions: suggested,
    }
}

fn adjusted(
    g: &Guidance,
    env: &Sokoban,
    t: usize,
    visited: &Visited,
    logits: [f32; 4],
) -> [f32; 4] {
    let mut l = logits;
    g.adjust(env, t, visited, &mut l);
    l
}

#[test]
fn at_tau_the_critical_action_is_excluded_and_suggestions_get_the_bonus() {
    let env = Sokoban::new(level(TWO_TRAPS), SokobanConfig::default());
    let g = Guidance::new(
        &experience(5, Category::DeadSquare, Some(UP), vec![RIGHT]),
        &lookahead(),
    );
    let v = Visited::new();
    assert_eq!(
        adjusted(&g, &env, 5, &v, [0.5; 4]),
        [NEG_INF, 0.5, 0.5, 1.5]
    );
    // Before tau nothing changes (the branch has not started).
    assert_eq!(adjusted(&g, &env, 4, &v, [0.5; 4]), [0.5; 4]);
    // Without exclusion the critical action only loses its bonus, if any.
    let soft = Guidance::new(
        &experience(5, Category::DeadSquare, Some(UP), vec![RIGHT]),
        &GuidanceConfig {
            exclude_critical: false,
            ..GuidanceConfig::default()
        },
    );
    assert_eq!(adjusted(&soft, &env, 5, &v, [0.0; 4]), [0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn guidance_never_excludes_every_action() {
    let env = Sokoban::new(level(TWO_TRAPS), SokobanConfig::default());
    let g = Guidance::new(
        &experience(0, Category::Loop, Some(UP), vec![]),
        &lookahead(),
    );
    let masked = [0.0, NEG_INF, NEG_INF, NEG_INF];
    assert_eq!(adjusted(&g, &env, 0, &Visited::new(), masked), masked);
}

#[test]
fn after_tau_the_lookahead_penalty_hits_exactly_the_deadlocking_moves() {
    let env = Sokoban::new(level(TWO_TRAPS), SokobanConfig::default());
    let v = Visited::new();
    for category in [
        Category::DeadSquare,
        Category::FrozenBoxes,
        Category::Unsolvable,
    ] {
        let g = Guidance::new(
            &experience(2, category, Some(DOWN), vec![DOWN]),
            &lookahead(),
        );
        // Up and left push a box onto a dead square; the critical action and
        // the suggestion play no part after tau.
        assert_eq!(adjusted(&g, &env, 3, &v, [1.0; 4]), [-3.0, 1.0, -3.0, 1.0]);
    }
    // The lookahead did not touch the environment.
    assert_eq!(
        *env.state(),
        *Sokoban::new(level(TWO_TRAPS), SokobanConfig::default()).state()
    );
}

#[test]
fn loop_and_step_limit_guidance_penalise_returns_and_no_ops() {
    let l = level(TWO_TRAPS);
    let mut env = Sokoban::new(l.clone(), SokobanConfig::default());
    let mut v = Visited::new();
    assert!(v.insert(env.state()));
    env.apply(RIGHT);
    assert!(v.insert(env.state()));
    assert!(
        !v.insert(env.state()),
        "positions ignore nothing but player and boxes"
    );
    assert_eq!(v.len(), 2);
    // Now at (4,3): left returns to the start; right is a free new square.
    let g = Guidance::new(&experience(0, Category::Loop, None, vec![]), &lookahead());
    assert_eq!(adjusted(&g, &env, 2, &v, [0.0; 4]), [0.0, 0.0, -4.0, 0.0]);
    // In a corner, step-limit guidance also penalises the two bumps (once
    // each, though a bump also "returns" to the current position).
    let mut corner = Sokoban::new(
        level("#####\n#@  #\n# $.#\n#   #\n#####"),
        SokobanConfig::default(),
    );
    let mut v = Visited::new();
    v.insert(corner.state());
    let g = Guidance::new(
        &experience(0, Category::StepLimit, None, vec![]),
        &lookahead(),
    );
    assert_eq!(
        adjusted(&g, &corner, 1, &v, [0.0; 4]),
        [-4.0, 0.0, -4.0, 0.0]
    );
    // A finished episode is left alone.
    corner.restore_state(&State {
        status: Status::StepLimit,
        ..*corner.state()
    });
    assert_eq!(adjusted(&g, &corner, 1, &v, [0.0; 4]), [0.0; 4]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any logits (some masked), experience and step: never all -inf
    /// unless the input was, only the documented actions change, and those
    /// by the documented amounts.
    #[test]
    fn guidance_changes_only_what_its_rules_name(
        raw in prop::array::uniform4(prop_oneof![Just(NEG_INF), -5.0f32..5.0]),
        cat in 0usize..5,
        critical in prop::option::of(0usize..4),
        suggested in prop::collection::vec(0usize..4, 0..3),
        dt in 0usize..3,
    ) {
        let env = Sokoban::new(level(TWO_TRAPS), SokobanConfig::default());
        let mut v = Visited::new();
        v.insert(env.state());
        let cfg = GuidanceConfig::default();
        let e = experience(4, Category::ALL[cat], critical, suggested.clone());
        let g = Guidance::new(&e, &cfg);
        let t = 3 + dt;
        let out = adjusted(&g, &env, t, &v, raw);
        if raw.iter().all(|&x| x == NEG_INF) {
            prop_assert_eq!(out, raw);
            return Ok(());
        }
        prop_assert!(out.iter().any(|&x| x != NEG_INF));
        let candidate: [f32; 4] = std::array::from_fn(|a| match t.cmp(&4) {
            std::cmp::Ordering::Less => raw[a],
            std::cmp::Ordering::Equal => {
                if critical == Some(a) {
                    NEG_INF
                } else if suggested.contains(&a) {
                    raw[a] + cfg.suggested_bonus
                } else {
                    raw[a]
                }
            }
            std::cmp::Ordering::Greater => {
                // Only up and left deadlock on this board; no move returns.
                let warned = Category::ALL[cat].is_irreversible() && (a == UP || a == LEFT);
                if warned { raw[a] - cfg.penalty } else { raw[a] }
            }
        });
        let expected = if candidate.iter().all(|&x| x == NEG_INF) { raw } else { candidate };
        prop_assert_eq!(out, expected);
    }
}

/// The default reflector reads only the trajectory, its rewards and the
/// environment's feedback: on hand-made trajectories it names tau from the
/// mistake flags and the repeated positions, and it never runs the solver
/// (counted per thread by `solve`).
#[test]
fn the_feedback_only_reflector_finds_tau_without_the_solver() {
    use leafe::worlds::sokoban::solve::solver_calls_on_this_thread;
    let feedback_only = SokobanReflector::default();
    assert!(
        !feedback_only.config.oracle,
        "the default consults no oracle"
    );
    assert_eq!(
        leafe::reflect::Reflector::name(&feedback_only),
        "sokoban-feedback"
    );
    assert_eq!(leafe::reflect::Reflector::name(&oracle()), "sokoban-oracle");
    let before = solver_calls_on_this_thread();
    // A push into the corner, flagged by the environment: tau is that step.
    let l = level(CORNER);
    let (env, steps) = play(&l, 120, &[UP, LEFT, UP, RIGHT, DOWN, DOWN]);
    for status in [Status::Running, Status::StepLimit] {
        let e = feedback_only
            .reflect_level(&l, &steps, env.state(), status, 0)
            .expect("a flagged mistake is always reported");
        assert_eq!(
            (e.category, e.tau, e.critical_action),
            (Category::DeadSquare, 3, Some(RIGHT))
        );
        assert!(
            e.suggested_actions.is_empty(),
            "nothing simulated, nothing suggested"
        );
    }
    // Two flagged pushes: the first owned one.
    let l = level(FREEZE);
    let (env, steps) = play(
        &l,
        120,
        &[LEFT, LEFT, UP, UP, RIGHT, DOWN, UP, RIGHT, DOWN, UP],
    );
    let e = feedback_only
        .reflect_level(&l, &steps, env.state(), Status::StepLimit, 0)
        .unwrap();
    assert_eq!((e.category, e.tau), (Category::DeadSquare, 5));
    let e = feedback_only
        .reflect_level(&l, &steps, env.state(), Status::StepLimit, 6)
        .unwrap();
    assert_eq!((e.category, e.tau), (Category::DeadSquare, 8));
    // Back and forth without progress to the step limit: a loop from the
    // start of the unproductive stretch.
    let l = level(CORNER);
    let (env, steps) = play(
        &l,
        12,
        &[
            UP, LEFT, RIGHT, LEFT, RIGHT, LEFT, RIGHT, LEFT, RIGHT, LEFT, RIGHT, LEFT,
        ],
    );
    let e = feedback_only
        .reflect_level(&l, &steps, env.state(), env.status(), 0)
        .unwrap();
    assert_eq!((e.category, e.tau), (Category::Loop, 1));
    // A hopeless push no flag reports stays unseen without the solver: the
    // reflector does not pretend to know.
    let l = level("########\n#.     #\n#  $ $ #\n#  @   #\n#   .  #\n########");
    let (env, steps) = play(&l, 120, &[UP, RIGHT, DOWN, RIGHT, UP, LEFT, LEFT]);
    let e = feedback_only
        .reflect_level(&l, &steps, env.state(), Status::StepLimit, 0)
        .unwrap();
    assert_ne!(e.category, Category::Unsolvable);
    assert_eq!(
        solver_calls_on_this_thread(),
        before,
        "the feedback-only reflector ran the solver"
    );
    // The oracle does run it.
    let _ = oracle().reflect_level(&l, &steps, env.state(), Status::StepLimit, 0);
    assert!(solver_calls_on_this_thread() > before);
}

/// The oracle ablation's guidance: the one-step lookahead penalty on (the
/// default has it off).
fn lookahead() -> GuidanceConfig {
    GuidanceConfig {
        penalty: 4.0,
        ..GuidanceConfig::default()
    }
}
