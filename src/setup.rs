//! What a command runs with, resolved from what the user named: a config
//! file, an environment spec (`cmd:…`, `textworld:…`), a task-id file, the
//! recorded replies of an LLM.
//!
//! The command line parses flags and calls these; nothing here prints. This
//! module sits just below `cli`: it may use every library module, and none
//! uses it but the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::env::schemes::EnvSource;
use crate::policy::llm::{CallLog, Replay};
use crate::store::Store;
use crate::train::distill::Method;
use crate::train::job::{JobConfig, TrainJob, TrainRequest};

/// Errors while resolving what a command runs with.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A config file could not be read.
    #[error("reading config {}: {error}", path.display())]
    ReadConfig {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A config file is not valid TOML for its stage.
    #[error("config {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// `--env` names a path or a command without `cmd:`.
    #[error(
        "--env `{env}` is not a built-in environment ({}); an environment process is named with `cmd:`, e.g. --env '{suggestion}'",
        crate::worlds::WORLDS.join(", ")
    )]
    NotAnEnvironment { env: String, suggestion: String },
    /// A task-id file could not be read, or holds no id.
    #[error("{message}")]
    Tasks { message: String },
    /// The TextWorld adapter could not be written to the cache directory.
    #[error("writing {}: {error}", path.display())]
    Adapter {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An `openenv:`, `gym:` or `scienceworld:` spec is malformed, or its
    /// adapter cannot be written.
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    /// Reading the recorded replies failed.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A model could not be read.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    /// `--env` names another world than the model plays.
    #[error(
        "model `{model}` plays {plays} (it reads `{encoder}` observations), not {env}: drop --env or pick a {env} model"
    )]
    ModelPlays {
        model: String,
        plays: String,
        encoder: String,
        env: String,
    },
    /// No built-in world reads the model's observations, and no `--env`.
    #[error(
        "model `{model}` reads `{encoder}` observations, which no built-in environment provides; pass --env"
    )]
    NoWorld { model: String, encoder: String },
    /// The output model's name is taken.
    #[error(
        "model `{name}` already exists in {store} (models are never overwritten; choose another --out-model)"
    )]
    ModelExists { name: String, store: String },
}

/// Result type of this module.
pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// The config at `path` (a TOML file of `T`'s fields), or `T::default()`
/// without one.
///
/// # Errors
/// [`SetupError::ReadConfig`], [`SetupError::Config`].
pub fn read_config<T: serde::de::DeserializeOwned + Default>(path: Option<&Path>) -> Result<T> {
    match path {
        None => Ok(T::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|error| SetupError::ReadConfig {
                path: p.to_path_buf(),
                error,
            })?;
            toml::from_str(&text).map_err(|e| SetupError::Config {
                path: p.to_path_buf(),
                message: e.to_string(),
            })
        }
    }
}

/// The built-in world a command with model `model` runs in: `flag` (the
/// `--env` given), which must be the world the model plays, or else the
/// model's own.
///
/// # Errors
/// [`SetupError::Train`] when the model is not in the store;
/// [`SetupError::ModelPlays`] when `flag` names another world;
/// [`SetupError::NoWorld`] when no built-in world reads its observations and
/// there is no `flag`.
pub async fn world_for_model(store: &Store, flag: Option<&str>, model: &str) -> Result<String> {
    let net = crate::train::model_config(store, model).await?;
    let of_model = crate::worlds::world_of_encoder(&net.encoder);
    match (flag, of_model) {
        (Some(env), Some(plays)) if plays != env => Err(SetupError::ModelPlays {
            model: model.to_string(),
            plays: plays.to_string(),
            encoder: net.encoder,
            env: env.to_string(),
        }),
        (Some(env), _) => Ok(env.to_string()),
        (None, Some(plays)) => Ok(plays.to_string()),
        (None, None) => Err(SetupError::NoWorld {
            model: model.to_string(),
            encoder: net.encoder,
        }),
    }
}

/// Checks that no model named `name` is in the store (models are never
/// overwritten).
///
/// # Errors
/// [`SetupError::ModelExists`], or the store's error.
pub async fn ensure_new_model(store: &Store, name: &str) -> Result<()> {
    if store.model_manifest(name).await?.is_some() {
        return Err(SetupError::ModelExists {
            name: name.to_string(),
            store: store.url().to_string(),
        });
    }
    Ok(())
}

