//! Helpers for rollcall's end-to-end tests and benchmarks: one moto server per test process,
//! a fresh table per test, a tenant with an admin, and the API served on a free loopback port,
//! all through the same code `rollcall dev` runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use auth::AuthState;
use auth::keyring::{Keyring, Sealer};
use aws_config::SdkConfig;
use billing_snapshot::{SnapshotConfig, Snapshotter};
use bulk_import::{ImportConfig, Importer};
use reqwest::{Method, RequestBuilder, Response};
use rollcall::clock::{Clock, SystemClock};
use rollcall::domain::{DisplayName, Email, LoginId, Role, TenantId, TimeZone, User, UserId};
use rollcall::files::Bucket;
use rollcall::store::{RequestCounter, Store, schema};
use rollcall_cli::bootstrap::{self, TenantSpec};
use rollcall_cli::local::{self, Moto};
use rollcall_cli::mail::{SentMail, sent_mail};
use rollcall_cli::queue::{QueuePoller, provision_import_queue};
use rollcall_cli::streams::StreamPoller;
use secrecy::SecretString;
use send_invitations::{Sender, SenderConfig};
use users_api::auth::{TokenVerifier, issue_hs256};
use users_api::imports::ImportQueue;
use users_api::{AppState, Limits, app};

pub mod runtime_api;
pub mod webdriver;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The moto server of this test process, started on first use on a free port. It stops when
/// the process ends.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let python = local::python(&workspace_root());
        Moto::start(&python, 0)
            .unwrap_or_else(|e| panic!("{e:#}\n(run `make test`, which installs moto into .venv)"))
    })
}

/// SDK configuration pointing at this process's moto.
pub async fn sdk() -> SdkConfig {
    local::sdk_config(&moto().endpoint()).await
}

/// The From address of test mail; registered as an SES identity once per moto.
pub const TEST_SENDER: &str = "no-reply@rollcall-tests.example";

static SENDER_IDENTITY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// A unique address for a test's mail (moto's outbox is shared by every test of the process).
pub fn unique_address(tag: &str) -> String {
    format!("{tag}-{}@mail.example", ulid_like())
}

/// Every mail moto accepted for `address`, oldest first.
pub async fn mail_to(address: &str) -> Vec<SentMail> {
    sent_mail(&moto().endpoint())
        .await
        .expect("reading moto's outbox")
        .into_iter()
        .filter(|m| m.is_to(address))
        .collect()
}

/// Makes moto fail the next `count` SES v2 SendEmail requests whose body mentions `address`
/// with `status` and AWS error `code`.
pub async fn inject_ses_fault(address: &str, status: u16, code: &str, count: u32) {
    inject_fault("/v2/email/outbound-emails", address, status, code, count).await;
}

/// Makes moto fail the next `count` requests to `path` whose body contains `body_contains`
/// with `status` and AWS error `code`.
pub async fn inject_fault(path: &str, body_contains: &str, status: u16, code: &str, count: u32) {
    add_fault_rule(serde_json::json!({
        "path": path,
        "body_contains": body_contains,
        "status": status,
        "code": code,
        "message": "injected by the test",
        "count": count,
    }))
    .await;
}

/// Makes moto fail the next `count` DynamoDB `operation` requests (e.g. `TransactWriteItems`)
/// whose body contains `body_contains` with HTTP 400 and AWS error `code`, as DynamoDB throttles.
pub async fn inject_dynamodb_fault(operation: &str, body_contains: &str, code: &str, count: u32) {
    add_fault_rule(serde_json::json!({
        "path": "/",
        "target": format!("DynamoDB_20120810.{operation}"),
        "body_contains": body_contains,
        "status": 400,
        "code": code,
        "message": "injected by the test",
        "count": count,
    }))
    .await;
}

async fn add_fault_rule(rule: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/rollcall/faults", moto().endpoint()))
        .json(&rule)
        .send()
        .await
        .expect("injecting a fault");
    assert_eq!(resp.status(), 204, "moto refused the fault rule");
}

/// The signing key of test tokens.
pub const TEST_JWT_SECRET: &str = "e2e-tests-signing-key-at-least-32-characters";

/// A unique name for a test's table.
pub fn unique_table() -> String {
    format!("t-{}", ulid_like())
}

fn ulid_like() -> String {
    UserId::generate().to_string().to_lowercase()
}

/// One tenant with its first admin.
#[derive(Debug, Clone)]
pub struct TestTenant {
    /// The tenant.
    pub id: TenantId,
    /// Its active admin.
    pub admin: User,
    /// A token for the admin.
    pub admin_token: String,
}

/// A running API over its own table, with tenant `acme` and its admin.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The store the API uses (same table, same counter).
    pub store: Store,
    /// Counts every DynamoDB request the API (and the test's store) sends.
    pub counter: RequestCounter,
    /// Tenant `acme`.
    pub acme: TestTenant,
    /// This app's bucket.
    pub bucket: Bucket,
    /// The stand-in for the import queue's event source mapping (failed messages come back
    /// at once).
    pub import_queue: QueuePoller,
    /// The sign-in function's state (same store and clock).
    pub auth: AuthState,
    /// Seals signing keys under this app's KMS key.
    pub sealer: Sealer,
}

