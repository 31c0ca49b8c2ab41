//! `rollcall dev`: moto on 127.0.0.1, the template's resources provisioned on it, tenant `demo`
//! with an admin, users-api served over HTTP, send-invitations fed from the table's stream
//! (and swept every minute), and bulk-import fed from the import queue that the bucket's upload
//! notifications fill, as on AWS, until Ctrl-C (or `--stop-after`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulk_import::{ImportConfig, Importer};
use rollcall::clock::SystemClock;
use rollcall::domain::{DisplayName, Email, LoginId, Role, Tenant, TenantId, TimeZone, User};
use rollcall::store::{Store, schema};
use secrecy::SecretString;
use send_invitations::{Sender, SenderConfig, SweepRequest};
use users_api::auth::{TokenVerifier, issue_hs256};
use users_api::imports::ImportQueue;
use users_api::{AppState, Limits, app};

use crate::bootstrap::{self, TenantSpec};
use crate::local::{self, DEV_SENDER_ADDRESS, LOCAL_REGION, Moto};
use crate::queue::{QueuePoller, provision_import_queue};
use crate::streams::StreamPoller;
use crate::{DEV_CURSOR_SECRET, signing_key};

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The API's port on 127.0.0.1.
    pub port: u16,
    /// moto's port on 127.0.0.1 (0: any free port).
    pub moto_port: u16,
    /// The Python that has moto.
    pub python: PathBuf,
    /// The table to create.
    pub table: String,
    /// The bucket to create.
    pub bucket: String,
    /// Stop by itself after this long.
    pub stop_after: Option<Duration>,
}

/// How long the printed dev admin token is valid.
const DEV_TOKEN_TTL_SECONDS: u64 = 12 * 3600;

