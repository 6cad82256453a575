//! Integration tests of the `env` module: Sokoban rules and rewards,
//! snapshot/restore, the Boxoban parser, the generator, deadlock detection
//! and the solver, and the `leafe levels` subcommand's library entry point.
//!
//! Workloads are small on purpose (tests run in debug on 2 cores): a few
//! dozen fixture levels, a few hundred generated small levels.

use std::path::PathBuf;

use leafe::env::{Env, EnvError, Rollback, Status, roll_back};
use leafe::worlds::sokoban::deadlock::{self, DeadlockKind};
use leafe::worlds::sokoban::generate::{GeneratorConfig, generate};
use leafe::worlds::sokoban::levels::{
    parse_levels, read_level_file, to_boxoban_text, write_level_file,
};
use leafe::worlds::sokoban::solve::{Solvability, SolverConfig, is_solvable, solve, solve_state};
use leafe::worlds::sokoban::{
    CHANNELS, DOWN, Events, LEFT, Level, RIGHT, Sokoban, SokobanConfig, UP, encode_state,
};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boxoban")
        .join(name)
}

// The scratch crate used during development lives elsewhere; fall back to
// the repository path so the tests run from both.
fn fixture_levels(name: &str, n: usize) -> Vec<Level> {
    let mut p = fixture(name);
    if !p.exists() {
        p = PathBuf::from("/work/main/tests/fixtures/boxoban").join(name);
    }
    let mut levels = read_level_file(&p).expect("fixture parses");
    levels.truncate(n);
    levels
}

const UNFILTERED: &str = "unfiltered-test-000-first60.txt";
const MEDIUM: &str = "medium-valid-000-first60.txt";

fn level(grid: &str) -> Level {
    parse_levels(grid, "test")
        .expect("test level parses")
        .remove(0)
}

fn env(grid: &str) -> Sokoban {
    Sokoban::new(level(grid), SokobanConfig::default())
}

fn long_config() -> SokobanConfig {
    SokobanConfig {
        max_steps: u16::MAX,
        end_on_deadlock: false,
    }
}

/// Replay a plan; returns the env after it and the number of pushes seen.
fn replay(level: &Level, moves: &str) -> (Sokoban, u32) {
    let mut e = Sokoban::new(level.clone(), long_config());
    let mut pushes = 0;
    for c in moves.chars() {
        let a = match c {
            'u' => UP,
            'd' => DOWN,
            'l' => LEFT,
            'r' => RIGHT,
            other => panic!("unexpected move {other:?}"),
        };
        let out = e.act(a).expect("plan stays within the episode");
        assert!(
            !out.events.is_blocked(),
            "a plan never bumps: {moves} at {c}"
        );
        pushes += out.events.contains(Events::PUSHED_BOX) as u32;
    }
    (e, pushes)
}

// ---------------------------------------------------------------- rules

#[test]
fn walking_into_a_wall_costs_a_step_and_changes_nothing() {
    let mut e = env("#####\n#@$.#\n#####");
    let before = e.render_text();
    let out = e.act(UP).unwrap();
    assert_eq!(out.events, Events::BLOCKED_BY_WALL);
    assert!((out.reward - -0.1).abs() < 1e-6);
    assert_eq!(out.status, Status::Running);
    assert!(
        out.feedback.contains("blocked by a wall"),
        "{}",
        out.feedback
    );
    assert_eq!(e.render_text(), before);
    assert_eq!(e.steps(), 1);
}

#[test]
fn pushing_a_box_into_a_wall_is_blocked() {
    let mut e = env("#####\n#.@$#\n#####");
    let out = e.act(RIGHT).unwrap();
    assert_eq!(out.events, Events::BLOCKED_BY_BOX);
    assert_eq!(e.render_text(), "#####\n#.@$#\n#####");
    assert!((out.reward - -0.1).abs() < 1e-6);
    assert_eq!(e.steps(), 1);
}

