//! `rollcall demo`: a scripted tour of the product against a fresh local stack, which it starts
//! on free ports and stops when the tour is over. Every step goes through the same interfaces a
//! deployment has: the HTTP API, the mail SES accepted, an upload to the presigned URL that the
//! bucket's notification hands to bulk-import, and billing-snapshot's handler.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use billing_snapshot::{SnapshotConfig, Snapshotter};
use rollcall::domain::{BillingMonth, DisplayName, TenantId, TimeZone};
use serde_json::{Value, json};

use crate::bootstrap::TenantSpec;
use crate::dev::{DevOptions, Stack};
use crate::forms::{self, Visitor};
use crate::import::{self, ImportOptions};
use crate::{billing, mail};

/// How to run the tour.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The Python that has moto.
    pub python: PathBuf,
    /// The CSV file the tour imports.
    pub sample: PathBuf,
}

/// The tenant the tour creates.
const TENANT: &str = "acme";

/// How long the tour waits for the invitation mail and for each import.
const WAIT: Duration = Duration::from_secs(120);

/// A step's title.
fn step(n: u32, title: &str) {
    println!("\n── {n}. {title}\n");
}

/// Text indented under a step.
fn indented(text: &str) {
    for line in text.lines() {
        println!("    {line}");
    }
}

/// Prints the answer's status and the fields of its JSON body at `pointers` (all of it, pretty,
/// if none are named), and returns the body.
async fn show(resp: reqwest::Response, pointers: &[&str]) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.context("the answer is not JSON")?;
    println!("  → {status}");
    if pointers.is_empty() || !status.is_success() {
        indented(&serde_json::to_string_pretty(&body)?);
    } else {
        for pointer in pointers {
            let value = body.pointer(pointer).unwrap_or(&Value::Null);
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            println!("    {:<26} {text}", pointer.trim_start_matches('/'));
        }
    }
    if !status.is_success() {
        bail!("the API answered {status}");
    }
    Ok(body)
}

/// `text` padded with spaces to `width` columns of a terminal, where CJK characters take two.
fn padded(text: &str, width: usize) -> String {
    let columns: usize = text
        .chars()
        .map(|c| match c {
            '\u{1100}'..='\u{115f}' | '\u{2e80}'..='\u{a4cf}' | '\u{ac00}'..='\u{d7a3}' => 2,
            '\u{f900}'..='\u{faff}' | '\u{fe30}'..='\u{fe4f}' | '\u{ff00}'..='\u{ff60}' => 2,
            '\u{ffe0}'..='\u{ffe6}' => 2,
            _ => 1,
        })
        .sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(columns)))
}

/// A report downloaded from its presigned link, without the byte order mark Excel needs.
async fn download(http: &reqwest::Client, link: &str) -> anyhow::Result<String> {
    let text = http
        .get(link)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text.trim_start_matches('\u{feff}').replace("\r\n", "\n"))
}

/// The API as the tour's admin calls it.
struct Admin {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Admin {
    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
    }

    /// `GET {api}{path}`'s JSON body; an error status is an error.
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.request(path).send().await?.error_for_status()?;
        Ok(resp.json().await?)
    }

    /// `GET {api}{path}`, printed with [`show`].
    async fn show_get(&self, path: &str, pointers: &[&str]) -> anyhow::Result<Value> {
        println!("\n  GET {}{path}", self.api);
        show(self.request(path).send().await?, pointers).await
    }
}

/// Runs `rollcall import` for the sample and prints its report and the CSV report `report_key`.
async fn import_sample(
    admin: &Admin,
    sample: &Path,
    validate: bool,
    report_key: &str,
) -> anyhow::Result<()> {
    let outcome = import::run(
        sample,
        &ImportOptions {
            api: admin.api.clone(),
            token: admin.token.clone(),
            validate,
            encoding: "auto".into(),
            timeout: WAIT,
        },
    )
    .await?;
    for line in outcome.report.lines() {
        // The presigned links are long and expire; the report itself follows.
        if !line.contains("report: http") {
            indented(line);
        }
    }
    if !outcome.succeeded() {
        bail!("the sample import ended {}", outcome.status);
    }
    let job = admin.get(&format!("/imports/{}", outcome.id)).await?;
    let link = job["reports"][report_key]
        .as_str()
        .with_context(|| format!("the job has no {report_key} link"))?;
    println!("\n  {}:\n", report_key.replace('_', "."));
    indented(&download(&admin.http, link).await?);
    Ok(())
}