/// A `leafe train` request resolved: the world (the `--init` model's, or
/// `--env`), the config file with the flags over it, and a free output name
/// (for a model line, `--incremental`, the next version's name is chosen
/// when it trains).
///
/// # Errors
/// Those of [`world_for_model`], [`read_config`] and [`ensure_new_model`].
pub async fn train_job(store: &Store, request: TrainRequest) -> Result<TrainJob> {
    let text = crate::train::text::is_text_model(store, &request.init).await?;
    let world = if text {
        request.env.clone().unwrap_or_default()
    } else {
        world_for_model(store, request.env.as_deref(), &request.init).await?
    };
    let fresh = !request.incremental;
    let config = if request.method == Method::Grpo && fresh {
        ensure_new_model(store, &request.out_model).await?;
        JobConfig::Grpo(
            request
                .overrides
                .grpo(read_config(request.config.as_deref())?),
        )
    } else {
        let cfg = request
            .overrides
            .distill(read_config(request.config.as_deref())?);
        if fresh {
            ensure_new_model(store, &request.out_model).await?;
        }
        JobConfig::Distill(cfg)
    };
    Ok(TrainJob {
        request,
        world,
        text,
        config,
    })
}

/// The environment a text model's GRPO job samples in: the task ids of
/// `--levels` and the `--env` environment, episodes truncated at the GRPO
/// config's step limit. `None` for any other job.
///
/// # Errors
/// [`SetupError::Tasks`] for a text GRPO job without `--levels` or `--env`
/// or with an unreadable task file; those of [`process_env`] and
/// [`process_pool`].
pub fn text_grpo_env(
    job: &TrainJob,
    timeout_ms: Option<u64>,
) -> Result<Option<(Vec<String>, Arc<EnvSource>)>> {
    let JobConfig::Grpo(cfg) = &job.config else {
        return Ok(None);
    };
    if !job.text {
        return Ok(None);
    }
    let missing = |what: &str| SetupError::Tasks {
        message: format!("--method grpo with a text model samples in its environment: pass {what}"),
    };
    let levels = job
        .request
        .levels
        .as_deref()
        .ok_or_else(|| missing("--levels (task ids, one per line)"))?;
    let spec = process_env(Some(job.world.as_str()).filter(|w| !w.is_empty()))?
        .ok_or_else(|| missing("--env (the text environment the model acts in)"))?;
    let tasks = read_task_ids(levels)?;
    let pool = process_pool(
        &spec.command,
        spec.timeout(timeout_ms),
        cfg.max_steps as usize,
    )?;
    Ok(Some((tasks, pool)))
}

/// The generic system prompt for an environment process that does not
/// describe itself.
pub const PROCESS_SYSTEM_PROMPT: &str =
    "You are an agent acting in a text environment. Choose the next action.";

/// The system prompt for `--env textworld:…`.
pub const TEXTWORLD_SYSTEM_PROMPT: &str = "You play a text adventure game. The goal is stated at the start; \
     each turn, choose one of the admissible commands to get closer to it. Explore rooms, open containers, \
     take and put objects as the goal says.";

/// The TextWorld adapter, compiled in so `--env textworld:` works from any
/// installed binary.
const TEXTWORLD_ADAPTER: &str = include_str!("../examples/textworld_env.py");

/// An environment process named by `--env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The shell command line that starts it.
    pub command: String,
    /// The system prompt to use when the process does not describe itself
    /// in `hello`.
    pub system_prompt: &'static str,
    /// Milliseconds a request may take unless `--env-timeout-ms` says:
    /// [`ENV_TIMEOUT_MS`], or [`TEXTWORLD_TIMEOUT_MS`] for TextWorld, which
    /// generates a game on its first use.
    pub timeout_ms: u64,
}

impl ProcessSpec {
    /// Milliseconds a request may take: `--env-timeout-ms` if given, else
    /// this environment's default ([`ProcessSpec::timeout_ms`]).
    pub fn timeout(&self, flag: Option<u64>) -> u64 {
        flag.unwrap_or(self.timeout_ms)
    }
}

/// Milliseconds an environment process may take to answer a request, by
/// default.
pub const ENV_TIMEOUT_MS: u64 = 30_000;

/// The default for `textworld:`: a reset that generates its game takes
/// seconds, and many at once on a loaded machine take longer.
pub const TEXTWORLD_TIMEOUT_MS: u64 = 120_000;

