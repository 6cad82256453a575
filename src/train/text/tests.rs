use super::*;
use crate::env::{ActionSpace, Observation, Status, Transition};
use crate::policy::text::{TextNetConfig, TextPolicy};
use crate::policy::{Memory, Policy, Turn};
use std::borrow::Cow;

/// A text quest whose task is stated in the first observation only: take
/// the key of the named colour, then open the door of that colour. The
/// legal actions change from step to step and come in a task-dependent
/// order; a wrong key or door loses the game.
struct Quest {
    task: u64,
    stage: u8,
    status: Status,
    steps: usize,
    space: ActionSpace,
}

const COLOURS: [&str; 6] = ["red", "green", "blue", "yellow", "violet", "orange"];

impl Quest {
    fn new() -> Quest {
        Quest {
            task: 0,
            stage: 0,
            status: Status::Running,
            steps: 0,
            space: ActionSpace::FreeText,
        }
    }
    fn colour(&self) -> &'static str {
        COLOURS[(self.task % 6) as usize]
    }
    fn order(&self) -> Vec<&'static str> {
        let mut c = COLOURS.to_vec();
        c.rotate_left((self.task / 6 % 6) as usize);
        c
    }
}

impl Env for Quest {
    type Task = u64;
    type Snapshot = ();
    fn name(&self) -> &str {
        "quest"
    }
    fn task_id(&self, task: &u64) -> String {
        task.to_string()
    }
    fn action_space(&self) -> &ActionSpace {
        &self.space
    }
    fn reset(&mut self, task: &u64, _seed: u64) -> crate::env::Result<Observation> {
        self.task = *task;
        self.stage = 0;
        self.status = Status::Running;
        self.steps = 0;
        Ok(self.observe())
    }
    fn observe(&self) -> Observation {
        Observation::text(match self.stage {
            0 => format!(
                "You are in a hall. Your task: open the {} door. Keys lie on a table.",
                self.colour()
            ),
            1 => "You hold a key. Doors line the wall.".to_string(),
            _ => "The game is over.".to_string(),
        })
    }
    fn legal_actions(&self) -> Vec<String> {
        let what = match self.stage {
            0 => "take the {} key",
            1 => "open the {} door",
            _ => return Vec::new(),
        };
        self.order().iter().map(|c| what.replace("{}", c)).collect()
    }
    fn step(&mut self, action: &str) -> crate::env::Result<Transition> {
        self.steps += 1;
        let right = action.contains(self.colour());
        self.stage += 1;
        self.status = match (right, self.stage) {
            (false, _) => Status::Unsolvable,
            (true, 2) => Status::Solved,
            _ => Status::Running,
        };
        if self.status.is_terminal() {
            self.stage = 2;
        }
        Ok(Transition {
            reward: f32::from(self.status == Status::Solved),
            status: self.status,
            feedback: if right { "done." } else { "that was wrong." }.into(),
            flags: Vec::<Cow<'static, str>>::new(),
            mistakes: Vec::new(),
            info: None,
        })
    }
    fn snapshot(&mut self) -> crate::env::Result<Option<()>> {
        Ok(None)
    }
    fn restore(&mut self, _: &()) -> crate::env::Result<()> {
        Ok(())
    }
    fn status(&self) -> Status {
        self.status
    }
    fn steps(&self) -> usize {
        self.steps
    }
    fn demo(&mut self, task: &u64) -> crate::env::Result<Option<Vec<String>>> {
        let c = COLOURS[(*task % 6) as usize];
        Ok(Some(vec![
            format!("take the {c} key"),
            format!("open the {c} door"),
        ]))
    }
}

/// Success rate of `policy` on `tasks`, `n` samples each.
fn success(policy: &dyn Policy, tasks: &[u64], n: usize) -> f64 {
    let mut env = Quest::new();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut wins = 0;
    for task in tasks {
        for _ in 0..n {
            let mut obs = env.reset(task, 0).unwrap();
            let mut history: Vec<Step> = Vec::new();
            while !env.status().is_terminal() {
                let legal = env.legal_actions();
                let mut memory: Memory = None;
                let d = {
                    let mut turns = [Turn {
                        history: &history,
                        observation: &obs,
                        legal: &legal,
                        experience: None,
                        rng: &mut rng,
                        memory: &mut memory,
                    }];
                    policy.act(&mut turns, 1.0).unwrap().remove(0)
                };
                let transition = env.step(&d.action).unwrap();
                history.push(Step {
                    t: history.len(),
                    observation: obs.clone(),
                    action: d.action,
                    action_index: None,
                    log_prob: d.log_prob,
                    call: None,
                    legal: None,
                    transition,
                });
                obs = env.observe();
            }
            wins += usize::from(env.status() == Status::Solved);
        }
    }
    wins as f64 / (tasks.len() * n) as f64
}

