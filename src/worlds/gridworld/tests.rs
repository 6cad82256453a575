use std::collections::HashSet;

use super::*;
use crate::env::{Env, EnvError, Observation, Status, Step};
use crate::env::{Rollback, RollbackKind, replay, roll_back};
use crate::policy::{Encoder, PolicyError};
use crate::reflect::{FeedbackReflector, Reflector};

/// Start (1,1); a trap at (1,3); the goal at (3,4), five steps away
/// (down, down, right, right, right).
const SMALL: &str = "\
######
#@ ^ #
# #  #
#   G#
######";

fn small() -> Grid {
    parse_grids(SMALL, "small").unwrap().remove(0)
}

fn env(grid: &Grid) -> Gridworld {
    Gridworld::new(grid.clone(), GridworldConfig::default())
}

/// Plays `actions` from a reset and records the trajectory.
fn play(env: &mut Gridworld, grid: &Grid, actions: &[&str]) -> Vec<Step> {
    env.reset(grid, 0).unwrap();
    actions
        .iter()
        .enumerate()
        .map(|(t, a)| {
            let observation = env.observe();
            let transition = env.step(a).unwrap();
            Step {
                t,
                observation,
                action: a.to_string(),
                action_index: action_index(a),
                log_prob: 0.0,
                call: None,
                legal: None,
                transition,
            }
        })
        .collect()
}