#[test]
fn pushing_a_box_into_a_box_is_blocked() {
    let mut e = env("########\n#@$$..##\n########");
    let out = e.act(RIGHT).unwrap();
    assert_eq!(out.events, Events::BLOCKED_BY_BOX);
    assert!(out.feedback.contains("cannot move"), "{}", out.feedback);
    assert_eq!(e.render_text(), "########\n#@$$..##\n########");
}

#[test]
fn reward_sequence_onto_then_along_then_off_a_target() {
    // Two adjacent targets, then a corner: onto (+1), target to target
    // (+1 −1), off into a dead corner (−1, flagged as a mistake).
    let mut e = env("#######\n#@$.. #\n#  $  #\n#######");
    let rewards: Vec<(f32, Events)> = (0..3)
        .map(|_| {
            let o = e.act(RIGHT).unwrap();
            (o.reward, o.events)
        })
        .collect();
    let expect = [0.9f32, -0.1, -1.1];
    for ((r, _), x) in rewards.iter().zip(expect) {
        assert!((r - x).abs() < 1e-6, "rewards {rewards:?}");
    }
    assert!(
        rewards[0]
            .1
            .contains(Events::PUSHED_BOX | Events::ONTO_TARGET)
    );
    assert!(!rewards[0].1.contains(Events::OFF_TARGET));
    assert!(
        rewards[1]
            .1
            .contains(Events::ONTO_TARGET | Events::OFF_TARGET)
    );
    assert!(
        rewards[2]
            .1
            .contains(Events::OFF_TARGET | Events::DEAD_SQUARE)
    );
    assert!(!rewards[1].1.is_mistake());
    assert!(e.is_deadlocked());
    // Gym-sokoban semantics: a deadlock does not end the episode by default.
    assert_eq!(e.status(), Status::Running);
    assert_eq!(e.render_text(), "#######\n#  .+$#\n#  $  #\n#######");
}

#[test]
fn solving_pays_ten_and_ends_the_episode() {
    let mut e = env("#####\n#@$.#\n#####");
    let out = e.act(RIGHT).unwrap();
    assert!((out.reward - 10.9).abs() < 1e-5, "{}", out.reward);
    assert_eq!(out.status, Status::Solved);
    assert!(out.events.contains(Events::SOLVED));
    assert!(out.feedback.contains("solved"));
    assert!(e.legal_actions().is_empty());
    assert!(matches!(
        e.act(LEFT),
        Err(EnvError::EpisodeOver {
            status: Status::Solved
        })
    ));
    let start = e.level().clone();
    Env::reset(&mut e, &start, 0).unwrap();
    assert_eq!(e.status(), Status::Running);
    assert_eq!(e.legal_actions(), vec!["up", "down", "left", "right"]);
}

#[test]
fn step_limit_ends_the_episode() {
    let cfg = SokobanConfig {
        max_steps: 3,
        end_on_deadlock: false,
    };
    let mut e = Sokoban::new(level("######\n#@ $.#\n######"), cfg);
    assert_eq!(e.act(LEFT).unwrap().status, Status::Running);
    assert_eq!(e.act(UP).unwrap().status, Status::Running);
    let out = e.act(DOWN).unwrap();
    assert_eq!(out.status, Status::StepLimit);
    assert!(out.events.contains(Events::STEP_LIMIT));
    assert!(out.feedback.contains("step limit of 3"), "{}", out.feedback);
    assert!(e.act(RIGHT).is_err());
}

#[test]
fn invalid_action_is_an_error() {
    let mut e = env("#####\n#@$.#\n#####");
    let err = e.act(4).unwrap_err();
    assert!(
        matches!(&err, EnvError::InvalidAction { action, .. } if action == "4"),
        "{err}"
    );
    assert_eq!(e.steps(), 0);
    // Through the generic boundary, actions are names.
    let err = Env::step(&mut e, "north").unwrap_err();
    assert!(err.to_string().contains("north"), "{err}");
    assert_eq!(e.steps(), 0);
}

