//! The server side of the protocol: any in-process [`Env`] answering
//! requests on a reader and writer (`leafe env serve`).

use super::*;

/// Serves `env` over the protocol: reads requests from `input` until EOF or
/// `close`, writes one response line per request to `output`. `resolve`
/// turns a task id into a task. With `snapshots`, `snapshot` answers the
/// environment's snapshot as JSON and `restore` reads it back (snapshots are
/// self-contained: any process of the same command can restore them).
///
/// # Errors
/// Only I/O errors on `input` or `output`; everything else is answered as
/// `"ok": false` with the reason.
pub fn serve<E>(
    env: &mut E,
    resolve: &dyn Fn(&str) -> Option<E::Task>,
    snapshots: bool,
    input: impl BufRead,
    output: impl Write,
) -> std::io::Result<()>
where
    E: Env,
    E::Snapshot: serde::Serialize + serde::de::DeserializeOwned,
{
    serve_described(env, resolve, snapshots, None, input, output)
}

/// [`serve`], with `hello` describing the environment by `system_prompt`
/// (its rules, for an agent acting in it): `leafe env serve` passes the
/// world's own.
///
/// # Errors
/// As [`serve`].
pub fn serve_described<E>(
    env: &mut E,
    resolve: &dyn Fn(&str) -> Option<E::Task>,
    snapshots: bool,
    system_prompt: Option<&str>,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()>
where
    E: Env,
    E::Snapshot: serde::Serialize + serde::de::DeserializeOwned,
{
    let observation = |o: Observation| match o.state {
        Some(s) => json!({ "text": o.text, "state": s }),
        None => json!({ "text": o.text }),
    };
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                writeln!(
                    output,
                    "{}",
                    json!({ "id": null, "ok": false, "error": format!("not JSON: {e}") })
                )?;
                output.flush()?;
                continue;
            }
        };
        let id = request["id"].clone();
        let verb = request["verb"].as_str().unwrap_or_default();
        let answer: std::result::Result<Value, String> = match verb {
            "hello" => {
                let mut hello = json!({
                    "protocol": PROTOCOL_VERSION,
                    "name": env.name(),
                    "version": env!("CARGO_PKG_VERSION"),
                    "snapshot": snapshots,
                    "actions": match env.action_space() {
                        ActionSpace::Choice(names) => json!({ "type": "choice", "names": names }),
                        ActionSpace::FreeText => json!({ "type": "free_text" }),
                    },
                });
                if let Some(p) = system_prompt {
                    hello["system_prompt"] = json!(p);
                }
                Ok(hello)
            }
            "reset" => {
                let task_id = request["task_id"].as_str().unwrap_or_default();
                match resolve(task_id) {
                    None => Err(format!("unknown task_id {task_id:?}")),
                    Some(task) => env
                        .reset(&task, request["seed"].as_u64().unwrap_or(0))
                        .map(|o| json!({ "observation": observation(o), "legal_actions": env.legal_actions() }))
                        .map_err(|e| e.to_string()),
                }
            }
            "step" => match request["action"].as_str() {
                None => Err("`step` needs an `action` string".into()),
                Some(action) => env
                    .step(action)
                    .map(|t| {
                        json!({
                            "observation": observation(env.observe()),
                            "reward": t.reward,
                            "terminated": matches!(t.status, Status::Solved | Status::Unsolvable),
                            "truncated": t.status == Status::StepLimit,
                            "success": t.status == Status::Solved,
                            "feedback": t.feedback,
                            "flags": t.flags,
                            "mistakes": t.mistakes,
                            "legal_actions": env.legal_actions(),
                        })
                    })
                    .map_err(|e| e.to_string()),
            },
            "snapshot" if snapshots => match env.snapshot() {
                Ok(Some(s)) => serde_json::to_value(&s)
                    .map(|s| json!({ "snapshot": s }))
                    .map_err(|e| e.to_string()),
                Ok(None) => Err("this environment has no snapshot now".into()),
                Err(e) => Err(e.to_string()),
            },
            "restore" if snapshots => {
                match serde_json::from_value::<E::Snapshot>(request["snapshot"].clone()) {
                    Err(e) => Err(format!("bad snapshot: {e}")),
                    Ok(s) => env
                        .restore(&s)
                        .map(|_| json!({}))
                        .map_err(|e| e.to_string()),
                }
            }
            "close" => {
                writeln!(output, "{}", json!({ "id": id, "ok": true }))?;
                output.flush()?;
                return Ok(());
            }
            other => Err(format!("unknown verb {other:?}")),
        };
        let mut response = match answer {
            Ok(v) => v,
            Err(e) => json!({ "ok": false, "error": e }),
        };
        response["id"] = id;
        if response.get("ok").is_none() {
            response["ok"] = json!(true);
        }
        writeln!(output, "{response}")?;
        output.flush()?;
    }
    Ok(())
}
