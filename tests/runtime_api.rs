//! A local Lambda Runtime API (version 2018-06-01) for benchmarks that run a function's real
//! release binary, as Lambda does: the binary polls `invocation/next`, gets the events queued
//! here one at a time, and posts its answer back. The server notes when the first poll
//! arrives (the end of the function's initialisation) and stops when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use tokio::sync::{mpsc, watch};

/// What the function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler returned this response to the event with this request id.
    Response(String, serde_json::Value),
    /// The handler failed on the event with this request id.
    Error(String, serde_json::Value),
    /// The function failed before it could take an event.
    InitError(serde_json::Value),
}

struct Shared {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, serde_json::Value)>>,
    first_poll: watch::Sender<Option<Instant>>,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

/// A Runtime API on 127.0.0.1 and an unused port.
pub struct RuntimeApi {
    address: SocketAddr,
    events: mpsc::UnboundedSender<(String, serde_json::Value)>,
    first_poll: watch::Receiver<Option<Instant>>,
    outcomes: tokio::sync::Mutex<mpsc::UnboundedReceiver<Outcome>>,
    next_id: std::sync::atomic::AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts the server on the current Tokio runtime.
    pub async fn start() -> RuntimeApi {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            first_poll: first_tx,
            outcomes: outcomes_tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port for the Runtime API");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the Runtime API");
        });
        RuntimeApi {
            address,
            events: events_tx,
            first_poll: first_rx,
            outcomes: tokio::sync::Mutex::new(outcomes_rx),
            next_id: std::sync::atomic::AtomicU64::new(1),
            server,
        }
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` gives it.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn push(&self, event: serde_json::Value) -> String {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("bench-{n:08}");
        self.events
            .send((id.clone(), event))
            .expect("the server is running");
        id
    }

    /// When the function first asked for an event, waiting at most `timeout`.
    pub async fn first_poll(&self, timeout: Duration) -> Option<Instant> {
        let mut rx = self.first_poll.clone();
        tokio::time::timeout(timeout, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|at| *at))
    }

    /// The next answer of the function, waiting at most `timeout`.
    pub async fn outcome(&self, timeout: Duration) -> Option<Outcome> {
        let mut outcomes = self.outcomes.lock().await;
        tokio::time::timeout(timeout, outcomes.recv())
            .await
            .ok()
            .flatten()
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> (StatusCode, HeaderMap, Bytes) {
    shared.first_poll.send_if_modified(|at| {
        if at.is_some() {
            return false;
        }
        *at = Some(Instant::now());
        true
    });
    // Long poll, as Lambda does: the function waits here until an event is queued.
    let event = shared.events.lock().await.recv().await;
    let Some((id, event)) = event else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
    };
    set("lambda-runtime-aws-request-id", &id);
    set("lambda-runtime-deadline-ms", &deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench",
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000",
    );
    (StatusCode::OK, headers, Bytes::from(event.to_string()))
}

fn json_of(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let _ = shared.outcomes.send(Outcome::Response(id, json_of(&body)));
    StatusCode::ACCEPTED
}

async fn error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let _ = shared.outcomes.send(Outcome::Error(id, json_of(&body)));
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.outcomes.send(Outcome::InitError(json_of(&body)));
    StatusCode::ACCEPTED
}

/// Starts a function's binary against `api` with the variables Lambda sets, the given ones and
/// AWS settings for a local endpoint (`endpoint`; nothing listens there unless the caller
/// started it). Its output is discarded. The process is killed when the returned guard drops.
pub fn spawn_function(
    binary: &Path,
    api: &RuntimeApi,
    endpoint: &str,
    env: &HashMap<&str, String>,
) -> FunctionProcess {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    FunctionProcess { child }
}

/// A running function binary; killed on drop.
pub struct FunctionProcess {
    child: Child,
}

impl FunctionProcess {
    /// `VmHWM` (the peak resident set) of the process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_of(&format!("/proc/{}/status", self.child.id())).expect("the process's VmHWM")
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` in a `/proc/…/status` file, in KiB; `None` where there is no such file.
pub fn peak_rss_of(status_path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Builds the four functions' release binaries (a no-op when they are current) and returns
/// the directory they are in.
pub fn release_binaries() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = crate::workspace_root();
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet"])
        .args(FUNCTIONS.iter().flat_map(|f| ["-p", f]))
        .status()
        .expect("running cargo build --release");
    assert!(status.success(), "cargo build --release failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), Into::into)
        .join("release")
}

/// The five functions, by binary name.
pub const FUNCTIONS: [&str; 5] = [
    "users-api",
    "auth",
    "send-invitations",
    "bulk-import",
    "billing-snapshot",
];