/// An environment process named by `--env`: `cmd:COMMAND`, or
/// `textworld:GAMES_DIR [ADAPTER OPTIONS]` (the compiled-in adapter of
/// `examples/textworld_env.py`, run by `$LEAFE_PYTHON` or `python3`, which
/// must have `textworld`). `None` for a built-in environment (or none).
///
/// # Errors
/// [`SetupError::Adapter`] when the adapter cannot be written to the cache.
pub fn process_env(env: Option<&str>) -> Result<Option<ProcessSpec>> {
    let Some(env) = env else { return Ok(None) };
    // openenv:URL, gym:ENV_ID, scienceworld: (crate::env::schemes).
    if let Some((command, system_prompt)) = crate::env::schemes::resolve(env)? {
        return Ok(Some(ProcessSpec {
            command,
            system_prompt,
            timeout_ms: ENV_TIMEOUT_MS,
        }));
    }
    if let Some(cmd) = env.strip_prefix("cmd:") {
        return Ok(Some(ProcessSpec {
            command: cmd.to_string(),
            system_prompt: PROCESS_SYSTEM_PROMPT,
            timeout_ms: ENV_TIMEOUT_MS,
        }));
    }
    let Some(spec) = env.strip_prefix("textworld:") else {
        if !crate::worlds::WORLDS.contains(&env)
            && (env.contains(['/', '.', ' ']) || Path::new(env).exists())
        {
            // A path or a command line without `cmd:`.
            let suggestion = if env.ends_with(".py") && !env.contains(' ') {
                format!("cmd:python3 {env}")
            } else {
                format!("cmd:{env}")
            };
            return Err(SetupError::NotAnEnvironment {
                env: env.to_string(),
                suggestion,
            });
        }
        return Ok(None);
    };
    // The adapter under the cache directory, named by its content.
    let hash =
        crate::policy::llm::request_key(&serde_json::Value::String(TEXTWORLD_ADAPTER.into()));
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("leafe");
    let script = dir.join(format!("textworld_env-{}.py", &hash[..12]));
    if !script.exists() {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| SetupError::Adapter { path, error }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".textworld_env-{}.py", std::process::id()));
        std::fs::write(&tmp, TEXTWORLD_ADAPTER).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &script).map_err(io(&script))?;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let python = std::env::var("LEAFE_PYTHON").unwrap_or_else(|_| "python3".into());
    let spec = spec.trim();
    let args = match spec.split_once(char::is_whitespace) {
        _ if spec.is_empty() || spec.starts_with('-') => spec.to_string(),
        Some((games, rest)) => format!("--games {} {rest}", quote(games)),
        None => format!("--games {}", quote(spec)),
    };
    Ok(Some(ProcessSpec {
        command: format!(
            "{} {} {args}",
            quote(&python),
            quote(&script.to_string_lossy())
        ),
        system_prompt: TEXTWORLD_SYSTEM_PROMPT,
        timeout_ms: TEXTWORLD_TIMEOUT_MS,
    }))
}

/// Environments from outside for `command` (a [`ProcessSpec::command`]):
/// a pool of `sh -c command` processes, or episodes on the OpenEnv server of
/// an `openenv:` spec; each request waiting at most `timeout_ms`, episodes
/// truncated at `max_steps` (0: never).
///
/// # Errors
/// [`SetupError::Env`] for a malformed `openenv:` spec.
pub fn process_pool(command: &str, timeout_ms: u64, max_steps: usize) -> Result<Arc<EnvSource>> {
    Ok(EnvSource::new(command, timeout_ms, max_steps)?)
}

/// Task ids, one per line, of a process environment.
///
/// # Errors
/// [`SetupError::Tasks`] when the file cannot be read or holds no id.
pub fn read_task_ids(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| SetupError::Tasks {
        message: format!("reading task ids from {}: {e}", path.display()),
    })?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(SetupError::Tasks {
            message: format!("{}: no task ids (one per line)", path.display()),
        });
    }
    Ok(ids)
}

/// The log LLM agents write their calls to; with `replay` other than
/// [`Replay::Off`], loaded with the store's recorded replies of `model`.
///
/// # Errors
/// The store's and the query's.
pub async fn call_log(
    store: &crate::store::Store,
    model: &str,
    replay: Replay,
) -> Result<Arc<CallLog>> {
    if replay == Replay::Off {
        return Ok(Arc::new(CallLog::new()));
    }
    let session = crate::query::QuerySession::open(store).await?;
    let q = crate::query::load_query(None, "llm_replies")?.bind(
        &std::collections::BTreeMap::from([
            ("run".to_string(), "%".to_string()),
            ("model".to_string(), model.to_string()),
        ]),
    )?;
    let mut recorded = Vec::new();
    for b in session.collect(&q).await? {
        use arrow::array::AsArray;
        let (keys, replies) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            recorded.push((keys.value(i).to_string(), replies.value(i).to_string()));
        }
    }
    Ok(Arc::new(CallLog::with_replay(replay, recorded)))
}