const FREEZE: &str = "#######\n#.   .#\n#  $$ #\n#  @  #\n#######";

#[test]
fn two_boxes_against_a_wall_freeze() {
    let mut e = env(FREEZE);
    let first = e.act(UP).unwrap();
    // Along the top wall there are targets, so that square is not dead and
    // the lone box can still slide: no mistake yet.
    assert!(first.events.contains(Events::PUSHED_BOX));
    assert!(!first.events.is_mistake(), "{:?}", first.events);
    let mid = *e.state();
    assert_eq!(
        is_solvable(&e, &SolverConfig::default()),
        Solvability::Solvable
    );
    e.act(DOWN).unwrap();
    e.act(RIGHT).unwrap();
    let out = e.act(UP).unwrap();
    assert!(
        out.events.contains(Events::FROZEN_BOXES),
        "{:?}",
        out.events
    );
    assert!(out.feedback.contains("frozen"), "{}", out.feedback);
    let dl = deadlock::find_deadlock(e.level(), &e.state().boxes).expect("frozen");
    assert_eq!(dl.kind, DeadlockKind::Frozen);
    assert_eq!(
        is_solvable(&e, &SolverConfig::default()),
        Solvability::Unsolvable
    );
    e.restore_state(&mid);
    assert!(!e.is_deadlocked());
}

#[test]
fn end_on_deadlock_reports_unsolvable() {
    let cfg = SokobanConfig {
        max_steps: 120,
        end_on_deadlock: true,
    };
    let mut e = Sokoban::new(level(FREEZE), cfg);
    for a in [UP, DOWN, RIGHT] {
        assert_eq!(e.act(a).unwrap().status, Status::Running);
    }
    let out = e.act(UP).unwrap();
    assert_eq!(out.status, Status::Unsolvable);
    assert_eq!(Status::Unsolvable.as_str(), "unsolvable");
    assert!(e.act(UP).is_err());
}

#[test]
fn dead_squares_are_corners_and_wall_runs_without_targets() {
    // The top row touches a wall along its length and holds no target: all
    // of it is dead; the middle row is live.
    let l = level("######\n#    #\n# $. #\n#@   #\n######");
    let dead = l.dead_squares();
    let cells: Vec<(usize, usize)> = dead
        .iter()
        .map(leafe::worlds::sokoban::board::coords)
        .collect();
    for x in 1..5 {
        assert!(cells.contains(&(x, 1)), "{cells:?}");
        assert!(cells.contains(&(x, 3)), "{cells:?}");
    }
    assert!(!cells.contains(&(2, 2)) && !cells.contains(&(3, 2)));
}

// ---------------------------------------------------------------- text and tensors

#[test]
fn render_text_round_trips_and_tracks_the_player() {
    // `+` player on target, `*` box on target.
    let l = level("#####\n#+$ #\n# * #\n#####");
    let mut e = Sokoban::new(l.clone(), SokobanConfig::default());
    assert_eq!(e.render_text(), l.to_boxoban_string());
    assert_eq!(level(&e.render_text()), l);
    e.act(RIGHT).unwrap();
    assert_eq!(e.render_text(), "#####\n#.@$#\n# * #\n#####");
    assert_eq!(e.observe().text, e.render_text());
}

#[test]
fn planes_are_one_hot_and_padded_with_walls() {
    let e = env("#####\n#@$.#\n#####");
    let (h, w) = (4, 6);
    let c = CHANNELS.len();
    assert_eq!(c, 7);
    let mut out = vec![9.0f32; c * h * w];
    e.encode_planes(h, w, &mut out).unwrap();
    let at = |ch: usize, y: usize, x: usize| out[ch * h * w + y * w + x];
    for y in 0..h {
        for x in 0..w {
            let sum: f32 = (0..c).map(|ch| at(ch, y, x)).sum();
            assert_eq!(sum, 1.0, "cell ({x},{y})");
        }
    }
    assert_eq!(at(5, 1, 1), 1.0, "player");
    assert_eq!(at(3, 1, 2), 1.0, "box");
    assert_eq!(at(2, 1, 3), 1.0, "target");
    assert_eq!(at(0, 3, 5), 1.0, "padding is wall");
    assert_eq!(at(0, 0, 0), 1.0, "wall");
    assert!(matches!(
        e.encode_planes(2, 6, &mut vec![0.0; c * 12]),
        Err(EnvError::Encoding { .. })
    ));
    assert!(e.encode_planes(4, 6, &mut [0.0; 3]).is_err());
}