fn parse_error(text: &str) -> (usize, usize, String) {
    match parse_grids(text, "f.txt") {
        Err(EnvError::Parse {
            file,
            level,
            line,
            message,
        }) => {
            assert_eq!(file, "f.txt");
            (level, line, message)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn parse_errors_name_the_grid_and_line() {
    let (level, line, msg) = parse_error("; 0\n#@G#\n\n; 1\n####\n#@x#\n#G #");
    assert_eq!((level, line), (1, 6));
    assert!(msg.contains("'x'"), "{msg}");
    let (_, line, msg) = parse_error("####\n#  #\n#G #");
    assert_eq!(line, 1);
    assert!(msg.contains("no `@`"), "{msg}");
    let (_, line, msg) = parse_error("#@@#\n#G #");
    assert_eq!(line, 1);
    assert!(msg.contains("second `@`"), "{msg}");
    let (_, line, msg) = parse_error("\n\n#@ #\n#  #");
    assert_eq!(line, 3);
    assert!(msg.contains("no `G`"), "{msg}");
    let (_, line, msg) = parse_error("#@G#\n#  #\n# #");
    assert_eq!(line, 3);
    assert!(msg.contains("ragged"), "{msg}");
    let (_, line, msg) = parse_error("#@G        #");
    assert_eq!(line, 1);
    assert!(msg.contains("12 columns"), "{msg}");
    let tall = std::iter::once("@G")
        .chain(std::iter::repeat_n("__", 10))
        .collect::<Vec<_>>()
        .join("\n");
    let (_, line, msg) = parse_error(&tall);
    assert_eq!(line, 11);
    assert!(msg.contains("11 rows"), "{msg}");
    let (level, line, msg) = parse_error("#@G#\n; 1\n");
    assert_eq!((level, line), (1, 2));
    assert!(msg.contains("header"), "{msg}");
    assert!(matches!(
        parse_grids("\n; nothing here?\n", "e").unwrap_err(),
        EnvError::Parse { .. }
    ));
    assert!(matches!(
        parse_grids("\n \n", "e").unwrap_err(),
        EnvError::NoLevels { file } if file == "e"
    ));
}

#[test]
fn text_round_trips_and_is_the_first_observation() {
    let text = "; 0\n#####\n#@_^#\n#___#\n#  G#\n#####\n\n; 1\n@ G\r\n___\n";
    let grids = parse_grids(text, "t").unwrap();
    assert_eq!(grids.len(), 2);
    // `_` is floor; a row of floor only stays visible as `_`.
    assert_eq!(grids[0].to_text(), "#####\n#@ ^#\n#   #\n#  G#\n#####");
    assert_eq!(grids[1].to_text(), "@ G\n___");
    assert_eq!(grids[0].traps(), vec![(1, 3)]);
    assert_eq!((grids[1].width(), grids[1].height()), (3, 2));
    let again = parse_grids(&grids_to_text(&grids), "again").unwrap();
    assert_eq!(again, grids);
    assert_eq!(small().to_text(), SMALL);
    assert_eq!(env(&small()).reset(&small(), 3).unwrap().text, SMALL);
    assert_eq!(small().task_id().len(), 16);
    assert_ne!(small().task_id(), grids[0].task_id());
    assert_eq!(env(&small()).task_id(&small()), small().task_id());
}

#[test]
fn grid_files_round_trip_and_io_errors_name_the_path() {
    let dir = std::env::temp_dir().join(format!("leafe-gridworld-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("grids.txt");
    let grids = vec![small(), parse_grids("@ G", "x").unwrap().remove(0)];
    write_grid_file(&path, &grids).unwrap();
    assert_eq!(read_grid_file(&path).unwrap(), grids);
    let missing = dir.join("missing.txt");
    let err = read_grid_file(&missing).unwrap_err();
    assert!(matches!(&err, EnvError::Io { path, .. } if *path == missing));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn walls_traps_and_the_goal_follow_the_rules() {
    let grid = small();
    let mut env = env(&grid);
    assert_eq!(env.action_space().names(), DIR_NAMES);
    // Into a wall: stays, costs a step.
    let t = env.step("up").unwrap();
    assert_eq!(t.flags, vec![FLAG_BUMPED_WALL]);
    assert_eq!(t.feedback, "tried to move up: blocked by a wall");
    assert_eq!((t.reward, t.status), (REWARD_STEP, Status::Running));
    assert!(t.mistakes.is_empty());
    assert_eq!(env.agent(), (1, 1));
    assert_eq!(env.observe().state, Some(vec![1, 1, 1]));
    // Into a trap: the episode is lost, a mistake.
    assert_eq!(env.step("right").unwrap().feedback, "moved right");
    let t = env.step("right").unwrap();
    assert_eq!(t.status, Status::Unsolvable);
    assert_eq!(t.flags, vec![FLAG_MOVED, FLAG_FELL_INTO_TRAP]);
    assert_eq!(t.mistake(), Some(FLAG_FELL_INTO_TRAP));
    assert_eq!(t.reward, REWARD_STEP + REWARD_TRAP);
    assert_eq!(
        t.feedback,
        "moved right into a trap at row 1, column 3: episode lost"
    );
    assert_eq!(env.status(), Status::Unsolvable);
    assert!(env.legal_actions().is_empty());
    // To the goal: solved.
    env.reset(&grid, 0).unwrap();
    let path: Vec<&str> = shortest_path(&grid)
        .unwrap()
        .into_iter()
        .map(|a| DIR_NAMES[a])
        .collect();
    assert_eq!(path, ["down", "down", "right", "right", "right"]);
    let mut last = None;
    for a in &path {
        last = Some(env.step(a).unwrap());
    }
    let t = last.unwrap();
    assert_eq!(t.status, Status::Solved);
    assert_eq!(t.flags, vec![FLAG_MOVED, FLAG_REACHED_GOAL]);
    assert_eq!(t.feedback, "moved right and reached the goal");
    assert!((t.reward - 0.95).abs() < 1e-6);
    assert_eq!(env.steps(), 5);
    assert_eq!(env.observe().state, Some(vec![3, 4, 5]));
}

#[test]
fn the_step_limit_truncates() {
    let grid = small();
    let mut env = Gridworld::new(grid.clone(), GridworldConfig { max_steps: 2 });
    assert_eq!(env.step("left").unwrap().status, Status::Running);
    let t = env.step("left").unwrap();
    assert_eq!(t.status, Status::StepLimit);
    assert_eq!(t.flags, vec![FLAG_BUMPED_WALL, FLAG_STEP_LIMIT]);
    assert!(
        t.feedback.ends_with("; step limit of 2 reached"),
        "{}",
        t.feedback
    );
}

#[test]
fn stepping_after_the_end_or_with_a_bad_action_errors() {
    let grid = small();
    let mut env = env(&grid);
    let err = env.step("jump").unwrap_err();
    assert!(
        matches!(&err, EnvError::InvalidAction { env, action, .. } if env == NAME && action == "jump"),
        "{err}"
    );
    assert!(matches!(env.act(4), Err(EnvError::InvalidAction { .. })));
    env.step("right").unwrap();
    env.step("right").unwrap();
    assert!(matches!(
        env.step("left"),
        Err(EnvError::EpisodeOver {
            status: Status::Unsolvable
        })
    ));
    // A reset starts again.
    env.reset(&grid, 0).unwrap();
    assert_eq!(env.step("left").unwrap().status, Status::Running);
}

#[test]
fn there_are_no_snapshots_and_replay_reproduces_the_episode() {
    let grid = small();
    let mut env1 = env(&grid);
    assert!(env1.snapshot().unwrap().is_none());
    assert!(matches!(env1.restore(&()), Err(EnvError::Failed { .. })));
    let steps = play(&mut env1, &grid, &["up", "down", "right", "left", "down"]);
    let end = env1.observe();
    let mut env2 = env(&grid);
    assert_eq!(replay(&mut env2, &grid, 9, &steps).unwrap(), 5);
    assert_eq!(env2.observe(), end);
    let (kind, executed) =
        roll_back(&mut env2, &grid, &steps, 3, &Rollback::Replay { seed: 1 }).unwrap();
    assert_eq!((kind, executed), (RollbackKind::Replay, 3));
    assert_eq!(env2.observe(), steps[3].observation);
    // A recording that does not match is caught.
    let mut wrong = steps.clone();
    wrong[2].observation.state = Some(vec![0, 0, 0]);
    assert!(matches!(
        replay(&mut env2, &grid, 0, &wrong),
        Err(EnvError::NonDeterministic { t: 2, .. })
    ));
}

#[test]
fn the_generator_is_seeded_and_every_grid_is_solvable_with_a_trap_nearby() {
    let config = GridworldGenConfig {
        count: 30,
        ..GridworldGenConfig::default()
    };
    let a = generate(&config).unwrap();
    assert_eq!(a.len(), 30);
    assert_eq!(a, generate(&config).unwrap());
    let b = generate(&GridworldGenConfig {
        seed: 1,
        ..config.clone()
    })
    .unwrap();
    assert_ne!(a, b);
    let ids: HashSet<String> = a.iter().map(Grid::task_id).collect();
    assert_eq!(ids.len(), a.len());
    for grid in &a {
        assert_eq!((grid.width(), grid.height()), (6, 6));
        assert_eq!(grid.traps().len(), 3);
        assert_eq!(parse_grids(&grid.to_text(), "g").unwrap()[0], *grid);
        let path = shortest_path(grid).unwrap();
        assert!(path.len() >= MIN_PATH, "{grid:?}");
        // Playing the path solves the grid without touching a trap.
        let mut env = env(grid);
        let mut status = Status::Running;
        for &a in &path {
            status = env.act(a).unwrap().status;
        }
        assert_eq!(status, Status::Solved, "{grid:?}");
    }
}

#[test]
fn the_generator_rejects_bad_settings_and_gives_up_when_it_must() {
    for (config, field) in [
        (
            GridworldGenConfig {
                width: 11,
                ..Default::default()
            },
            "width",
        ),
        (
            GridworldGenConfig {
                height: 2,
                ..Default::default()
            },
            "height",
        ),
        (
            GridworldGenConfig {
                traps: 0,
                ..Default::default()
            },
            "traps",
        ),
        (
            GridworldGenConfig {
                width: 4,
                height: 4,
                traps: 3,
                ..Default::default()
            },
            "traps",
        ),
        (
            GridworldGenConfig {
                wall_density: 1.0,
                ..Default::default()
            },
            "wall_density",
        ),
    ] {
        assert!(
            matches!(generate(&config), Err(EnvError::InvalidConfig { field: f, .. }) if f == field),
            "{config:?}"
        );
    }
    // A 2x2 interior has no path of 4 steps.
    let tiny = GridworldGenConfig {
        width: 4,
        height: 4,
        traps: 1,
        count: 2,
        ..Default::default()
    };
    assert!(matches!(generate(&tiny), Err(EnvError::Generate { .. })));
    let c: GridworldGenConfig = serde_json::from_str(r#"{"traps": 2}"#).unwrap();
    assert_eq!((c.traps, c.width, c.count), (2, 6, 100));
    assert!(serde_json::from_str::<GridworldGenConfig>(r#"{"trap": 2}"#).is_err());
    assert!(serde_json::from_str::<GridworldConfig>(r#"{"max_step": 2}"#).is_err());
}

#[test]
fn demonstrations_replay_the_shortest_paths() {
    let grids = vec![
        small(),
        parse_grids("#####\n#@^G#\n#####", "x").unwrap().remove(0),
    ];
    let pairs = demonstrations(&grids, 40);
    // The second grid's goal is behind a trap: no demonstration.
    assert_eq!(pairs.len(), 5);
    assert_eq!(pairs[0].0.text, SMALL);
    assert_eq!(pairs[0].1, DOWN);
    assert_eq!(pairs[4].1, RIGHT);
    assert_eq!(pairs[4].0.state, Some(vec![3, 3, 4]));
    // A step limit cuts them short.
    assert_eq!(demonstrations(&grids, 3).len(), 3);
}

#[test]
fn the_encoder_sets_exactly_one_channel_per_cell() {
    let board = 7;
    let plane = board * board;
    let mut out = vec![f32::NAN; 5 * plane];
    let obs = env(&small()).observe();
    GridPlanes.encode(&obs, board, &mut out).unwrap();
    for cell in 0..plane {
        let set: Vec<usize> = (0..5).filter(|&ch| out[ch * plane + cell] == 1.0).collect();
        assert_eq!(set.len(), 1, "cell {cell}");
        assert!((0..5).all(|ch| out[ch * plane + cell] == 0.0 || out[ch * plane + cell] == 1.0));
    }
    let at = |ch: usize, r: usize, c: usize| out[ch * plane + r * board + c];
    assert_eq!(at(4, 1, 1), 1.0); // agent
    assert_eq!(at(2, 1, 3), 1.0); // trap
    assert_eq!(at(3, 3, 4), 1.0); // goal
    assert_eq!(at(1, 2, 3), 1.0); // floor
    assert_eq!(at(0, 0, 0), 1.0); // wall
    assert_eq!(at(0, 6, 6), 1.0); // padding is wall
    assert_eq!(GridPlanes.channels(), CHANNELS.len());
    assert_eq!(GridPlanes.action_space().len(), 4);
    assert!(matches!(
        GridPlanes.encode(&obs, board, &mut out[1..]),
        Err(PolicyError::Input { .. })
    ));
    let mut small_out = vec![0.0; 5 * 16];
    assert!(matches!(
        GridPlanes.encode(&obs, 4, &mut small_out),
        Err(PolicyError::Input { .. })
    ));
    assert!(matches!(
        GridPlanes.encode(&Observation::text("@x"), board, &mut out),
        Err(PolicyError::Input { .. })
    ));
}

#[test]
fn the_reflector_names_the_trap_step_and_respects_min_tau() {
    let grid = small();
    let mut env = env(&grid);
    let steps = play(&mut env, &grid, &["up", "right", "right"]);
    let now = env.observe();
    let r = GridReflector;
    let e = r.reflect(&steps, &now, Status::Unsolvable, 0).unwrap();
    assert_eq!((e.tau, e.trigger_step), (2, 3));
    assert_eq!(e.critical_action.as_deref(), Some("right"));
    assert_eq!(e.category, "trap");
    assert!(e.irreversible);
    assert!(e.diagnosis.contains("step 2"), "{}", e.diagnosis);
    assert!(e.diagnosis.contains("row 1, column 2"), "{}", e.diagnosis);
    assert!(
        e.diagnosis.contains("trap at row 1, column 3"),
        "{}",
        e.diagnosis
    );
    assert_eq!(
        e.fix,
        "at step 2 do not move right (a trap is there); go around it"
    );
    // From (1, 2): up and down are walls, right the trap.
    assert_eq!(e.suggested_actions, ["left"]);
    assert_eq!(
        r.reflect(&steps, &now, Status::Unsolvable, 2).unwrap().tau,
        2
    );
    assert!(r.reflect(&steps, &now, Status::Unsolvable, 3).is_none());
    // While running with no trap: on course.
    assert!(
        r.reflect(&steps[..2], &steps[2].observation, Status::Running, 0)
            .is_none()
    );
    assert!(r.reflect(&steps, &now, Status::Solved, 0).is_none());
}

#[test]
fn the_reflector_hands_failed_ends_without_a_trap_to_the_feedback_rules() {
    let grid = small();
    let mut env = Gridworld::new(grid.clone(), GridworldConfig { max_steps: 4 });
    let steps = play(&mut env, &grid, &["down", "up", "down", "up"]);
    assert_eq!(env.status(), Status::StepLimit);
    let now = env.observe();
    let e = GridReflector
        .reflect(&steps, &now, Status::StepLimit, 1)
        .unwrap();
    assert_eq!(
        e,
        FeedbackReflector
            .reflect(&steps, &now, Status::StepLimit, 1)
            .unwrap()
    );
    assert_eq!((e.tau, e.category.as_str()), (1, "loop"));
    assert!(!e.irreversible);
    let e = GridReflector
        .reflect(&steps[..1], &steps[1].observation, Status::StepLimit, 0)
        .unwrap();
    assert_eq!(e.category, "step_limit");
    assert_eq!(GridReflector.name(), GridReflector::NAME);
}