fn trained(train: &[u64], epochs: usize) -> (TextPolicy, Vec<f32>, DemoReport) {
    let mut env = Quest::new();
    let (decisions, report) = demonstrations(&mut env, train, 10, 4, 0).unwrap();
    let vocab = learn_vocab(&decisions, 500).unwrap();
    let policy = TextPolicy::untrained("bc", TextNetConfig::default(), Arc::new(vocab), 3).unwrap();
    let fit = FitConfig {
        epochs,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 0,
    };
    let (policy, losses) = fit_text(&policy, &decisions, &fit, |_, _, _| {}).unwrap();
    (policy, losses, report)
}

#[test]
fn behaviour_cloning_beats_random_on_held_out_tasks() {
    // Tasks 0..24 to learn from, 24..36 held out: every colour is in both,
    // in orders the held-out tasks put differently.
    let train: Vec<u64> = (0..24).collect();
    let held_out: Vec<u64> = (24..36).collect();
    let (policy, losses, report) = trained(&train, 30);
    assert_eq!(report.tasks, 24);
    assert_eq!(report.succeeded, 24);
    assert_eq!(report.decisions, 48);
    assert_eq!(report.not_legal, 0);
    assert!(losses.last().unwrap() < &(losses[0] * 0.5), "{losses:?}");
    // A uniform policy over six keys and six doors wins 1/36 of the time:
    // ≈ 8 wins in 12 × 20 = 240 episodes. The cloned policy must win most.
    let random = success(&crate::policy::random::RandomPolicy, &held_out, 20);
    let cloned = success(&policy, &held_out, 20);
    assert!(random < 0.1, "random {random}");
    assert!(cloned > 0.8, "cloned {cloned} vs random {random}");
}

#[test]
fn a_checkpoint_round_trips() {
    let (policy, _, _) = trained(&(0..6).collect::<Vec<_>>(), 2);
    let files = policy.to_files().unwrap();
    let get = |name| files.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let back = TextPolicy::from_files(
        "bc",
        policy.config().clone(),
        get(crate::policy::text::WEIGHTS),
        &get(crate::policy::text::VOCAB),
    )
    .unwrap();
    let mut env = Quest::new();
    let (decisions, _) = demonstrations(&mut env, &[7, 8], 10, 4, 0).unwrap();
    let (a, _, _) = encode(&policy, &decisions).unwrap();
    let (b, _, _) = encode(&back, &decisions).unwrap();
    assert_eq!(a, b);
    let refs: Vec<&TextInput> = a.iter().collect();
    assert_eq!(
        policy.log_probs(&refs).unwrap(),
        back.log_probs(&refs).unwrap()
    );
}

#[test]
fn the_loss_is_the_chosen_actions_log_probability_and_zero_weights_add_nothing() {
    let (policy, _, _) = trained(&(0..6).collect::<Vec<_>>(), 1);
    let mut env = Quest::new();
    let (decisions, _) = demonstrations(&mut env, &[1, 2, 3], 10, 4, 0).unwrap();
    let (inputs, targets, _) = encode(&policy, &decisions).unwrap();
    let refs: Vec<&TextInput> = inputs.iter().collect();
    let lp = policy.log_probs(&refs).unwrap();
    let expected: f32 =
        -targets.iter().zip(&lp).map(|(&t, l)| l[t]).sum::<f32>() / targets.len() as f32;
    let fit = FitConfig {
        epochs: 1,
        batch_size: 64,
        learning_rate: 0.0,
        seed: 0,
    };
    let mut stepper = TextStepper::new(&policy, &fit);
    let ones = vec![1.0; refs.len()];
    let loss = stepper.step(&refs, &targets, &ones).unwrap();
    assert!((loss - expected).abs() < 1e-4, "{loss} vs {expected}");
    // A decision with weight 0 changes neither the loss nor the gradient:
    // the same step with it appended gives the same weights afterwards.
    let fit = FitConfig {
        learning_rate: 1e-2,
        ..fit
    };
    let after = |refs: &[&TextInput], targets: &[usize], ws: &[f32]| {
        let mut s = TextStepper::new(&policy, &fit);
        s.step(refs, targets, ws).unwrap();
        let p = s.finish(&policy).unwrap();
        p.log_probs(&[refs[0]]).unwrap()
    };
    let base = after(&refs[..4], &targets[..4], &[1.0; 4]);
    // The step moved the weights (the comparison below is not vacuous).
    let before = policy.log_probs(&[refs[0]]).unwrap();
    assert!(
        before[0]
            .iter()
            .zip(&base[0])
            .any(|(x, y)| (x - y).abs() > 1e-4),
        "{before:?} vs {base:?}"
    );
    let mut more = refs[..4].to_vec();
    more.push(refs[5]);
    let mut t = targets[..4].to_vec();
    t.push(targets[5]);
    let with_zero = after(&more, &t, &[1.0, 1.0, 1.0, 1.0, 0.0]);
    for (x, y) in base[0].iter().zip(&with_zero[0]) {
        assert!((x - y).abs() < 1e-5, "{base:?} vs {with_zero:?}");
    }
}

