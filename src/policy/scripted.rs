//! A scripted OpenAI-compatible server, for tests and benchmarks: answers
//! `POST …/chat/completions` on 127.0.0.1 by a script (status, body, delay)
//! and records every request. HTTP/1.1 with keep-alive, one thread per
//! connection; it runs until the process ends. Not for production.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The script: (request body, request number from 1) → (HTTP status, body,
/// delay in milliseconds before answering).
pub type Script = dyn Fn(&Value, usize) -> (u16, String, u64) + Send + Sync;

/// Starts a server; returns its base URL (`http://127.0.0.1:PORT/v1`) and
/// the requests it has seen.
///
/// # Panics
/// When no loopback port can be bound.
pub fn server(script: Arc<Script>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!("http://{}/v1", listener.local_addr().expect("bound"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let (script, log) = (script.clone(), log.clone());
            std::thread::spawn(move || {
                let Ok(read_half) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(read_half);
                let mut out = stream;
                let _ = out.set_nodelay(true);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let n = {
                        let mut l = log.lock().expect("log");
                        l.push(request.clone());
                        l.len()
                    };
                    let (status, reply, delay) = script(&request, n);
                    std::thread::sleep(std::time::Duration::from_millis(delay));
                    // One write: a head and a body in two small writes meet
                    // Nagle's algorithm and the client's delayed ACK (~40 ms).
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if out.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A chat completion whose message is `content`, with token log-probs
/// (−0.25 and −0.5) and a usage of 10 tokens.
pub fn completion(content: &str) -> String {
    json!({
        "choices": [{ "message": { "role": "assistant", "content": content },
                      "logprobs": { "content": [{ "logprob": -0.25 }, { "logprob": -0.5 }] } }],
        "usage": { "total_tokens": 10 },
    })
    .to_string()
}