/// How often the local stack reads the table stream.
const STREAM_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How often the local stack runs the invitation sweep (every 5 minutes on AWS).
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Feeds send-invitations from the table's stream and sweeps periodically, until the process
/// ends. A failed poll is logged and tried again, as the event source mapping would.
pub async fn run_sender(mut poller: StreamPoller, sender: Sender) {
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        match poller.poll(&sender).await {
            Ok(r) if r.delivered > 0 => {
                tracing::info!(
                    records = r.delivered,
                    invocations = r.invocations,
                    "stream delivered to send-invitations"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the table stream failed; retrying"),
        }
        if last_sweep.elapsed() >= SWEEP_INTERVAL {
            last_sweep = tokio::time::Instant::now();
            if let Err(e) = sender.sweep(&SweepRequest::default()).await {
                tracing::warn!(error = %e, "invitation sweep failed");
            }
        }
        tokio::time::sleep(STREAM_POLL_INTERVAL).await;
    }
}

/// How long a message bulk-import failed waits before it comes back (the queue's visibility
/// timeout on AWS).
const IMPORT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Feeds bulk-import from the import queue, one message at a time, until the process ends.
pub async fn run_importer(poller: QueuePoller, importer: Importer) {
    loop {
        match poller.poll(&importer, Duration::from_secs(1)).await {
            Ok(r) if r.delivered > 0 => {
                tracing::info!(failed = r.failed, "import queue delivered to bulk-import");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading the import queue failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The local stack, running: moto with the template's resources, the API served on 127.0.0.1,
/// and send-invitations and bulk-import fed as their event sources would feed them. Dropping it
/// stops everything.
pub struct Stack {
    /// The API's base URL.
    pub api: String,
    /// The AWS configuration pointing at moto.
    pub sdk: aws_config::SdkConfig,
    /// The table.
    pub store: Store,
    /// The bucket.
    pub bucket: rollcall::files::Bucket,
    /// The token-signing key the API trusts.
    pub secret: SecretString,
    /// Seals the sign-in function's signing keys (the local KMS key).
    pub sealer: auth::keyring::Sealer,
    moto: Moto,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Stack {
    /// Starts moto, provisions the table, bucket, sender identity and import queue, and serves
    /// the API on 127.0.0.1:`port` (0 picks a free one).
    pub async fn start(opts: &DevOptions) -> anyhow::Result<Stack> {
        let python = opts.python.clone();
        let moto_port = opts.moto_port;
        let moto = tokio::task::spawn_blocking(move || Moto::start(&python, moto_port))
            .await
            .context("starting moto")??;
        let sdk = local::sdk_config(&moto.endpoint()).await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        schema::create_table(&client, &opts.table)
            .await
            .context("creating the table")?;
        let store = Store::new(client, opts.table.clone(), Arc::new(SystemClock));
        let bucket = local::provision_bucket(&sdk, &opts.bucket)
            .await
            .context("creating the bucket")?;

        let secret = signing_key();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .with_context(|| format!("listening on 127.0.0.1:{} (try --port)", opts.port))?;
        let api = format!("http://{}", listener.local_addr()?);

        // Invitation and reset links point at the hosted pages, on the same origin locally.
        local::provision_sender_identity(&sdk, DEV_SENDER_ADDRESS)
            .await
            .context("registering the sender identity")?;
        let sender = Sender::new(
            store.clone(),
            aws_sdk_sesv2::Client::new(&sdk),
            SenderConfig::new(
                DEV_SENDER_ADDRESS,
                &api,
                send_invitations::config::DEFAULT_EXPIRY_HOURS,
            )?,
        );
        let poller = StreamPoller::new(&sdk, &opts.table).await?;
        let sending = tokio::spawn(run_sender(poller, sender));

        // Uploads to imports/ reach bulk-import through the queue, as on AWS.
        let queue_url = provision_import_queue(&sdk, &bucket, &format!("{}-imports", opts.table))
            .await
            .context("creating the import queue")?;
        let importer = Importer::new(store.clone(), bucket.clone(), ImportConfig::default());
        let importing = tokio::spawn(run_importer(
            QueuePoller::new(&sdk, &queue_url, IMPORT_RETRY_AFTER),
            importer,
        ));

        // Sign-in: the KMS key that seals the signing keys, the first key, the auth function on
        // the same origin.
        let kms_key = local::provision_signing_kms_key(&sdk, Some(local::DEV_SIGNING_KEY_ALIAS))
            .await
            .context("creating the signing keys' KMS key")?;
        let sealer = auth::keyring::Sealer::new(aws_sdk_kms::Client::new(&sdk), kms_key);
        auth::keyring::ensure_key(&store, &sealer)
            .await
            .context("making the first signing key")?;
        let auth_state = auth::AuthState::new(
            store.clone(),
            auth::keyring::Keyring::new(store.clone(), sealer.clone()),
            &api,
        );

        let state = AppState::new(
            store.clone(),
            bucket.clone(),
            TokenVerifier::hs256(&secret),
            SecretString::from(DEV_CURSOR_SECRET),
            Limits::default(),
        )
        .with_import_queue(ImportQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url))
        .accepting_issued_tokens(&api);
        let router = local::one_origin(app(state), auth::app(auth_state));
        let serving = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "serving the API failed");
            }
        });
        Ok(Stack {
            api,
            sdk,
            store,
            bucket,
            secret,
            sealer,
            moto,
            tasks: vec![sending, importing, serving],
        })
    }

    /// moto's URL.
    pub fn moto_endpoint(&self) -> String {
        self.moto.endpoint()
    }

    /// Creates a tenant and its first (active) admin, and signs an admin token for
    /// `token_ttl_seconds`.
    pub async fn add_tenant(
        &self,
        spec: &TenantSpec,
        admin_login: &str,
        admin_email: &str,
        admin_name: &str,
        token_ttl_seconds: u64,
    ) -> anyhow::Result<(Tenant, User, String)> {
        let tenant = bootstrap::create_tenant(&self.store, spec).await?;
        let admin = bootstrap::create_admin(
            &self.store,
            &tenant.id,
            LoginId::parse(admin_login)?,
            Email::parse(admin_email)?,
            DisplayName::parse(admin_name)?,
        )
        .await?;
        let token = issue_hs256(
            &self.secret,
            &tenant.id,
            &admin.id,
            Role::Admin,
            token_ttl_seconds,
        )?;
        Ok((tenant, admin, token))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the local stack, with tenant `demo` and its admin, until Ctrl-C or `stop_after`.
pub async fn run(opts: DevOptions) -> anyhow::Result<()> {
    let stack = Stack::start(&opts).await?;
    let (_, _, token) = stack
        .add_tenant(
            &TenantSpec {
                id: TenantId::parse("demo")?,
                name: DisplayName::parse("Demo 株式会社")?,
                seat_limit: None,
                time_zone: TimeZone::TOKYO,
            },
            "admin",
            "admin@demo.example",
            "Demo Admin",
            DEV_TOKEN_TTL_SECONDS,
        )
        .await?;
    let demo = TenantId::parse("demo")?;
    let password = bootstrap::dev_password()?;
    bootstrap::set_password(&stack.store, &demo, "admin", &password).await?;
    let client = bootstrap::register_cli_client(&stack.store, &demo).await?;
    print_banner(&stack, &opts, &token, &password, &client)?;
    shutdown(opts.stop_after).await;
    drop(stack);
    tracing::info!("local stack stopped");
    Ok(())
}

async fn shutdown(stop_after: Option<Duration>) {
    let timer = async {
        match stop_after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = timer => {}
    }
}

fn print_banner(
    stack: &Stack,
    opts: &DevOptions,
    token: &str,
    password: &str,
    client: &rollcall::oidc::ClientId,
) -> std::io::Result<()> {
    let (api, moto_url) = (&stack.api, stack.moto_endpoint());
    let alias = local::DEV_SIGNING_KEY_ALIAS;
    let issuer = format!("{api}/t/demo");
    // A ready sign-in URL: S256 of a fixed verifier, printed so the code can be exchanged by hand.
    let verifier = "rollcall-dev-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let challenge = rollcall::oidc::pkce::s256(verifier);
    let sign_in = format!(
        "{issuer}/authorize?response_type=code&client_id={client}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&scope=openid%20profile%20email&state=dev&nonce=dev&code_challenge={challenge}&code_challenge_method=S256"
    );
    let (table, bucket) = (&opts.table, &opts.bucket);
    let body = r#"{"login_id":"taro","email":"taro@demo.example","name":"山田 太郎","department":"営業部"}"#;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        r#"
rollcall dev is up.

  API     {api}      (OpenAPI document: {api}/openapi.json)
  moto    {moto_url}      (DynamoDB, Streams, S3, SES; table "{table}", bucket "{bucket}")
  tenant  demo, with admin "admin"

Sign-in (rollcall is tenant demo's OpenID Provider):

  issuer        {issuer}      (discovery: {issuer}/.well-known/openid-configuration)
  public client {client}      (redirect URIs http://127.0.0.1:<any port>/callback)
  sign in as    admin / {password}
  open          {sign_in}
                then, with the code from the address bar:
  curl -s -d grant_type=authorization_code -d client_id={client} -d code=<code> \
       -d redirect_uri=http://127.0.0.1:8765/callback -d code_verifier={verifier} {issuer}/token
  other pages   {issuer}/forgot (forgot password), {issuer}/account (change it, signed in);
                invitation and reset mails link to {issuer}/invitations/… and …/reset/…

  cargo run -q -p rollcall-cli -- login --api {api} --tenant demo --client-id {client}
                # the CLI signs in like an app; `rollcall import` then needs no TOKEN

Dev admin token (valid 12 hours; a dev-only shortcut, HS256):

  export TOKEN={token}

Try:

  curl -s {api}/health
  curl -s -H "Authorization: Bearer $TOKEN" {api}/users
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       -d '{body}' {api}/users
  curl -s -H "Authorization: Bearer $TOKEN" -H 'Accept-Language: ja' '{api}/users?q=山田'
  curl -s -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       -H 'If-Match: "1"' -d '{{"department":"開発部"}}' {api}/users/<id from the POST>

Invitations: creating a user mails them a set-password link (within a second or so).

  export AWS_ENDPOINT_URL={moto_url}
  cargo run -q -p rollcall-cli -- mail --to taro@demo.example    # the mail and its link
  curl -s <link>                                                 # valid? (does not use it)
  curl -s -X POST -H 'Content-Type: application/json' \
       -d '{{"password":"Passw0rd!"}}' <link>/accept                # set the password

Bulk import (every row checked and reported first; one bad row and nothing changes):

  curl -s -H "Authorization: Bearer $TOKEN" '{api}/imports/template.csv?headers=ja' -o users.csv
  curl -sL -H "Authorization: Bearer $TOKEN" {api}/users/export.csv -o users.csv   # edit, re-import
  cargo run -q -p rollcall-cli -- import users.csv --api {api} --validate
  cargo run -q -p rollcall-cli -- import users.csv --api {api}                     # apply

Other rollcall commands against this stack (in another shell):

  export AWS_ENDPOINT_URL={moto_url} AWS_REGION={LOCAL_REGION}
  export TABLE_NAME={table} BUCKET_NAME={bucket}
  export SIGNING_KEY_KMS_KEY_ID={alias}
  export AWS_ACCESS_KEY_ID=rollcall-local AWS_SECRET_ACCESS_KEY=rollcall-local
  cargo run -q -p rollcall-cli -- tenant create acme --name "Acme" --admin-email admin@acme.example
  cargo run -q -p rollcall-cli -- token --tenant demo --sub <user id> --role member
  cargo run -q -p rollcall-cli -- billing run            # month-end snapshots, as scheduled
  cargo run -q -p rollcall-cli -- billing run --month 2026-10 --tenant demo
  cargo run -q -p rollcall-cli -- keys rotate    # a new signing key: published now, signing in 10 minutes
  curl -s -H "Authorization: Bearer $TOKEN" {api}/billing/current

Ctrl-C stops the API and moto.
"#
    )?;
    out.flush()
}
