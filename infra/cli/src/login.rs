//! `rollcall login` and `rollcall logout`: the CLI signs in like a native app (RFC 8252): the
//! authorization code flow with PKCE and a loopback redirect on a port of its own, the tokens
//! kept in the user's config directory (`$XDG_CONFIG_HOME/rollcall/tokens.json`, else
//! `~/.config/rollcall/tokens.json`) readable by the user alone (mode 0600), refreshed when
//! they are about to expire, revoked (RFC 7009) at logout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use rollcall::domain::SecretToken;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The scopes the CLI asks for: an access token for rollcall's API, refreshable.
pub const SCOPE: &str = "openid offline_access rollcall";

/// One signed-in API, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The issuer the tokens came from.
    pub issuer: String,
    /// The public client the CLI signed in as.
    pub client_id: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The revocation endpoint.
    pub revocation_endpoint: String,
    /// The access token.
    pub access_token: String,
    /// When it expires (seconds since the epoch).
    pub expires_at: i64,
    /// The refresh token.
    pub refresh_token: Option<String>,
}

/// Where the tokens live.
pub fn tokens_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("rollcall").join("tokens.json"))
}

/// Every stored sign-in, by API base URL.
pub fn load() -> anyhow::Result<BTreeMap<String, Stored>> {
    let path = tokens_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save(all: &BTreeMap<String, Stored>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = tokens_path()?;
    let dir = path.parent().context("the tokens file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // Written beside and renamed over, so a crash never leaves half a file; created 0600.
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(serde_json::to_string_pretty(all)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn api_key(api: &str) -> String {
    api.trim_end_matches('/').to_owned()
}

async fn discover(http: &reqwest::Client, issuer: &str) -> anyhow::Result<Value> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let resp = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("reading {url}"))?;
    if !resp.status().is_success() {
        bail!("{url}: {} (is the tenant right?)", resp.status());
    }
    Ok(resp.json().await?)
}

fn endpoint(doc: &Value, name: &str) -> anyhow::Result<String> {
    doc[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the discovery document has no {name}"))
}

/// What `rollcall login` needs.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The API's base URL (`PUBLIC_BASE_URL`).
    pub api: String,
    /// The tenant.
    pub tenant: String,
    /// The tenant's public client for the CLI.
    pub client_id: String,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// Runs the code flow: prints the URL to open, waits for the loopback redirect, exchanges the
/// code and stores the tokens.
pub async fn login(opts: &LoginOptions) -> anyhow::Result<Stored> {
    let http = reqwest::Client::new();
    let api = api_key(&opts.api);
    let issuer = format!("{api}/t/{}", opts.tenant);
    let doc = discover(&http, &issuer).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("listening on a loopback port for the redirect")?;
    let redirect_uri = format!("http://{}/callback", listener.local_addr()?);
    let verifier = SecretToken::mint()?.expose().to_owned();
    let state = SecretToken::mint()?.expose().to_owned();
    let mut url = url::Url::parse(&endpoint(&doc, "authorization_endpoint")?)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &opts.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", &state)
        .append_pair("code_challenge", &rollcall::oidc::pkce::s256(&verifier))
        .append_pair("code_challenge_method", "S256");
    println!("Open this URL in a browser to sign in:\n\n  {url}\n");
    let params = tokio::time::timeout(opts.timeout, wait_for_redirect(listener))
        .await
        .context("no sign-in arrived in time")??;
    if let Some(error) = params.get("error") {
        bail!(
            "sign-in refused: {error} {}",
            params
                .get("error_description")
                .map(String::as_str)
                .unwrap_or("")
        );
    }
    if params.get("state") != Some(&state) {
        bail!("the redirect's state is not the one sent; not using its code");
    }
    // RFC 9207: the response names its issuer; a mix-up (another issuer's code) stops here.
    if params.get("iss").is_some_and(|i| *i != issuer) {
        bail!("the redirect names another issuer");
    }
    let code = params.get("code").context("the redirect has no code")?;
    let token_endpoint = endpoint(&doc, "token_endpoint")?;
    let body = token_request(
        &http,
        &token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &opts.client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    let stored = Stored {
        issuer,
        client_id: opts.client_id.clone(),
        token_endpoint,
        revocation_endpoint: endpoint(&doc, "revocation_endpoint")?,
        access_token: body_str(&body, "access_token")?,
        expires_at: expiry(&body),
        refresh_token: body["refresh_token"].as_str().map(str::to_owned),
    };
    let mut all = load()?;
    all.insert(api, stored.clone());
    save(&all)?;
    Ok(stored)
}

fn body_str(body: &Value, name: &str) -> anyhow::Result<String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the token response has no {name}"))
}

fn expiry(body: &Value) -> i64 {
    chrono::Utc::now().timestamp() + body["expires_in"].as_i64().unwrap_or(0)
}

async fn token_request(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let resp = http
        .post(endpoint)
        .form(form)
        .send()
        .await
        .with_context(|| format!("calling {endpoint}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .context("the token response is not JSON")?;
    if !status.is_success() {
        bail!(
            "{endpoint}: {} {}",
            body["error"].as_str().unwrap_or(""),
            body["error_description"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

/// Serves the one redirect: answers the browser with a short page, returns the query.
async fn wait_for_redirect(
    listener: tokio::net::TcpListener,
) -> anyhow::Result<BTreeMap<String, String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(tx)));
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
            let tx = tx.clone();
            async move {
                let params: BTreeMap<String, String> =
                    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                if let Some(tx) = tx.lock().await.take() {
                    let _ = tx.send(params);
                }
                axum::response::Html(
                    "<!doctype html><title>rollcall</title><p>Signed in. You can close this window and return to the terminal.</p>",
                )
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let params = rx.await.context("the redirect listener stopped")?;
    server.abort();
    Ok(params)
}

/// The access token for `api`, refreshed (and stored again) when it expires within a minute.
pub async fn access_token(api: &str) -> anyhow::Result<String> {
    let key = api_key(api);
    let mut all = load()?;
    let stored = all.get(&key).cloned().with_context(|| {
        format!("not signed in to {key}: run `rollcall login --api {key} --tenant …` or set TOKEN")
    })?;
    if stored.expires_at - 60 > chrono::Utc::now().timestamp() {
        return Ok(stored.access_token);
    }
    let refresh = stored
        .refresh_token
        .clone()
        .with_context(|| format!("the sign-in to {key} has expired: run `rollcall login` again"))?;
    let http = reqwest::Client::new();
    let body = token_request(
        &http,
        &stored.token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &stored.client_id),
        ],
    )
    .await
    .context("refreshing the sign-in (run `rollcall login` again if it has ended)")?;
    let renewed = Stored {
        access_token: body_str(&body, "access_token")?,
        expires_at: expiry(&body),
        refresh_token: body["refresh_token"]
            .as_str()
            .map(str::to_owned)
            .or(stored.refresh_token.clone()),
        ..stored
    };
    all.insert(key, renewed.clone());
    save(&all)?;
    Ok(renewed.access_token)
}

/// Revokes the stored refresh token at the issuer and forgets the sign-in to `api`.
pub async fn logout(api: &str) -> anyhow::Result<bool> {
    let key = api_key(api);
    let mut all = load()?;
    let Some(stored) = all.remove(&key) else {
        return Ok(false);
    };
    if let Some(refresh) = &stored.refresh_token {
        let resp = reqwest::Client::new()
            .post(&stored.revocation_endpoint)
            .form(&[
                ("token", refresh.as_str()),
                ("client_id", &stored.client_id),
            ])
            .send()
            .await
            .with_context(|| format!("calling {}", stored.revocation_endpoint))?;
        if !resp.status().is_success() {
            bail!("{}: {}", stored.revocation_endpoint, resp.status());
        }
    }
    save(&all)?;
    Ok(true)
}