#[test]
fn decisions_rebuilt_from_store_rows_are_what_the_policy_read() {
    // A cloned policy plays a few quests (some steps of each path a branch
    // would store, some its prefix); the rows the text queries return are
    // rebuilt into decisions, which must encode to the inputs the policy
    // read when it acted, with the action taken as the target.
    let (policy, _, _) = trained(&(0..12).collect::<Vec<_>>(), 3);
    let mut env = Quest::new();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut read, mut rows) = (Vec::new(), Vec::new());
    for (leaf, task) in (30..36u64).enumerate() {
        let mut obs = env.reset(&task, 0).unwrap();
        let mut history: Vec<Step> = Vec::new();
        while !env.status().is_terminal() {
            let legal = env.legal_actions();
            let mut memory: Memory = None;
            let turn = Turn {
                history: &history,
                observation: &obs,
                legal: &legal,
                experience: None,
                rng: &mut rng,
                memory: &mut memory,
            };
            let input = policy.input(&turn).unwrap();
            let d = policy.act(&mut [turn], 1.0).unwrap().remove(0);
            // The first step is context only, as a branch's prefix is.
            let target = !history.is_empty();
            if target {
                read.push((input, legal.iter().position(|l| *l == d.action).unwrap()));
            }
            let transition = env.step(&d.action).unwrap();
            history.push(Step {
                t: history.len(),
                observation: obs.clone(),
                action: d.action,
                action_index: None,
                log_prob: d.log_prob,
                call: None,
                legal: Step::legal_of(legal),
                transition,
            });
            obs = env.observe();
        }
        for s in &history {
            rows.push((
                leaf as i64,
                s.t as i64,
                s.observation.text.clone(),
                s.action.clone(),
                s.transition.feedback.clone(),
                serde_json::to_string(s.legal.as_ref().unwrap()).unwrap(),
                s.t > 0,
            ));
        }
    }
    let mut rebuilt = distill::PathDecisions::new(policy.config().history, 1.0);
    for (leaf, t, observation, action, feedback, legal, target) in &rows {
        rebuilt
            .push(distill::PathRow {
                run_id: "r",
                leaf: *leaf,
                t: *t,
                observation,
                action,
                feedback,
                legal: Some(legal),
                target: *target,
            })
            .unwrap();
    }
    assert!(!read.is_empty());
    assert_eq!(rebuilt.not_legal, 0);
    let (inputs, targets, weights) = encode(&policy, &rebuilt.decisions).unwrap();
    let (want_inputs, want_targets): (Vec<_>, Vec<_>) = read.into_iter().unzip();
    assert_eq!(inputs, want_inputs);
    assert_eq!(targets, want_targets);
    assert!(weights.iter().all(|w| *w == 1.0));

    // A target step without legal actions is refused with what to do.
    let mut old = distill::PathDecisions::new(4, 1.0);
    let err = old
        .push(distill::PathRow {
            run_id: "r",
            leaf: 0,
            t: 3,
            observation: "o",
            action: "a",
            feedback: "f",
            legal: None,
            target: true,
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no legal actions stored") && err.contains("explore again"),
        "{err}"
    );
}