/// Runs the tour.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let sample_text = std::fs::read_to_string(&opts.sample)
        .with_context(|| format!("reading the sample {}", opts.sample.display()))?;
    println!("rollcall demo: a tour of the product on a local stack that stops by itself.");
    let stack = Stack::start(&DevOptions {
        port: 0,
        moto_port: 0,
        python: opts.python.clone(),
        table: "rollcall-demo".into(),
        bucket: "rollcall-demo".into(),
        stop_after: None,
    })
    .await?;
    println!(
        "The local stack is up: the API at {}, moto (DynamoDB, S3, SQS, SES) at {}.",
        stack.api,
        stack.moto_endpoint()
    );
    let http = reqwest::Client::new();
    let api = stack.api.as_str();

    step(
        1,
        "A tenant and its first admin (what `rollcall tenant create` does)",
    );
    let (tenant, first_admin, token) = stack
        .add_tenant(
            &TenantSpec {
                id: TenantId::parse(TENANT)?,
                name: DisplayName::parse("Acme 株式会社")?,
                seat_limit: Some(50),
                time_zone: TimeZone::TOKYO,
            },
            "admin",
            "admin@acme.example",
            "Acme Admin",
            3600,
        )
        .await?;
    println!(
        "  tenant {} ({}), billed on {} month ends, 50 seats",
        tenant.id,
        tenant.name.as_str(),
        tenant.billing_time_zone
    );
    println!(
        "  admin {} (login id {}), and a 1-hour admin token for the calls below",
        first_admin.id, first_admin.profile.login_id
    );
    let admin = Admin {
        http: http.clone(),
        api: api.to_owned(),
        token,
    };

    step(
        2,
        "Create users through the API: POST /users (each gets an invitation)",
    );
    let mut ids = Vec::new();
    for body in [
        json!({"login_id": "taro", "email": "taro@acme.example", "name": "山田 太郎",
               "department": "営業部", "language": "ja"}),
        json!({"login_id": "ichiro", "email": "ichiro@acme.example", "name": "鈴木 一郎",
               "department": "総務部", "language": "ja"}),
    ] {
        println!("  POST {api}/users {body}");
        let created = show(
            http.post(format!("{api}/users"))
                .bearer_auth(&admin.token)
                .json(&body)
                .send()
                .await?,
            &["/id", "/status", "/role", "/invitation/status", "/version"],
        )
        .await?;
        ids.push(created["id"].as_str().context("no id")?.to_owned());
    }

    step(
        3,
        "The invitation mail send-invitations sent (read back from moto's SES)",
    );
    let started = Instant::now();
    let invitation = loop {
        let sent = mail::sent_mail(&stack.moto_endpoint()).await?;
        if let Some(m) = sent.into_iter().find(|m| m.is_to("taro@acme.example")) {
            break m;
        }
        if started.elapsed() > WAIT {
            bail!("no invitation reached taro@acme.example within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!(
        "  To:      {}",
        invitation.recipients().collect::<Vec<_>>().join(", ")
    );
    println!("  From:    {}", invitation.source);
    println!("  Subject: {}", invitation.subject);
    let link = invitation
        .links()
        .into_iter()
        .next()
        .context("the invitation has no link")?;
    println!("  Link:    {link}");

    step(
        4,
        "The invitation page, then a sign-in, as a browser without scripts would",
    );
    let password = "Sakura-2026-spring";
    let mut visitor = Visitor::new()?;
    println!("  GET  {link}   (shows the page; opening it never uses the link)");
    let page = visitor.get(&link).await?;
    println!(
        "       {} \"{}\", {} password rules listed, a CSRF token in the form",
        page.status,
        forms::heading(&page.html).unwrap_or_default(),
        page.html.matches("data-rule=").count()
    );
    println!("  POST {link}   password=…&confirm=…&csrf=…");
    let done = visitor
        .post(
            &link,
            &page,
            &[("password", password), ("confirm", password)],
        )
        .await?;
    println!(
        "       {} \"{}\", signed in: {}",
        done.status,
        forms::heading(&done.html).unwrap_or_default(),
        visitor
            .cookies
            .contains_key(&format!("rollcall_session_{TENANT}"))
    );
    let json_link = mail::invitation_api_url(&link);
    println!("  The same link as JSON, for teams that build their own pages: GET {json_link}");
    show(http.get(&json_link).send().await?, &["/status", "/code"]).await?;

    // A sign-in through the code flow with PKCE, as an application would start it.
    let client = crate::bootstrap::register_cli_client(&stack.store, &tenant.id).await?;
    let verifier = rollcall::domain::SecretToken::mint()?.expose().to_owned();
    let redirect = "http://127.0.0.1:8765/callback";
    let issuer = format!("{api}/t/{TENANT}");
    let authorize = format!(
        "{issuer}/authorize?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.to_string())
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", "openid profile email")
            .append_pair("state", "demo")
            .append_pair("code_challenge", &rollcall::oidc::pkce::s256(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("ui_locales", "ja")
            .finish()
    );
    let mut fresh = Visitor::new()?;
    println!("\n  GET  {issuer}/authorize?…   (the sign-in page)");
    let sign_in = fresh.get(&authorize).await?;
    println!(
        "       {} \"{}\"",
        sign_in.status,
        forms::heading(&sign_in.html).unwrap_or_default()
    );
    let mut fields: Vec<(&str, String)> = forms::hidden_fields(&sign_in.html)
        .into_iter()
        .filter(|(k, _)| *k != "csrf")
        .collect();
    fields.push(("login", "taro".into()));
    fields.push(("password", password.into()));
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    println!("  POST {issuer}/signin   login=taro&password=…");
    let back = fresh
        .post(&format!("{issuer}/signin"), &sign_in, &refs)
        .await?;
    let location = back
        .location
        .clone()
        .context("no redirect after signing in")?;
    let code = reqwest::Url::parse(&location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the redirect")?;
    println!(
        "       {} to {}?code=…&state=demo&iss=…",
        back.status, redirect
    );
    println!("  POST {issuer}/token   grant_type=authorization_code&code=…&code_verifier=…");
    let tokens = show(
        http.post(format!("{issuer}/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
                ("client_id", client.to_string().as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await?,
        &["/token_type", "/expires_in", "/scope"],
    )
    .await?;
    println!("  GET  {issuer}/userinfo   (with the access token)");
    show(
        http.get(format!("{issuer}/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
            .send()
            .await?,
        &["/sub", "/name", "/preferred_username", "/email"],
    )
    .await?;
    println!(
        "\n  The pages (this tour's stack stops at its end; `make dev` serves the same ones for \
         tenant demo at http://127.0.0.1:3000/t/demo/…):"
    );
    for (what, path) in [
        ("sign-in", "/authorize?…".to_owned()),
        ("forgot password", "/forgot".to_owned()),
        ("account (signed in)", "/account".to_owned()),
        ("invitation", "/invitations/{token}".to_owned()),
        ("reset", "/reset/{token}".to_owned()),
    ] {
        println!("    {}{issuer}{path}", padded(what, 22));
    }
    let taro = admin.get(&format!("/users/{}", ids[0])).await?;
    println!(
        "  GET {api}/users/{}: taro is now {}",
        ids[0],
        taro["status"].as_str().unwrap_or_default()
    );

    step(
        5,
        &format!(
            "Validate the sample CSV ({}): every row checked, a report, nothing changed",
            opts.sample.display()
        ),
    );
    indented(sample_text.trim_start_matches('\u{feff}'));
    println!("\n  rollcall import {} --validate\n", opts.sample.display());
    import_sample(&admin, &opts.sample, true, "validation_csv").await?;

    step(6, "Apply it: all rows or none, then the result report");
    println!("  rollcall import {}\n", opts.sample.display());
    import_sample(&admin, &opts.sample, false, "result_csv").await?;
    let users = admin.get("/users").await?;
    println!("\n  GET {api}/users now lists:\n");
    for u in users["items"].as_array().into_iter().flatten() {
        let cell = |k: &str| u[k].as_str().unwrap_or("").to_owned();
        println!(
            "    {}{}{}{}{}",
            padded(&cell("login_id"), 9),
            padded(&cell("name"), 13),
            padded(&cell("role"), 9),
            padded(&cell("status"), 9),
            cell("department")
        );
    }

    step(
        7,
        "Month-end billing: the previous month's snapshot (what the schedule runs)",
    );
    let month = BillingMonth::last_closed(stack.store.clock().now(), tenant.billing_time_zone);
    let snapshotter = Snapshotter::new(
        stack.store.clone(),
        stack.bucket.clone(),
        SnapshotConfig::default(),
    );
    println!("  rollcall billing run --month {month} --tenant {TENANT}\n");
    let report = billing::run(
        &snapshotter,
        billing::event(Some(month), vec![tenant.id.clone()])?,
    )
    .await?;
    indented(&billing::render(&report, stack.bucket.name()));
    admin
        .show_get(
            &format!("/billing/snapshots/{month}"),
            &[
                "/month",
                "/time_zone",
                "/counted_at",
                "/count",
                "/count_invited",
            ],
        )
        .await?;
    println!(
        "\n  Everyone above was created this month, after {month} ended in Tokyo, so its \
         count is 0.\n  This month's count so far, as next month's snapshot will take it:"
    );
    admin
        .show_get(
            "/billing/current",
            &[
                "/month",
                "/as_of",
                "/billable",
                "/seats/used",
                "/seats/limit",
            ],
        )
        .await?;

    drop(stack);
    println!("\nThe tour is over and the local stack has stopped. `make dev` keeps one running.");
    Ok(())
}
