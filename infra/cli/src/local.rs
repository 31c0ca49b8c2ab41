//! The local stack: a moto server on 127.0.0.1 standing in for DynamoDB, and the resources of
//! `infra/template.yaml` provisioned on it. `rollcall dev` and the end-to-end tests use exactly
//! this code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_s3::error::DisplayErrorContext;
use rollcall::files::Bucket;

/// The moto server script, run with the Python that has moto installed.
const MOTO_SERVER_PY: &str = include_str!("moto_server.py");

/// The region the local stack pretends to be in.
pub const LOCAL_REGION: &str = "us-east-1";

/// A running moto server. Dropping it stops the server; so does the end of this process, however
/// it ends, because the server exits when its standard input closes.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
}

impl Moto {
    /// Starts moto on `port` (0 picks a free one) with `python`, and waits until it listens.
    pub fn start(python: &Path, port: u16) -> anyhow::Result<Moto> {
        // moto's own log (one line a request, tracebacks) goes to $ROLLCALL_MOTO_LOG if set.
        let stderr = match std::env::var_os("ROLLCALL_MOTO_LOG") {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.to_string_lossy()))?,
            ),
            None => Stdio::null(),
        };
        let mut child = Command::new(python)
            .arg("-c")
            .arg(MOTO_SERVER_PY)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting moto with {}", python.display()))?;
        let stdin = child.stdin.take().context("moto's standard input")?;
        let stdout = child.stdout.take().context("moto's standard output")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading moto's port")?;
        let port = match line.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                let status = child.wait().ok();
                bail!(
                    "moto did not start (exit status {status:?}): is port {port} taken (0 picks a \
                     free one), or is moto[server] missing for {}? `make dev` and `make test` \
                     install it into .venv; ROLLCALL_MOTO_LOG=<file> keeps moto's own log",
                    python.display()
                );
            }
        };
        Ok(Moto {
            child,
            _stdin: stdin,
            port,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its endpoint URL, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Ending a server that already ended is not an error worth reporting on the way out.
        if self.child.kill().is_ok() {
            let _reaped = self.child.wait();
        }
    }
}

/// The Python to run moto with: `$ROLLCALL_PYTHON`, else `.venv/bin/python` under `root` if it
/// exists, else `python3`.
pub fn python(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("ROLLCALL_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root.join(".venv").join("bin").join("python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// SDK configuration for talking to a local moto endpoint: its URL, the local region and
/// throw-away credentials (moto accepts any).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(LOCAL_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            "rollcall-local",
            "rollcall-local",
            None,
            None,
            "rollcall-local",
        ))
        .load()
        .await
}

/// The From address of mail sent by the local stack.
pub const DEV_SENDER_ADDRESS: &str = "no-reply@rollcall.example";

/// Registers `address` as an SES identity, as the deployment's verified sender identity; SES
/// (and moto) refuse to send from an address that is not one.
pub async fn provision_sender_identity(sdk: &SdkConfig, address: &str) -> anyhow::Result<()> {
    aws_sdk_sesv2::Client::new(sdk)
        .create_email_identity()
        .email_identity(address)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_sesv2::error::DisplayErrorContext(e).to_string()))?;
    Ok(())
}

/// Creates the bucket as the template declares it: in the stack's region, every kind of public
/// access blocked, objects encrypted at rest (SSE-S3).
pub async fn provision_bucket(sdk: &SdkConfig, name: &str) -> anyhow::Result<Bucket> {
    use aws_sdk_s3::types::{
        BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    let bucket = Bucket::from_sdk(sdk, name);
    let s3 = bucket.client();
    let failed = |what: &str, e: String| anyhow::anyhow!("{what} of bucket {name}: {e}");
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let mut create = s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    create
        .send()
        .await
        .map_err(|e| failed("creation", DisplayErrorContext(e).to_string()))?;
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| failed("public access block", DisplayErrorContext(e).to_string()))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| failed("encryption", e.to_string()))?,
        )
        .build();
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| failed("encryption", e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| failed("encryption", DisplayErrorContext(e).to_string()))?;
    Ok(bucket)
}

/// The alias of the local stack's signing-keys KMS key (`SIGNING_KEY_KMS_KEY_ID` in
/// `events/local.env`).
pub const DEV_SIGNING_KEY_ALIAS: &str = "alias/rollcall-signing-keys";

/// Creates the KMS key that seals the token signing keys, as the template's `SigningKeysKey`
/// (symmetric, encrypt/decrypt), named by `alias` if given; returns its id.
pub async fn provision_signing_kms_key(
    sdk: &SdkConfig,
    alias: Option<&str>,
) -> anyhow::Result<String> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let out = kms
        .create_key()
        .description("rollcall: seals the token signing keys")
        .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
        .key_spec(aws_sdk_kms::types::KeySpec::SymmetricDefault)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_kms::error::DisplayErrorContext(e).to_string()))?;
    let key_id = out
        .key_metadata
        .map(|m| m.key_id)
        .context("KMS returned no key id")?;
    if let Some(alias) = alias {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(aws_sdk_kms::error::DisplayErrorContext(e).to_string()))?;
    }
    Ok(key_id)
}

/// Both functions behind one origin, as API Gateway puts them: `/t/…` (sign-in) to auth, every
/// other path to users-api.
pub fn one_origin(api: axum::Router, auth: axum::Router) -> axum::Router {
    use tower::ServiceExt;
    // Dispatched before either router routes, as API Gateway does, so neither sees the
    // other's path parameters.
    let dispatch = tower::service_fn(move |req: axum::extract::Request| {
        let target = if req.uri().path().starts_with("/t/") {
            auth.clone()
        } else {
            api.clone()
        };
        target.oneshot(req)
    });
    axum::Router::new().fallback_service(dispatch)
}