#[test]
fn events_serialize_as_names() {
    let ev = Events::MOVED | Events::PUSHED_BOX | Events::ONTO_TARGET;
    assert_eq!(
        serde_json::to_string(&ev).unwrap(),
        r#"["moved","pushed_box","onto_target"]"#
    );
}

// ---------------------------------------------------------------- snapshot / restore

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// snapshot → steps → restore gives the identical state, and the same
    /// actions then give the same outcomes.
    #[test]
    fn snapshot_steps_restore_is_identity(
        idx in 0usize..20,
        prefix in proptest::collection::vec(0usize..4, 0..60),
        suffix in proptest::collection::vec(0usize..4, 1..60),
    ) {
        let levels = fixture_levels(UNFILTERED, 20);
        let mut e = Sokoban::new(levels[idx].clone(), SokobanConfig::default());
        for &a in &prefix {
            let _ = e.act(a);
        }
        let snap = *e.state();
        let text = e.render_text();
        let (status, steps) = (e.status(), e.steps());
        let first: Vec<_> = suffix.iter().map(|&a| e.act(a).ok()).collect();
        e.restore_state(&snap);
        prop_assert_eq!(*e.state(), snap);
        prop_assert_eq!(e.render_text(), text);
        prop_assert_eq!(e.status(), status);
        prop_assert_eq!(e.steps(), steps);
        let again: Vec<_> = suffix.iter().map(|&a| e.act(a).ok()).collect();
        prop_assert_eq!(first, again);
    }
}

// ---------------------------------------------------------------- parser

fn parse_err(text: &str) -> (usize, usize, String, String) {
    match parse_levels(text, "bad.txt") {
        Err(e @ EnvError::Parse { .. }) => {
            let shown = e.to_string();
            assert!(!shown.contains('\n'), "one line: {shown}");
            assert!(shown.starts_with("bad.txt: level "), "{shown}");
            let EnvError::Parse {
                level,
                line,
                message,
                ..
            } = e
            else {
                unreachable!()
            };
            (level, line, message, shown)
        }
        other => panic!("expected a parse error for {text:?}, got {other:?}"),
    }
}

#[test]
fn parser_reports_file_level_and_line() {
    let good = "; 0\n#####\n#@$.#\n#####\n\n";
    let (lvl, line, msg, shown) = parse_err(&format!("{good}; 1\n#####\n#@$X#\n#####\n"));
    assert_eq!((lvl, line), (1, 8));
    assert!(msg.contains("unknown character 'X'"), "{msg}");
    assert_eq!(shown, format!("bad.txt: level 1 (line 8): {msg}"));

    let (_, line, msg, _) = parse_err("; 0\n#####\n#@$.#\n####\n");
    assert_eq!(line, 4);
    assert!(msg.contains("ragged"), "{msg}");

    let (_, _, msg, _) = parse_err("; 0\n#####\n# $.#\n#####\n");
    assert!(msg.contains("no player"), "{msg}");

    let (_, line, msg, _) = parse_err("; 0\n#####\n#@$.#\n#@$.#\n#####\n");
    assert_eq!(line, 4);
    assert!(msg.contains("two players"), "{msg}");

    let (_, _, msg, _) = parse_err("; 0\n######\n#@$$.#\n######\n");
    assert!(msg.contains("2 boxes but 1 targets"), "{msg}");

    let (_, _, msg, _) = parse_err("; 0\n#####\n#@  #\n#####\n");
    assert!(msg.contains("no boxes"), "{msg}");

    let (lvl, line, msg, _) = parse_err(&format!("; 0\n\n{good}"));
    assert_eq!((lvl, line), (0, 1));
    assert!(msg.contains("empty level"), "{msg}");

    let wide = format!("; 0\n{}\n#@$.{}#\n", "#".repeat(16), " ".repeat(11));
    let (_, _, msg, _) = parse_err(&wide);
    assert!(msg.contains("at most 14x14"), "{msg}");

    assert!(matches!(
        parse_levels("\n\n", "empty.txt"),
        Err(EnvError::NoLevels { .. })
    ));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = read_level_file("/nonexistent/levels.txt").unwrap_err();
    assert!(matches!(err, EnvError::Io { .. }));
    assert!(
        err.to_string().starts_with("/nonexistent/levels.txt: "),
        "{err}"
    );
}

