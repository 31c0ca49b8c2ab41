//! The `rollcall` binary itself: `dev` serves the API, mails invitations and stops by itself,
//! `mail` shows what was sent, `tenant create` and `token` work against a running stack through
//! the AWS environment variables, and `demo` tours the product on a stack of its own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rollcall::store::schema;
use rollcall_cli::local::{self, Moto};
use secrecy::SecretString;
use users_api::auth::TokenVerifier;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("workspace root")
}

/// `rollcall` pointed at moto's table `cli-test`, as an operator's environment would point it.
fn on_table(moto: &Moto) -> Command {
    let mut command = rollcall();
    command
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", local::LOCAL_REGION)
        .env("AWS_ACCESS_KEY_ID", "rollcall-local")
        .env("AWS_SECRET_ACCESS_KEY", "rollcall-local")
        .env("TABLE_NAME", "cli-test");
    command
}

fn rollcall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
}

#[tokio::test]
async fn dev_prints_a_working_token_and_serves_the_api_until_it_stops_by_itself() {
    let mut child = rollcall()
        .args([
            "dev",
            "--port",
            "0",
            "--moto-port",
            "0",
            "--stop-after",
            "60",
        ])
        .arg("--python")
        .arg(local::python(root()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rollcall dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut api, mut token, mut moto) = (None, None, None);
    for line in lines.by_ref() {
        let line = line.expect("reading the banner");
        if let Some(rest) = line.trim().strip_prefix("API") {
            api = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.trim().strip_prefix("moto ") {
            moto = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(t) = line.trim().strip_prefix("export TOKEN=") {
            token = Some(t.to_owned());
        }
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    let (api, token) = (api.expect("the API URL"), token.expect("the token"));
    let moto = moto.expect("moto's URL");

    let http = reqwest::Client::new();
    let health = http.get(format!("{api}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let users: serde_json::Value = http
        .get(format!("{api}/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["items"][0]["login_id"], "admin", "{users}");
    let created = http
        .post(format!("{api}/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"login_id": "taro", "email": "taro@demo.example", "name": "山田 太郎"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // The stack mails the invitation by itself; `rollcall mail` shows it with its link.
    let mut link = None;
    for _ in 0..40 {
        let out = rollcall()
            .args(["mail", "--to", "taro@demo.example", "--endpoint", &moto])
            .output()
            .expect("rollcall mail");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        link = text
            .lines()
            .find_map(|l| l.strip_prefix("Link:"))
            .map(|l| l.trim().to_owned());
        if link.is_some() {
            assert!(
                text.contains("Subject: 【Demo 株式会社】アカウントへの招待"),
                "{text}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let link = link.expect("an invitation mail within 10 s");
    assert!(link.contains("/t/demo/invitations/"), "{link}");
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the invitation page");
    let link = rollcall_cli::mail::invitation_api_url(&link);
    let check: serde_json::Value = http.get(&link).send().await.unwrap().json().await.unwrap();
    assert_eq!(check["status"], "valid", "{check}");
    let accepted = http
        .post(format!("{link}/accept"))
        .json(&serde_json::json!({"password": "Passw0rd!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    // `rollcall import` runs a file through the API and the import queue.
    let dir = std::env::temp_dir().join(format!("rollcall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "operation,login_id,name,email\r\nNEW,hanako,佐藤 花子,hanako@demo.example\r\nNEW,jiro,鈴木 次郎,jiro@demo.example\r\n",
    )
    .unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "operation,login_id,name,email\r\nNEW,ok,OK,ok@demo.example\r\nNEW,broken,Broken,not-an-address\r\n",
    )
    .unwrap();
    let import = |file: &Path, validate: bool| {
        let mut cmd = rollcall();
        cmd.arg("import")
            .arg(file)
            .args(["--api", &api, "--token", &token]);
        if validate {
            cmd.arg("--validate");
        }
        cmd.output().expect("rollcall import")
    };
    let out = import(&bad, true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(": invalid"), "{text}");
    assert!(text.contains("line 3 email:"), "{text}");
    let out = import(&good, false);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": applied"), "{text}");
    assert!(
        text.contains("created 2, updated 0, deleted 0, unchanged 0"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Ctrl-C ends it; so does SIGINT from a supervisor.
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let waited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(waited.success(), "rollcall dev exited with {waited:?}");
    let gone = http
        .get(format!("{api}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(gone.is_err(), "the API is still up after Ctrl-C");
}

#[tokio::test]
async fn tenant_create_and_token_work_against_the_stack_named_by_the_environment() {
    let moto = tokio::task::spawn_blocking(|| Moto::start(&local::python(root()), 0))
        .await
        .unwrap()
        .expect("moto");
    let client = aws_sdk_dynamodb::Client::new(&local::sdk_config(&moto.endpoint()).await);
    schema::create_table(&client, "cli-test").await.unwrap();

    let out = on_table(&moto)
        .args([
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme 株式会社",
            "--seat-limit",
            "50",
        ])
        .args(["--admin-email", "admin@acme.example"])
        .env_remove("JWT_HS256_SECRET")
        .output()
        .expect("running rollcall tenant create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created tenant acme"), "{stdout}");

    let store = rollcall::store::Store::new(
        client,
        "cli-test",
        std::sync::Arc::new(rollcall::clock::SystemClock),
    );
    let tenant = store.get_tenant(&"acme".parse().unwrap()).await.unwrap();
    assert_eq!(tenant.seat_limit, Some(50));
    assert_eq!(tenant.name.as_str(), "Acme 株式会社");
    let admin_line = stdout
        .lines()
        .find(|l| l.starts_with("created admin "))
        .expect("admin line");
    let admin_id = admin_line.split_whitespace().nth(2).unwrap();

    // The admin was written in its listing shard: the one-off move finds nothing to move,
    // and says so per tenant.
    let migrate = on_table(&moto)
        .args(["migrate", "listing-shards"])
        .output()
        .expect("running rollcall migrate");
    let said = String::from_utf8_lossy(&migrate.stdout);
    assert!(migrate.status.success(), "{said}");
    assert!(
        said.contains("acme: 0 moved into the listing shards, 0 already there")
            && said.contains("1 tenants: 0 moved"),
        "{said}"
    );

    // A second create of the same tenant is refused.
    let again = on_table(&moto)
        .args(["tenant", "create", "acme", "--name", "Acme"])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let out = rollcall()
        .args([
            "token", "--tenant", "acme", "--sub", admin_id, "--role", "manager",
        ])
        .env_remove("JWT_HS256_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let caller = TokenVerifier::hs256(&SecretString::from(rollcall_cli::DEV_JWT_SECRET))
        .verify(token.trim())
        .expect("the dev key signed it");
    assert_eq!(caller.tenant.as_str(), "acme");
    assert_eq!(caller.user_id.to_string(), admin_id);
    assert_eq!(caller.role, rollcall::domain::Role::Manager);

    let bad = rollcall()
        .args([
            "token", "--tenant", "ACME!", "--sub", admin_id, "--role", "admin",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tenant id"));

    // Billing settings and a billing run, against the same stack.
    let sdk = local::sdk_config(&moto.endpoint()).await;
    local::provision_bucket(&sdk, "cli-test").await.unwrap();
    let stack = |args: &[&str]| {
        let out = on_table(&moto)
            .args(args)
            .env("BUCKET_NAME", "cli-test")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let settings = stack(&[
        "tenant",
        "billing",
        "acme",
        "--seat-limit",
        "1",
        "--count-invited",
        "false",
    ]);
    assert!(
        settings.contains("seat limit 1, invited users not counted, seats in use 1"),
        "{settings}"
    );
    // Token lifetimes, each bound named when broken.
    let lifetimes = stack(&[
        "tenant",
        "sign-in",
        "acme",
        "--refresh-grace-seconds",
        "0",
        "--access-token-minutes",
        "5",
    ]);
    assert!(
        lifetimes.contains(
            "access tokens 5 min, refresh families 30 days, idle refresh tokens 7 days, grace 0 s"
        ),
        "{lifetimes}"
    );
    let out = on_table(&moto)
        .args(["tenant", "sign-in", "acme", "--refresh-grace-seconds", "61"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--refresh-grace-seconds: refresh_grace_seconds must be between 0 and 60"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let two_step = stack(&["tenant", "sign-in", "acme", "--two-step", "admins"]);
    assert!(two_step.contains("two-step admins"), "{two_step}");
    // Page settings: a colour too light for white text is refused with its ratio.
    let pages = stack(&[
        "tenant",
        "pages",
        "acme",
        "--app-url",
        "https://app.acme.example/",
        "--accent-colour",
        "#0b6e4f",
    ]);
    assert!(
        pages.contains("app URL https://app.acme.example/, logo (none), accent colour #0b6e4f"),
        "{pages}"
    );
    let out = on_table(&moto)
        .args(["tenant", "pages", "acme", "--accent-colour", "#ffcc00"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--accent-colour: #ffcc00 has a contrast of"),
        "{err}"
    );

    // The admin was created just now, so the last closed month counted nobody.
    let month = rollcall::domain::BillingMonth::last_closed(
        chrono::Utc::now(),
        rollcall::domain::TimeZone::TOKYO,
    )
    .to_string();
    let first = stack(&["billing", "run", "--month", &month, "--tenant", "acme"]);
    let row = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("acme"))
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no row for acme: {text}"))
    };
    assert_eq!(
        row(&first)[..5],
        [
            "acme".to_owned(),
            month.clone(),
            "written".into(),
            "0".into(),
            format!("s3://cli-test/billing/acme/{month}.csv")
        ],
        "{first}"
    );
    let again = stack(&["billing", "run", "--month", &month, "--tenant", "acme"]);
    assert_eq!(row(&again)[2], "verified", "{again}");
}

#[test]
fn demo_tours_the_product_on_its_own_stack_and_ends_by_itself() {
    let out = rollcall()
        .arg("demo")
        .arg("--python")
        .arg(local::python(root()))
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running rollcall demo");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        // 1, 2: the tenant, its admin, two users created through the API and invited.
        "tenant acme (Acme 株式会社), billed on Asia/Tokyo month ends",
        "→ 201 Created",
        "invitation/status          pending",
        // 3, 4: the mail, its link, and the password set with it.
        "To:      taro@acme.example",
        "Subject: 【Acme 株式会社】アカウントへの招待",
        "200 \"パスワードの設定\", 8 password rules listed",
        "200 \"パスワードを設定しました\", signed in: true",
        "status                     used",
        "303 to http://127.0.0.1:8765/callback?code=",
        "preferred_username         taro",
        "/t/acme/forgot",
        "taro is now active",
        // 5: validated, nothing changed.
        ": validated",
        "would be created 3, updated 1, deleted 1, unchanged 0",
        "line,operation,login_id,result,column,message_ja,message_en",
        "7,DELETE,ichiro,ok,,,",
        // 6: applied, and the result.
        ": applied",
        "created 3, updated 1, deleted 1, unchanged 0",
        "6,EDIT,taro,updated,",
        "kenji    髙橋 健二    manager  invited  開発部",
        // 7: the previous month's snapshot, then this month's count.
        "acme                     20",
        "written",
        "billable                   4",
        "seats/used                 5",
        "The tour is over",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains("ichiro   "),
        "ichiro was deleted but is listed:\n{text}"
    );
}

/// `make test` runs this file again under libfaketime on other dates (`make other-dates`),
/// with the date it set in `ROLLCALL_TEST_DATE`: the clock of this process and of the
/// `rollcall` it starts must read that date, or those runs would prove nothing. In the
/// ordinary run there is no date to check.
#[test]
fn the_clock_reads_the_date_the_run_was_given() {
    use base64::Engine as _;
    let Ok(expected) = std::env::var("ROLLCALL_TEST_DATE") else {
        return;
    };
    let expected = chrono::NaiveDate::parse_from_str(&expected, "%Y-%m-%d")
        .expect("ROLLCALL_TEST_DATE is yyyy-mm-dd");
    assert_eq!(chrono::Utc::now().date_naive(), expected, "this process");

    let out = rollcall()
        .args([
            "token",
            "--tenant",
            "acme",
            "--sub",
            "01J0000000000000000000000A",
            "--role",
            "admin",
        ])
        .output()
        .expect("rollcall token");
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = token.trim().split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let iat = claims["iat"].as_i64().expect("iat");
    let issued = chrono::DateTime::from_timestamp(iat, 0).unwrap();
    assert_eq!(issued.date_naive(), expected, "the rollcall it started");
}

/// The value of `name="{field}" value="…"` in a page.
fn hidden_value(html: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    let at = html.find(&marker).expect(field) + marker.len();
    html[at..at + html[at..].find('"').unwrap()].replace("&amp;", "&")
}

#[tokio::test]
async fn login_signs_in_like_an_app_keeps_the_tokens_private_and_import_uses_them() {
    let mut child = rollcall()
        .args([
            "dev",
            "--port",
            "0",
            "--moto-port",
            "0",
            "--stop-after",
            "120",
        ])
        .arg("--python")
        .arg(local::python(root()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rollcall dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut api, mut client, mut password, mut issuer) = (None, None, None, None);
    for line in lines.by_ref() {
        let line = line.expect("reading the banner");
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("API") {
            api = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = t.strip_prefix("issuer") {
            issuer = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = t.strip_prefix("public client") {
            client = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = t.strip_prefix("sign in as    admin / ") {
            password = Some(rest.trim().to_owned());
        }
        if line.contains("Ctrl-C stops") {
            break;
        }
    }
    let (api, client) = (api.expect("the API"), client.expect("the client id"));
    let (password, issuer) = (password.expect("the password"), issuer.expect("the issuer"));
    assert_eq!(issuer, format!("{api}/t/demo"));

    let config = std::env::temp_dir().join(format!("rollcall-login-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&config);
    let mut login = rollcall()
        .args([
            "login",
            "--api",
            &api,
            "--tenant",
            "demo",
            "--client-id",
            &client,
        ])
        .args(["--timeout", "60"])
        .env("XDG_CONFIG_HOME", &config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("rollcall login");
    let mut out = BufReader::new(login.stdout.take().unwrap()).lines();
    let url = out
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{issuer}/authorize?"))
                .map(|q| format!("{issuer}/authorize?{q}"))
        })
        .expect("the URL to open");

    // The person at the browser: the page, the form, and the redirect to the CLI's loopback.
    // Follows the sign-in's redirect to the CLI's loopback listener, as a browser would.
    let browser = reqwest::Client::new();
    let page = browser.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csrf = page
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .find_map(|c| c.to_str().unwrap().strip_prefix("rollcall_csrf="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let mut form: Vec<(String, String)> = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|f| (f.to_string(), hidden_value(&html, f)))
    .collect();
    form.push(("csrf".into(), csrf.clone()));
    form.push(("login".into(), "admin".into()));
    form.push(("password".into(), password.clone()));
    let done = browser
        .post(format!("{issuer}/signin"))
        .header(reqwest::header::COOKIE, format!("rollcall_csrf={csrf}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(done.status().is_success(), "{}", done.status());
    assert!(done.text().await.unwrap().contains("Signed in"));
    let status = tokio::task::spawn_blocking(move || login.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    let file = config.join("rollcall").join("tokens.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the tokens are the user's alone");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let refresh = stored[&api]["refresh_token"].as_str().unwrap().to_owned();

    // `rollcall import` without TOKEN uses the stored sign-in (an access token for the API).
    let dir = config.join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("users.csv");
    std::fs::write(
        &csv,
        "operation,login_id,name,email\r\nNEW,kaori,高橋 かおり,kaori@demo.example\r\n",
    )
    .unwrap();
    let out = rollcall()
        .arg("import")
        .arg(&csv)
        .args(["--api", &api, "--validate"])
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("TOKEN")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": validated"), "{text}");

    // `rollcall logout` revokes the refresh token and forgets the sign-in.
    let out = rollcall()
        .args(["logout", "--api", &api])
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let refreshed = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 400, "revoked");
    let out = rollcall()
        .arg("import")
        .arg(&csv)
        .args(["--api", &api, "--validate"])
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed in"));

    std::fs::remove_dir_all(&config).unwrap();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