/// Starts an app with the system clock.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_clock(Arc::new(SystemClock)).await
}

/// Starts an app whose store uses `clock`.
pub async fn spawn_app_with_clock(clock: Arc<dyn Clock>) -> TestApp {
    let sdk = sdk().await;
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let table = unique_table();
    schema::create_table(&client, &table)
        .await
        .expect("creating the test table");
    let bucket = local::provision_bucket(&sdk, &table)
        .await
        .expect("creating the test bucket");
    let queue_url = provision_import_queue(&sdk, &bucket, &table)
        .await
        .expect("creating the test import queue");
    let import_queue = QueuePoller::new(&sdk, &queue_url, std::time::Duration::ZERO);
    let store = Store::new(client, table, clock);
    let state = AppState::new(
        store.clone(),
        bucket.clone(),
        TokenVerifier::hs256(&SecretString::from(TEST_JWT_SECRET)),
        SecretString::from("e2e-tests-cursor-key-at-least-32-characters"),
        Limits::default(),
    )
    .with_import_queue(ImportQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let kms_key_id = local::provision_signing_kms_key(&sdk, None)
        .await
        .expect("creating the signing keys' KMS key");
    // KMS requests are counted with DynamoDB's (`Encrypt`, `Decrypt`).
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let sealer = Sealer::new(kms, kms_key_id);
    auth::keyring::ensure_key(&store, &sealer)
        .await
        .expect("making the first signing key");
    let auth = AuthState::new(
        store.clone(),
        Keyring::new(store.clone(), sealer.clone()),
        &base,
    );
    let state = state.accepting_issued_tokens(&base);
    let router = local::one_origin(app(state), auth::app(auth.clone()));
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("serving the API");
    });
    let acme = add_tenant(&store, "acme").await;
    TestApp {
        base,
        http: reqwest::Client::new(),
        store,
        counter,
        acme,
        bucket,
        import_queue,
        auth,
        sealer,
    }
}

/// Creates a tenant with an active admin `admin@{id}.example` and a token for them.
pub async fn add_tenant(store: &Store, id: &str) -> TestTenant {
    add_tenant_in(store, id, TimeZone::TOKYO).await
}

/// Like [`add_tenant`], billed in `time_zone`.
pub async fn add_tenant_in(store: &Store, id: &str, time_zone: TimeZone) -> TestTenant {
    let id = TenantId::parse(id).expect("tenant id");
    bootstrap::create_tenant(
        store,
        &TenantSpec {
            id: id.clone(),
            name: DisplayName::parse(&format!("{id} Inc.")).expect("name"),
            seat_limit: None,
            time_zone,
        },
    )
    .await
    .expect("creating a tenant");
    let admin = bootstrap::create_admin(
        store,
        &id,
        LoginId::parse("admin").expect("login"),
        Email::parse(&format!("admin@{id}.example")).expect("email"),
        DisplayName::parse("Admin").expect("name"),
    )
    .await
    .expect("creating the admin");
    let admin_token = token(&id, &admin.id, Role::Admin);
    TestTenant {
        id,
        admin,
        admin_token,
    }
}

/// Signs a test token.
pub fn token(tenant: &TenantId, user: &UserId, role: Role) -> String {
    issue_hs256(
        &SecretString::from(TEST_JWT_SECRET),
        tenant,
        user,
        role,
        3600,
    )
    .expect("signing")
}

impl TestApp {
    /// send-invitations over this app's store (same table, same clock), mailing from
    /// [`TEST_SENDER`], links pointing at this app.
    pub async fn sender(&self) -> Sender {
        self.sender_from(TEST_SENDER).await
    }

    /// send-invitations mailing from `from` (which may be an unverified address).
    pub async fn sender_from(&self, from: &str) -> Sender {
        let sdk = sdk().await;
        SENDER_IDENTITY
            .get_or_init(|| async {
                local::provision_sender_identity(&sdk, TEST_SENDER)
                    .await
                    .expect("registering the test sender identity");
            })
            .await;
        Sender::new(
            self.store.clone(),
            aws_sdk_sesv2::Client::new(&sdk),
            SenderConfig::new(from, &self.base, 72).expect("sender settings"),
        )
    }

    /// The stand-in for the stream event source mapping, from the start of this app's stream.
    pub async fn poller(&self) -> StreamPoller {
        StreamPoller::new(&sdk().await, self.store.table())
            .await
            .expect("opening the table stream")
    }