#[test]
fn fixtures_round_trip_through_text_and_files() {
    let levels = fixture_levels(MEDIUM, 60);
    assert_eq!(levels.len(), 60);
    assert!(
        levels
            .iter()
            .all(|l| l.width() == 10 && l.height() == 10 && l.num_boxes() == 4)
    );
    let text = to_boxoban_text(&levels);
    assert_eq!(parse_levels(&text, "mem").unwrap(), levels);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    write_level_file(&path, &levels).unwrap();
    assert_eq!(read_level_file(&path).unwrap(), levels);
    // Display alone (no header) parses back too.
    assert_eq!(level(&levels[3].to_string()), levels[3]);
}

#[test]
fn task_ids_are_stable_content_hashes() {
    let levels = fixture_levels(UNFILTERED, 60);
    // Pinned: changing the hash would break joins with earlier runs.
    assert_eq!(levels[0].task_id(), "9a1304c7c9244aef");
    let ids: std::collections::HashSet<_> = levels.iter().map(|l| l.task_id()).collect();
    assert_eq!(ids.len(), 60);
    // Independent of file and position.
    let alone = parse_levels(&format!("; 7\n{}\n", levels[5]), "other.txt").unwrap();
    assert_eq!(alone[0].task_id(), levels[5].task_id());
    assert_eq!(
        Sokoban::new(levels[5].clone(), SokobanConfig::default()).task_id(&levels[5]),
        levels[5].task_id()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No input panics the parser.
    #[test]
    fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_levels(&String::from_utf8_lossy(&bytes), "fuzz");
    }

    /// Inputs over the level alphabet reach deep into the parser; whatever
    /// parses round-trips and has a one-line error otherwise.
    #[test]
    fn parser_on_level_alphabet(chars in proptest::collection::vec(
        prop::sample::select(vec!['#', ' ', '@', '+', '$', '*', '.', '\n', ';', '1', '\r']), 0..300)) {
        let text: String = chars.into_iter().collect();
        match parse_levels(&text, "fuzz") {
            Ok(levels) => {
                let again = parse_levels(&to_boxoban_text(&levels), "again").unwrap();
                prop_assert_eq!(again, levels);
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }
}

// ---------------------------------------------------------------- solver

#[test]
fn solver_finds_optimal_push_counts_on_small_boards() {
    let s = solve(&level("#####\n#@$.#\n#####"), &SolverConfig::default());
    assert!(s.solved());
    assert_eq!((s.moves.as_str(), s.pushes), ("r", 1));
    // Box must be walked around: up-left of it is the only way to push down.
    let l = level("######\n#@   #\n# $  #\n#  . #\n######");
    let s = solve(&l, &SolverConfig::default());
    assert!(s.solved());
    assert_eq!(s.pushes, 2);
    let (e, pushes) = replay(&l, &s.moves);
    assert_eq!(e.status(), Status::Solved);
    assert_eq!(pushes, 2);
}

#[test]
fn solver_proves_unsolvable_and_reports_limits() {
    // Box in a corner.
    let s = solve(
        &level("#####\n#$ @#\n#  .#\n#####"),
        &SolverConfig::default(),
    );
    assert_eq!(s.solvability, Solvability::Unsolvable);
    assert!(s.moves.is_empty());
    let hard = &fixture_levels(MEDIUM, 1)[0];
    let tiny = SolverConfig {
        max_nodes: 2,
        ..SolverConfig::default()
    };
    assert_eq!(solve(hard, &tiny).solvability, Solvability::Unknown);
}

#[test]
fn solver_solutions_replay_to_solved_on_boxoban_fixtures() {
    let cfg = SolverConfig {
        max_nodes: 200_000,
        ..SolverConfig::default()
    };
    let mut levels = fixture_levels(UNFILTERED, 20);
    levels.extend(fixture_levels(MEDIUM, 10));
    for (i, l) in levels.iter().enumerate() {
        let s = solve(l, &cfg);
        assert!(s.solved(), "level {i}: {:?}", s.solvability);
        let (e, pushes) = replay(l, &s.moves);
        assert_eq!(e.status(), Status::Solved, "level {i}");
        assert_eq!(pushes, s.pushes, "level {i}");
        assert_eq!(s.actions().len(), s.num_moves());
    }
}

/// Deadlock detection is sound: no state on a solution path (all solvable)
/// is flagged, and no state the detector flags is solved by the solver.
#[test]
fn deadlock_detection_never_flags_solvable_states() {
    let cfg = SolverConfig {
        max_nodes: 50_000,
        ..SolverConfig::default()
    };
    let mut levels = fixture_levels(UNFILTERED, 15);
    levels.extend(fixture_levels(MEDIUM, 5));
    levels.extend(
        generate(&GeneratorConfig {
            width: 8,
            height: 8,
            boxes: 2,
            count: 30,
            seed: 11,
            ..GeneratorConfig::default()
        })
        .unwrap(),
    );
    let mut flagged = 0;
    for (i, l) in levels.iter().enumerate() {
        let s = solve(l, &cfg);
        assert!(s.solved(), "level {i}");
        let mut e = Sokoban::new(l.clone(), long_config());
        for a in s.actions() {
            let out = e.act(a).unwrap();
            assert!(!out.events.is_mistake(), "level {i}: {}", out.feedback);
            assert!(
                deadlock::find_deadlock(l, &e.state().boxes).is_none(),
                "level {i}"
            );
        }
        // Random play from the start: whatever is flagged must not be solvable.
        let mut e = Sokoban::new(l.clone(), long_config());
        let mut x = i as u64 * 2654435761 + 1;
        for _ in 0..40 {
            if e.status().is_terminal() {
                break;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let out = e.act((x % 4) as usize).unwrap();
            if out.events.is_mistake() {
                flagged += 1;
                assert_ne!(
                    solve_state(&e, &cfg).solvability,
                    Solvability::Solvable,
                    "level {i}: flagged but solvable:\n{}",
                    e.render_text()
                );
            }
        }
    }
    assert!(flagged > 0, "random play should make some mistakes");
}

// ---------------------------------------------------------------- generator

#[test]
fn generator_is_deterministic_and_seed_sensitive() {
    let cfg = GeneratorConfig {
        count: 30,
        seed: 7,
        ..GeneratorConfig::default()
    };
    let a = generate(&cfg).unwrap();
    let b = generate(&cfg).unwrap();
    assert_eq!(a, b);
    let c = generate(&GeneratorConfig { seed: 8, ..cfg }).unwrap();
    assert_ne!(a, c);
}

#[test]
fn generated_levels_are_all_solvable_and_match_the_settings() {
    let solver = SolverConfig::default();
    for (w, h, boxes, count, min_pushes) in [
        (6, 6, 1, 200, 1),
        (6, 6, 2, 60, 3),
        (8, 8, 2, 60, 1),
        (8, 8, 3, 30, 1),
    ] {
        let cfg = GeneratorConfig {
            width: w,
            height: h,
            boxes,
            count,
            seed: 1,
            min_pushes,
            ..GeneratorConfig::default()
        };
        let levels = generate(&cfg).unwrap();
        assert_eq!(levels.len(), count);
        for l in &levels {
            assert_eq!((l.width(), l.height(), l.num_boxes()), (w, h, boxes));
            assert_eq!(
                l.boxes().and(l.targets()).count(),
                0,
                "generated levels start with every box off target"
            );
            let s = solve(l, &solver);
            assert!(s.solved(), "{l:?}");
            assert!(s.pushes >= min_pushes);
            assert_eq!(replay(l, &s.moves).0.status(), Status::Solved);
        }
    }
}

#[test]
fn generator_rejects_bad_settings() {
    let bad = |cfg: GeneratorConfig| generate(&cfg).unwrap_err();
    assert!(matches!(
        bad(GeneratorConfig {
            width: 15,
            ..GeneratorConfig::default()
        }),
        EnvError::InvalidConfig { field: "width", .. }
    ));
    assert!(matches!(
        bad(GeneratorConfig {
            width: 3,
            height: 3,
            boxes: 1,
            ..GeneratorConfig::default()
        }),
        EnvError::InvalidConfig { field: "boxes", .. }
    ));
    let err = bad(GeneratorConfig {
        min_pushes: 500,
        count: 1,
        max_attempts: 5,
        ..GeneratorConfig::default()
    });
    assert!(matches!(err, EnvError::Generate { .. }), "{err}");
}

// ---------------------------------------------------------------- CLI entry point

mod cli {
    use clap::Parser;
    use leafe::cli::levels::{LevelsCmd, run};

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: LevelsCmd,
    }

    fn cmd(args: &[&str]) -> LevelsCmd {
        Top::try_parse_from(std::iter::once("levels").chain(args.iter().copied()))
            .unwrap()
            .cmd
    }

    #[test]
    fn generate_then_solve_all() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("g.txt");
        let out_s = out.to_str().unwrap();
        let gen_args = [
            "generate", "--size", "6x6", "--boxes", "1", "--count", "20", "--seed", "3", "--out",
            out_s,
        ];
        assert_eq!(run(cmd(&gen_args)).unwrap(), 0);
        let first = std::fs::read_to_string(&out).unwrap();
        assert_eq!(first.matches("; ").count(), 20);
        assert_eq!(run(cmd(&gen_args)).unwrap(), 0);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            first,
            "same seed, same file"
        );
        let code = run(cmd(&["solve", out_s, "--format", "json", "--require-all"])).unwrap();
        assert_eq!(code, 0);
    }

    #[test]
    fn require_all_fails_with_exit_one_when_a_level_is_unsolved() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("u.txt");
        std::fs::write(&f, "; 0\n#####\n#$ @#\n#  .#\n#####\n").unwrap();
        let f = f.to_str().unwrap();
        assert_eq!(run(cmd(&["solve", f, "--require-all"])).unwrap(), 1);
        assert_eq!(run(cmd(&["solve", f])).unwrap(), 0);
    }

    #[test]
    fn bad_level_file_is_an_error_naming_file_level_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.txt");
        std::fs::write(&f, "; 0\n#####\n#@$.#\n#####\n\n; 1\n#####\n#@$?#\n#####\n").unwrap();
        let err = run(cmd(&["solve", f.to_str().unwrap()])).unwrap_err();
        let shown = format!("{err:#}");
        assert!(
            shown.contains("bad.txt: level 1 (line 8): unknown character '?'"),
            "{shown}"
        );
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn size_flag_is_validated() {
        assert!(
            Top::try_parse_from(["levels", "generate", "--size", "6by6", "--out", "x"]).is_err()
        );
    }
}

