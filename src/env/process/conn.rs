//! One live environment process: spawned with its `hello` checked, a
//! request written and its answer read (together, or apart so that several
//! processes work at once), killed with its process group when dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::super::{ActionSpace, EnvError, Result};
use super::{Description, PROTOCOL_VERSION, ProcessConfig, groups};

/// One live process.
pub(super) struct Conn {
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    pub(super) lines: Receiver<std::io::Result<String>>,
    pub(super) stderr: Arc<Mutex<Vec<String>>>,
    pub(super) next_id: u64,
    pub(super) hello: Hello,
}

/// What a process said in `hello`.
#[derive(Debug, Clone)]
pub(super) struct Hello {
    pub(super) name: String,
    pub(super) snapshot: bool,
    pub(super) actions: ActionSpace,
    pub(super) description: Description,
    /// Whether the process answers `demo` (demonstrations).
    pub(super) demo: bool,
}

impl Conn {
    pub(super) fn spawn(config: &ProcessConfig) -> Result<Conn> {
        let label = config.label();
        let failed = |message: String| EnvError::Failed {
            env: label.clone(),
            message,
        };
        let (program, args) = config
            .command
            .split_first()
            .ok_or_else(|| failed("empty command".into()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A process group of its own: a timeout, a drop or Ctrl-C kills the
        // environment and everything it started, not only the `sh -c`
        // wrapper (see [`kill_all`]).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("cannot start `{program}`: {e}")))?;
        groups::register(child.id());
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The process's logs: the last lines are kept for error messages.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines().map_while(|l| l.ok()) {
                tracing::debug!(target: "leafe::env::process", "{line}");
                let mut k = keep.lock().expect("stderr buffer");
                if k.len() == 20 {
                    k.remove(0);
                }
                k.push(line);
            }
        });
        let mut conn = Conn {
            child,
            stdin,
            lines,
            stderr,
            next_id: 0,
            hello: Hello {
                name: label.clone(),
                snapshot: false,
                actions: ActionSpace::FreeText,
                description: Description::default(),
                demo: false,
            },
        };
        let hello = conn.call(config, "hello", json!({}), None)?;
        let version = hello["protocol"].as_u64().unwrap_or(0);
        if version != PROTOCOL_VERSION {
            return Err(failed(format!(
                "speaks protocol version {version}; leafe speaks {PROTOCOL_VERSION}"
            )));
        }
        let actions = match hello["actions"]["type"].as_str() {
            Some("choice") => ActionSpace::Choice(
                hello["actions"]["names"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Some("free_text") => ActionSpace::FreeText,
            other => {
                return Err(failed(format!(
                    "hello: `actions.type` must be \"choice\" or \"free_text\", got {other:?}"
                )));
            }
        };
        let text = |v: &Value| {
            v.as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        let name = hello["name"].as_str().unwrap_or(&label).to_string();
        conn.hello = Hello {
            description: Description {
                name: name.clone(),
                version: text(&hello["version"]),
                description: text(&hello["description"]),
                system_prompt: text(&hello["system_prompt"]),
                action_semantics: text(&hello["actions"]["semantics"]),
            },
            name,
            snapshot: hello["snapshot"].as_bool().unwrap_or(false),
            actions,
            demo: hello["demo"].as_bool().unwrap_or(false),
        };
        Ok(conn)
    }

    /// Sends one request and waits for its response; any failure leaves the
    /// process unusable (the caller drops it).
    pub(super) fn call(
        &mut self,
        config: &ProcessConfig,
        verb: &str,
        fields: Value,
        task: Option<&str>,
    ) -> Result<Value> {
        let id = self.send(config, verb, fields, task)?;
        self.receive(config, id, verb, task)
    }

    /// Writes one request; its id, for [`Conn::receive`].
    pub(super) fn send(
        &mut self,
        config: &ProcessConfig,
        verb: &str,
        fields: Value,
        task: Option<&str>,
    ) -> Result<u64> {
        let label = config.label();
        let context = context(verb, task);
        self.next_id += 1;
        let id = self.next_id;
        let mut request = fields;
        request["id"] = json!(id);
        request["verb"] = json!(verb);
        let line = format!("{request}\n");
        let written = self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|_| self.stdin.flush());
        if let Err(e) = written {
            return Err(self.dead(&label, &context, &format!("cannot write the request: {e}")));
        }
        Ok(id)
    }

    /// Waits for the response to request `id` (the next one the process
    /// writes).
    pub(super) fn receive(
        &mut self,
        config: &ProcessConfig,
        id: u64,
        verb: &str,
        task: Option<&str>,
    ) -> Result<Value> {
        let label = config.label();
        let context = context(verb, task);
        let text = match self
            .lines
            .recv_timeout(Duration::from_millis(config.timeout_ms))
        {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => return Err(self.dead(&label, &context, &format!("reading: {e}"))),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                return Err(EnvError::Failed {
                    env: label,
                    message: format!(
                        "{context}: no answer within {} ms (the process was killed; one that needs longer takes --env-timeout-ms, or `env_timeout_ms` in an experiment's [text])",
                        config.timeout_ms
                    ),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(self.dead(&label, &context, "the process closed its output"));
            }
        };

        let bad = |message: String| EnvError::Failed {
            env: label.clone(),
            message: format!("{context}: {message}"),
        };
        let response: Value = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "not a JSON object ({e}): {}",
                text.chars().take(120).collect::<String>()
            ))
        })?;
        if response["id"].as_u64() != Some(id) {
            return Err(bad(format!(
                "answered id {} to request id {id}",
                response["id"]
            )));
        }
        if response["ok"].as_bool() != Some(true) {
            let error = response["error"]
                .as_str()
                .unwrap_or("no `ok: true` and no error");
            return Err(bad(format!("the environment refused: {error}")));
        }
        Ok(response)
    }

    /// The error for a process that is gone, with its exit status and last
    /// log lines.
    pub(super) fn dead(&mut self, label: &str, context: &str, what: &str) -> EnvError {
        std::thread::sleep(Duration::from_millis(50));
        let status = match self.child.try_wait() {
            Ok(Some(s)) => format!(" ({s})"),
            _ => String::new(),
        };
        let log = self
            .stderr
            .lock()
            .map(|l| l.join(" | "))
            .unwrap_or_default();
        EnvError::Failed {
            env: label.to_string(),
            message: format!(
                "{context}: {what}: the process died{status}{}",
                if log.is_empty() {
                    String::new()
                } else {
                    format!("; its last log lines: {log}")
                }
            ),
        }
    }
}

/// What a request is about, for its errors: `task T: verb`, or the verb.
fn context(verb: &str, task: Option<&str>) -> String {
    match task {
        Some(t) => format!("task {t}: {verb}"),
        None => verb.to_string(),
    }
}

impl Conn {
    /// Kills the process and its whole process group.
    pub(super) fn kill(&mut self) {
        groups::kill(self.child.id());
        let _ = self.child.kill();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("env", &self.hello.name)
            .finish()
    }
}
