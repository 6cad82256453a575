//! The wire: one request to an OpenEnv server over HTTP or a WebSocket
//! session, and what its failures mean.

use super::*;

/// One request to the network thread.
pub(super) enum Op {
    Get(&'static str),
    Post(&'static str, Value),
    /// A message on WebSocket session `slot`.
    Ws(usize, Value),
}

pub(super) type Reply = std::result::Result<Value, Failure>;

/// A failed request: its one-line reason, and whether the action was refused
/// (HTTP 422, `VALIDATION_ERROR`) rather than the server failing.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) refused: bool,
}

impl Failure {
    pub(super) fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            refused: false,
        }
    }
}

/// The network thread: owns the HTTP client and the WebSocket sessions.
pub(super) async fn network(
    config: OpenEnvConfig,
    jobs: std::sync::mpsc::Receiver<(Op, Sender<Reply>)>,
) {
    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
    let timeout = Duration::from_millis(config.timeout_ms);
    let client = reqwest::Client::builder().timeout(timeout).build();
    let base = config.http_base();
    let mut sockets: HashMap<usize, Ws> = HashMap::new();
    // Blocking receive is fine: this thread does nothing else between jobs.
    while let Ok((op, reply)) = jobs.recv() {
        let out = match op {
            Op::Get(path) | Op::Post(path, _) if client.is_err() => Err(Failure::new(format!(
                "{path}: cannot build the HTTP client: {}",
                client
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ))),
            Op::Get(path) => {
                let c = client.as_ref().expect("checked");
                http(
                    c.get(format!("{base}{path}")),
                    "GET",
                    path,
                    config.timeout_ms,
                )
                .await
            }
            Op::Post(path, body) => {
                let c = client.as_ref().expect("checked");
                http(
                    c.post(format!("{base}{path}"))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                    "POST",
                    path,
                    config.timeout_ms,
                )
                .await
            }
            Op::Ws(slot, message) => {
                let kind = message["type"].as_str().unwrap_or("?").to_string();
                let exchange = async {
                    if !sockets.contains_key(&slot) {
                        let url = format!("{}/ws", config.url);
                        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                            .await
                            .map_err(|e| Failure::new(format!("cannot open {url}: {e}")))?;
                        sockets.insert(slot, ws);
                    }
                    let ws = sockets.get_mut(&slot).expect("inserted");
                    ws.send(tokio_tungstenite::tungstenite::Message::text(
                        message.to_string(),
                    ))
                    .await
                    .map_err(|e| Failure::new(format!("{kind}: sending: {e}")))?;
                    loop {
                        match ws.next().await {
                            None => {
                                return Err(Failure::new(format!(
                                    "{kind}: the server closed the WebSocket"
                                )));
                            }
                            Some(Err(e)) => {
                                return Err(Failure::new(format!("{kind}: receiving: {e}")));
                            }
                            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                                let text = m.into_text().unwrap_or_default();
                                return ws_answer(&kind, text.as_str());
                            }
                            Some(Ok(m)) if m.is_close() => {
                                return Err(Failure::new(format!(
                                    "{kind}: the server closed the WebSocket ({m})"
                                )));
                            }
                            Some(Ok(_)) => continue,
                        }
                    }
                };
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(f)) => {
                        if !f.refused {
                            sockets.remove(&slot);
                        }
                        Err(f)
                    }
                    Err(_) => {
                        sockets.remove(&slot);
                        Err(Failure::new(format!(
                            "{kind}: no answer within {} ms (the session was dropped)",
                            config.timeout_ms
                        )))
                    }
                }
            }
        };
        let _ = reply.send(out);
    }
    for (_, mut ws) in sockets {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            ws.send(tokio_tungstenite::tungstenite::Message::text(
                json!({"type": "close"}).to_string(),
            )),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    }
}

/// An HTTP request's JSON answer, or its one-line failure.
pub(super) async fn http(
    request: reqwest::RequestBuilder,
    method: &str,
    path: &str,
    timeout_ms: u64,
) -> Reply {
    let what = format!("{method} {path}");
    let response = request.send().await.map_err(|e| {
        Failure::new(if e.is_timeout() {
            format!("{what}: no answer within {timeout_ms} ms")
        } else if e.is_connect() {
            format!("{what}: cannot connect (is the server running?)")
        } else {
            format!("{what}: {e}")
        })
    })?;
    let status = response.status();
    let body = response.text().await.map_err(|e| {
        Failure::new(if e.is_timeout() {
            format!("{what}: no answer within {timeout_ms} ms")
        } else {
            format!("{what}: reading the answer: {e}")
        })
    })?;
    let short = || one_line(&body, 200);
    if status.as_u16() == 422 {
        return Err(Failure {
            message: format!("{what}: the server refused the request (422): {}", short()),
            refused: true,
        });
    }
    if status.as_u16() == 404 || status.as_u16() == 405 {
        return Err(Failure::new(format!(
            "{what}: answered {status}: not an OpenEnv server, or one in production mode without /reset and /step"
        )));
    }
    if !status.is_success() {
        return Err(Failure::new(format!(
            "{what}: server error {status}: {}",
            short()
        )));
    }
    serde_json::from_str(&body).map_err(|_| {
        Failure::new(format!(
            "{what}: the answer is not JSON (is this an OpenEnv server?): {}",
            short()
        ))
    })
}

/// A WebSocket answer: the `data` of an `observation`/`state` message.
pub(super) fn ws_answer(kind: &str, text: &str) -> Reply {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        Failure::new(format!(
            "{kind}: the answer is not JSON (is this an OpenEnv server?): {}",
            one_line(text, 200)
        ))
    })?;
    match v["type"].as_str() {
        Some("observation") | Some("state") => Ok(v["data"].clone()),
        Some("error") => {
            let code = v["data"]["code"].as_str().unwrap_or("?");
            Err(Failure {
                message: format!(
                    "{kind}: the server answered {code}: {}",
                    one_line(
                        &match &v["data"]["errors"] {
                            Value::Null => v["data"]["message"].as_str().unwrap_or("").to_string(),
                            e => format!("{} {e}", v["data"]["message"].as_str().unwrap_or("")),
                        },
                        200
                    )
                ),
                refused: code == "VALIDATION_ERROR",
            })
            .map_err(|mut f: Failure| {
                if code == "CAPACITY_REACHED" {
                    f.message.push_str(
                        " (the server allows fewer WebSocket sessions: lower ?sessions=, or raise its max_concurrent_envs)",
                    );
                }
                f
            })
        }
        _ => Err(Failure::new(format!(
            "{kind}: unexpected answer (not OpenEnv's {{type, data}}): {}",
            one_line(text, 200)
        ))),
    }
}

pub(super) fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}
