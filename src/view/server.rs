//! The HTTP side of `leafe view`: one read-only handler for the page's
//! assets (compiled in) and the JSON endpoints of [`super::api`].
//!
//! Every response carries a Content-Security-Policy that allows only the
//! server's own scripts and styles (no inline script, no `eval`), so text
//! from the store can never run even if a page bug put it into markup.
//! Only GET and HEAD are answered. On an address other than loopback a
//! token is required on every request: in the query string (`?token=`,
//! which also sets a cookie for the page's own requests), the cookie, or
//! an `Authorization: Bearer` header.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::api::{Api, ApiError, Params};
use super::assets;

/// The policy every answer carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const COOKIE: &str = "leafe_view_token";

/// What `leafe view` serves and where.
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// The token requests must carry; None on loopback without --token.
    pub token: Option<String>,
    /// Open the page in the default browser.
    pub open: bool,
}

struct ServerState {
    api: Api,
    token: Option<String>,
}

/// A fresh random token (128 bits, hex).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves until interrupted. Prints the page's URL (with the token, if
/// any) on stdout as soon as the port is bound.
pub async fn serve(api: Api, opts: ServeOptions) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .with_context(|| format!("cannot listen on {}", opts.addr))?;
    let local = listener.local_addr()?;
    let url = match &opts.token {
        Some(t) => format!("http://{local}/?token={t}"),
        None => format!("http://{local}/"),
    };
    println!("leafe view: {} at {url}", api.store().url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if opts.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        if let Err(e) = std::process::Command::new(opener).arg(&url).spawn() {
            eprintln!("leafe view: cannot open a browser ({opener}: {e}); open {url}");
        }
    }
    let state = Arc::new(ServerState {
        api,
        token: opts.token,
    });
    let app = Router::new().fallback(handle).with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    Ok(())
}

fn with_headers(mut r: Response, content_type: &str) -> Response {
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CONTENT_SECURITY_POLICY, CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CACHE_CONTROL, "no-store");
    r
}

fn respond(status: u16, content_type: &str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_headers(r, content_type)
}

fn json_error(e: &ApiError) -> Response {
    let body = serde_json::json!({ "error": e.message, "status": e.status }).to_string();
    respond(e.status, "application/json; charset=utf-8", body)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
}

async fn handle(State(st): State<Arc<ServerState>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = json_error(&ApiError {
            status: 405,
            message: format!(
                "{} refused: leafe view is read-only (GET only)",
                req.method()
            ),
        });
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    let params: Params = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let mut set_cookie = None;
    if let Some(token) = &st.token {
        let from_query = params.get("token").cloned();
        let given = from_query
            .clone()
            .or_else(|| cookie_token(req.headers()))
            .or_else(|| bearer_token(req.headers()));
        if !given.is_some_and(|g| constant_time_eq(&g, token)) {
            return json_error(&ApiError {
                status: 401,
                message:
                    "this server needs its token: open the URL `leafe view` printed (…/?token=…)"
                        .into(),
            });
        }
        if from_query.is_some() {
            set_cookie = Some(format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
            ));
        }
    }
    let mut response = route(&st, &path, &params).await;
    if let Some(c) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn route(st: &ServerState, path: &str, params: &Params) -> Response {
    if path == "/api/plot" {
        let (Some(run), Some(file)) = (params.get("run"), params.get("file")) else {
            return json_error(&ApiError::bad("plot needs `run` and `file`"));
        };
        return match st.api.report_plot(run, file).await {
            Ok(bytes) => {
                let mut r = respond(200, "image/svg+xml", bytes);
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                    ),
                );
                r
            }
            Err(e) => json_error(&e),
        };
    }
    if let Some(endpoint) = path.strip_prefix("/api/") {
        // A query that panics inside the engine answers 500; the server goes on.
        let api = st.api.clone();
        let endpoint_owned = endpoint.to_string();
        let p = params.clone();
        let answer = tokio::spawn(async move { api.get(&endpoint_owned, &p).await }).await;
        return match answer {
            Ok(Ok(v)) => respond(200, "application/json; charset=utf-8", v.to_string()),
            Ok(Err(e)) => json_error(&e),
            Err(e) => json_error(&ApiError {
                status: 500,
                message: format!("the {endpoint} request failed inside the server: {e}"),
            }),
        };
    }
    let name = if path == "/" {
        "index.html"
    } else {
        &path[1..]
    };
    match assets::get(name) {
        Some((bytes, content_type)) => {
            let mut r = respond(200, content_type, bytes.into_owned());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => respond(
            404,
            "text/plain; charset=utf-8",
            format!("no page `{path}`: start at /"),
        ),
    }
}