/// Plays `actions` (indices) through the generic boundary, recording each
/// step and the native snapshot before it, until the episode ends.
fn record(
    e: &mut Sokoban,
    actions: &[usize],
) -> (Vec<leafe::env::Step>, Vec<leafe::worlds::sokoban::State>) {
    let (mut steps, mut snaps) = (Vec::new(), Vec::new());
    for &a in actions {
        if e.status().is_terminal() {
            break;
        }
        snaps.push(Env::snapshot(e).unwrap().expect("Sokoban has snapshots"));
        let observation = e.observe();
        let name = leafe::worlds::sokoban::DIR_NAMES[a];
        let transition = Env::step(e, name).unwrap();
        steps.push(leafe::env::Step {
            t: steps.len(),
            observation,
            action: name.to_string(),
            action_index: Some(a),
            log_prob: 0.0,
            call: None,
            legal: None,
            transition,
        });
    }
    (steps, snaps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Rollback by native snapshot and by reset + replay of the action
    /// prefix reach the same state (observation, compact state, status,
    /// step count) and the same future; replay costs tau transitions,
    /// the snapshot none.
    #[test]
    fn rollback_by_replay_and_by_snapshot_reach_the_same_state(
        idx in 0usize..20,
        actions in proptest::collection::vec(0usize..4, 1..60),
        cut in 0usize..1000,
        suffix in proptest::collection::vec(0usize..4, 1..20),
    ) {
        let levels = fixture_levels(UNFILTERED, 20);
        let level = &levels[idx];
        let mut played = Sokoban::new(level.clone(), SokobanConfig::default());
        let (steps, snaps) = record(&mut played, &actions);
        let tau = cut % steps.len();
        let mut by_snapshot = Sokoban::with_config(SokobanConfig::default());
        Env::reset(&mut by_snapshot, level, 7).unwrap();
        let (kind, cost) =
            roll_back(&mut by_snapshot, level, &steps, tau, &Rollback::Snapshot(snaps[tau])).unwrap();
        prop_assert_eq!((kind.as_str(), cost), ("snapshot", 0));
        let mut by_replay = Sokoban::with_config(SokobanConfig::default());
        let (kind, cost) =
            roll_back(&mut by_replay, level, &steps, tau, &Rollback::Replay { seed: 7 }).unwrap();
        prop_assert_eq!((kind.as_str(), cost), ("replay", tau));
        prop_assert_eq!(by_snapshot.observe(), by_replay.observe());
        prop_assert_eq!(&by_snapshot.observe(), &steps[tau].observation);
        prop_assert_eq!(by_snapshot.state(), by_replay.state());
        prop_assert_eq!(
            by_replay.observe().state.unwrap(),
            encode_state(by_replay.state()).to_vec()
        );
        let a: Vec<_> = suffix.iter().map(|&x| by_snapshot.act(x).ok()).collect();
        let b: Vec<_> = suffix.iter().map(|&x| by_replay.act(x).ok()).collect();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn replay_that_diverges_is_reported() {
    let levels = fixture_levels(UNFILTERED, 1);
    let mut e = Sokoban::new(levels[0].clone(), SokobanConfig::default());
    let (mut steps, _) = record(&mut e, &[0, 1, 2, 3, 0, 1]);
    steps[2].observation.text.push('#');
    let mut fresh = Sokoban::with_config(SokobanConfig::default());
    let err = roll_back(
        &mut fresh,
        &levels[0],
        &steps,
        4,
        &Rollback::Replay { seed: 0 },
    )
    .unwrap_err();
    assert!(
        matches!(err, EnvError::NonDeterministic { t: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not deterministic"), "{err}");
    // The two steps replayed before the divergence are counted all the same.
    let mut executed = 0;
    let mut fresh = Sokoban::with_config(SokobanConfig::default());
    let how = Rollback::Replay { seed: 0 };
    assert!(
        leafe::env::roll_back_counted(&mut fresh, &levels[0], &steps, 4, &how, &mut executed)
            .is_err()
    );
    assert_eq!(executed, 2);
}