    /// billing-snapshot over this app's store and bucket.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter::new(
            self.store.clone(),
            self.bucket.clone(),
            SnapshotConfig::default(),
        )
    }

    /// bulk-import over this app's store and bucket, with the default limits.
    pub fn importer(&self) -> Importer {
        Importer::new(
            self.store.clone(),
            self.bucket.clone(),
            ImportConfig::default(),
        )
    }

    /// Reads an object of this app's bucket as text.
    pub async fn object_text(&self, key: &str) -> String {
        let bytes = self
            .bucket
            .get(key)
            .await
            .unwrap_or_else(|e| panic!("reading {key}: {e}"));
        String::from_utf8(bytes).expect("UTF-8")
    }

    /// Creates another tenant with its admin.
    pub async fn add_tenant(&self, id: &str) -> TestTenant {
        add_tenant(&self.store, id).await
    }

    /// A request with a bearer token.
    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token)
    }

    /// A request as acme's admin.
    pub fn as_admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, &self.acme.admin_token)
    }

    /// Creates a user in acme as its admin; panics unless 201. Returns the body.
    pub async fn create_user(&self, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .as_admin(Method::POST, "/users")
            .json(&body)
            .send()
            .await
            .expect("POST /users");
        let status = resp.status();
        let json: serde_json::Value = resp.json().await.expect("a JSON body");
        assert_eq!(status, 201, "creating {body}: {json}");
        json
    }
}

/// A response's status and JSON body (`Null` when there is none).
pub async fn status_and_json(resp: Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("reading the body");
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

/// Asserts a response is an RFC 9457 problem with this status and code; returns the document.
pub async fn assert_problem(resp: Response, status: u16, code: &str) -> serde_json::Value {
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (got, body) = status_and_json(resp).await;
    assert_eq!(got, status, "status of {body}");
    assert_eq!(
        content_type, "application/problem+json",
        "content type of {body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// Replaces the part of BENCHMARKS.md between `<!-- {key}:start -->` and `<!-- {key}:end -->`
/// with `body`, or appends it under `heading` the first time.
pub fn write_benchmark_section(key: &str, heading: &str, body: &str) {
    let (start, end) = (
        format!("<!-- {key}:start -->"),
        format!("<!-- {key}:end -->"),
    );
    let path = workspace_root().join("BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (current.find(&start), current.find(&end)) {
        (Some(s), Some(e)) if s < e => {
            format!("{}{}{}", &current[..s], section, &current[e + end.len()..])
        }
        _ => format!("{}\n\n## {heading}\n\n{section}\n", current.trim_end()),
    };
    std::fs::write(&path, updated).expect("writing BENCHMARKS.md");
}

/// The machine a benchmark ran on: cores and CPU model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores ({model})")
}

/// Runs every future on its own task, all at once, and collects their outputs in order.
pub async fn join_spawned<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task panicked"));
    }
    out
}

/// An SQS event of one message, as Lambda's event source mapping delivers it (the event type
/// is `#[non_exhaustive]`: it is read from its JSON shape, as the runtime reads it).
pub fn sqs_event(message_id: &str, body: &str) -> bulk_import::SqsEvent {
    serde_json::from_value(serde_json::json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": "",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }]}))
    .expect("the SQS event shape")
}

/// A PKCE verifier and its S256 challenge (RFC 7636), as a client makes them.
pub fn pkce() -> (String, String) {
    let verifier = rollcall::domain::SecretToken::mint()
        .expect("randomness")
        .expose()
        .to_owned();
    let challenge = rollcall::oidc::pkce::s256(&verifier);
    (verifier, challenge)
}

pub use rollcall_cli::forms::{hidden_fields, hidden_value};

pub use rollcall_cli::forms::{Page, set_cookies};

/// [`rollcall_cli::forms::Visitor`] for tests: a failed request fails the test.
pub struct Visitor(rollcall_cli::forms::Visitor);

impl std::ops::Deref for Visitor {
    type Target = rollcall_cli::forms::Visitor;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Default for Visitor {
    fn default() -> Self {
        Visitor::new()
    }
}

impl Visitor {
    /// A visitor with no cookies.
    pub fn new() -> Visitor {
        Visitor(rollcall_cli::forms::Visitor::new().expect("an HTTP client"))
    }

    /// Opens `url`.
    pub async fn get(&mut self, url: &str) -> Page {
        self.0.get(url).await.expect("a response")
    }

    /// Posts `fields` with the CSRF token of `page` (its hidden `csrf`).
    pub async fn post(&mut self, url: &str, page: &Page, fields: &[(&str, &str)]) -> Page {
        self.0.post(url, page, fields).await.expect("a response")
    }
}

/// Requests by operation as BENCHMARKS.md writes them: `2 × GetItem, 1 × Query` (`none` when
/// there were none).
pub fn describe_requests(counts: &std::collections::BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(op, n)| format!("{n} × {op}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl TestApp {
    /// Runs `f` and returns what it gave with the AWS requests it made.
    pub async fn counted<T>(
        &self,
        f: impl std::future::Future<Output = T>,
    ) -> (T, std::collections::BTreeMap<String, u64>) {
        self.counter.reset();
        let out = f.await;
        (out, self.counter.snapshot())
    }
}
