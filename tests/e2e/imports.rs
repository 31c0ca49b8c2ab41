//! Bulk import end to end: files uploaded to the bucket, S3 notifications through the
//! function's entry path, the AWS SDK against moto, and the state read back from the table.
//!
//! Over 600 lines: one file per flow keeps the import's end-to-end tests and their helpers
//! (uploads, S3 events, queue draining) together; each test stands alone.

use std::collections::BTreeMap;

use chrono::DurationRound as _;

use bulk_import::{ImportConfig, Importer, SqsBatchResponse as BatchResponse, SqsEvent, Stage};
use lambda_runtime::{Context, LambdaEvent};
use reqwest::Method;
use rollcall::csv::CsvWriter;
use rollcall::csv::encoding::{EncodingChoice, encode_shift_jis};
use rollcall::domain::{LoginId, Status, TenantId};
use rollcall::import::{ImportJob, ImportMode, ImportStatus, Report};
use rollcall::store::Store;
use rollcall_e2e::{TestApp, TestTenant, assert_problem, spawn_app};
use serde_json::json;

/// An importer as deployed: several chunks in flight at once.
fn importer(app: &TestApp) -> Importer {
    assert!(ImportConfig::default().concurrency > 1);
    Importer::new(
        app.store.clone(),
        app.bucket.clone(),
        ImportConfig::default(),
    )
}

/// Creates a job as `tenant`'s admin and uploads `bytes` to its key; returns the job and the
/// upload's ETag.
async fn upload(
    app: &TestApp,
    tenant: &TestTenant,
    mode: ImportMode,
    bytes: Vec<u8>,
) -> (ImportJob, String) {
    let job = ImportJob::new(
        tenant.id.clone(),
        tenant.admin.id,
        mode,
        EncodingChoice::Auto,
        app.store.clock().now(),
    );
    app.store.create_import(&job).await.expect("creating a job");
    let out = app
        .bucket
        .client()
        .put_object()
        .bucket(app.bucket.name())
        .key(job.upload_key())
        .body(bytes.into())
        .send()
        .await
        .expect("uploading");
    let etag = out.e_tag.unwrap_or_default().trim_matches('"').to_owned();
    (job, etag)
}

/// The SQS event carrying S3's notification of the upload, as Lambda delivers it.
fn s3_event(app: &TestApp, job: &ImportJob, etag: &str) -> LambdaEvent<SqsEvent> {
    let body = json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "ap-northeast-1",
        "eventTime": "2026-11-21T01:02:03.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "imports",
            "bucket": {"name": app.bucket.name(), "arn": format!("arn:aws:s3:::{}", app.bucket.name())},
            "object": {"key": job.upload_key(), "size": 1, "eTag": etag, "sequencer": "0A"}
        }
    }]});
    LambdaEvent::new(
        rollcall_e2e::sqs_event(&format!("m-{}", job.id), &body.to_string()),
        Context::default(),
    )
}

async fn deliver(importer: &Importer, event: LambdaEvent<SqsEvent>) -> BatchResponse {
    importer
        .function_handler(event)
        .await
        .expect("the handler returns a batch response")
}

async fn job(store: &Store, job: &ImportJob) -> ImportJob {
    store
        .get_import(&job.tenant, &job.id)
        .await
        .expect("reading the job")
}

const HEADER: [&str; 6] = [
    "operation",
    "login_id",
    "name",
    "email",
    "department",
    "role",
];
const HEADER_JA: [&str; 6] = [
    "操作",
    "ログインID",
    "氏名",
    "メールアドレス",
    "部署",
    "権限",
];

fn new_row(prefix: &str, tenant: &str, n: usize) -> [String; 6] {
    [
        "NEW".into(),
        format!("{prefix}{n:04}"),
        format!("髙橋 ① {prefix}{n}"),
        format!("{prefix}{n:04}@{tenant}.example"),
        "営業～第一".into(),
        String::new(),
    ]
}

/// A file of `creates` NEW rows, for seeding.
fn seed_file(tenant: &str, creates: usize) -> Vec<u8> {
    let mut csv = CsvWriter::new();
    csv.row(HEADER);
    for n in 0..creates {
        csv.row(new_row("a", tenant, n));
    }
    csv.finish().into_bytes()
}

/// 2,000 rows: 1,000 NEW, EDIT of `a0000`…`a0599`, DELETE of `a0600`…`a0999`.
fn mixed_rows(tenant: &str) -> Vec<[String; 6]> {
    let mut rows = Vec::with_capacity(2_000);
    for n in 0..1_000 {
        rows.push(new_row("b", tenant, n));
    }
    for n in 0..600 {
        rows.push([
            "EDIT".into(),
            format!("a{n:04}"),
            format!("髙木 ～{n}～"),
            String::new(),
            "②課".into(),
            if n % 100 == 0 { "admin" } else { "" }.into(),
        ]);
    }
    for n in 600..1_000 {
        rows.push([
            "DELETE".into(),
            format!("a{n:04}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows
}

fn utf8_file(header: [&str; 6], rows: &[[String; 6]]) -> Vec<u8> {
    let mut csv = CsvWriter::new();
    csv.row(header);
    for r in rows {
        csv.row(r);
    }
    csv.finish().into_bytes()
}

fn shift_jis_file(header: [&str; 6], rows: &[[String; 6]]) -> Vec<u8> {
    let text = String::from_utf8(utf8_file(header, rows)).expect("UTF-8");
    encode_shift_jis(text.trim_start_matches(rollcall::csv::BOM)).expect("Shift_JIS")
}

async fn run_file(
    app: &TestApp,
    importer: &Importer,
    tenant: &TestTenant,
    bytes: Vec<u8>,
) -> ImportJob {
    let (created, etag) = upload(app, tenant, ImportMode::Apply, bytes).await;
    let response = deliver(importer, s3_event(app, &created, &etag)).await;
    assert_eq!(response, BatchResponse::default(), "nothing to redeliver");
    job(&app.store, &created).await
}

async fn user(store: &Store, tenant: &TenantId, login: &str) -> Option<rollcall::domain::User> {
    store
        .find_by_login_id(tenant, &LoginId::parse(login).expect("login id"))
        .await
        .expect("reading a user")
}

async fn invitations(store: &Store, u: &rollcall::domain::User) -> usize {
    store
        .user_invitations(&u.tenant, &u.id)
        .await
        .expect("reading invitations")
        .invitations
        .len()
}

async fn mixed_file_applies(shift_jis: bool) {
    let app = spawn_app().await;
    let importer = importer(&app);
    let tenant = &app.acme;
    let seeded = run_file(&app, &importer, tenant, seed_file("acme", 1_000)).await;
    assert_eq!(seeded.status, ImportStatus::Applied, "{:?}", seeded.error);
    assert_eq!(seeded.counts.map(|c| c.created), Some(1_000));

    let rows = mixed_rows("acme");
    let bytes = if shift_jis {
        shift_jis_file(HEADER_JA, &rows)
    } else {
        utf8_file(HEADER, &rows)
    };
    let done = run_file(&app, &importer, tenant, bytes).await;
    assert_eq!(done.status, ImportStatus::Applied, "{:?}", done.error);
    let counts = done.counts.expect("counts");
    assert_eq!(
        (
            counts.created,
            counts.updated,
            counts.deleted,
            counts.unchanged
        ),
        (1_000, 600, 400, 0)
    );
    assert_eq!(done.rows, Some(2_000));
    assert_eq!(done.journal.chunks_done, done.journal.chunks);
    assert_eq!(done.journal.applied_rows, 2_000);

    let created = user(&app.store, &tenant.id, "b0999")
        .await
        .expect("created");
    assert_eq!(created.profile.name.as_str(), "髙橋 ① b999");
    assert_eq!(
        created.profile.department.as_ref().map(|d| d.as_str()),
        Some("営業～第一")
    );
    assert_eq!(created.status, Status::Invited);
    assert_eq!(invitations(&app.store, &created).await, 1);

    let edited = user(&app.store, &tenant.id, "a0100").await.expect("edited");
    assert_eq!(edited.profile.name.as_str(), "髙木 ～100～");
    assert_eq!(
        edited.profile.department.as_ref().map(|d| d.as_str()),
        Some("②課")
    );
    assert_eq!(edited.profile.role, rollcall::domain::Role::Admin);
    assert_eq!(
        edited.profile.email.as_str(),
        "a0100@acme.example",
        "email kept"
    );
    assert_eq!(edited.version, 2);
    assert_eq!(
        invitations(&app.store, &edited).await,
        1,
        "no new invitation"
    );
    assert!(user(&app.store, &tenant.id, "a0600").await.is_none());
    assert!(user(&app.store, &tenant.id, "a0999").await.is_none());

    let (_, seats) = app
        .store
        .tenant_and_seats(&tenant.id)
        .await
        .expect("tenant");
    // The admin (active) and 1,600 invited users.
    assert_eq!((seats.active, seats.active_or_invited), (1, 1_601));

    let report = app
        .object_text(&done.report_key(Report::Result, "csv"))
        .await;
    assert!(report.starts_with('\u{feff}'));
    assert_eq!(report.lines().count(), 2_001);
    assert!(report.contains("\r\n2,NEW,b0000,created,"));
    let validation = app
        .object_text(&done.report_key(Report::Validation, "csv"))
        .await;
    assert!(validation.contains("\r\n2001,DELETE,a0999,ok,,,\r\n"));
}

#[tokio::test]
async fn a_mixed_file_of_2000_rows_in_utf8_applies() {
    mixed_file_applies(false).await;
}

#[tokio::test]
async fn a_mixed_file_of_2000_rows_in_shift_jis_with_japanese_headers_applies() {
    mixed_file_applies(true).await;
}

#[tokio::test]
async fn one_bad_row_among_2000_changes_nothing_and_the_report_names_it() {
    let app = spawn_app().await;
    let importer = importer(&app);
    let tenant = &app.acme;
    let mut rows: Vec<[String; 6]> = (0..2_000).map(|n| new_row("c", "acme", n)).collect();
    rows[1_498][3] = "=HYPERLINK(\"x\")".into();
    let done = run_file(&app, &importer, tenant, utf8_file(HEADER, &rows)).await;
    assert_eq!(done.status, ImportStatus::Invalid);
    assert_eq!((done.rows, done.rows_invalid), (Some(2_000), Some(1)));
    assert_eq!(done.journal.chunks_done, 0);
    assert!(user(&app.store, &tenant.id, "c0000").await.is_none());
    let (_, seats) = app
        .store
        .tenant_and_seats(&tenant.id)
        .await
        .expect("tenant");
    assert_eq!(seats.active_or_invited, 1, "only the admin");

    let report = app
        .object_text(&done.report_key(Report::Validation, "csv"))
        .await;
    let bad: Vec<&str> = report.lines().filter(|l| l.contains(",error,")).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("1500,NEW,c1498,error,email,"),
        "{}",
        bad[0]
    );
    let json: serde_json::Value = serde_json::from_str(
        &app.object_text(&done.report_key(Report::Validation, "json"))
            .await,
    )
    .expect("JSON");
    assert_eq!(json["valid"], false);
    assert_eq!(json["rows_invalid"], 1);
    assert_eq!(json["row_results"][1_498]["problems"][0]["column"], "email");
    // The lock is free again: an API write goes through.
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "after", "email": "after@acme.example", "name": "After"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 201);
}

/// Per login id, what a user looks like apart from ids and times.
async fn projection(
    app: &TestApp,
    tenant: &TenantId,
    logins: &[String],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for login in logins {
        let found = user(&app.store, tenant, login).await;
        let text = match found {
            None => "absent".to_owned(),
            Some(u) => format!(
                "{}|{}|{:?}|{:?}|{:?}|v{}|h{}|invitations {}",
                u.profile.name.as_str(),
                u.profile
                    .email
                    .as_str()
                    .replace(&format!("@{tenant}."), "@."),
                u.profile.department.as_ref().map(|d| d.as_str().to_owned()),
                u.profile.role,
                u.status,
                u.version,
                u.history.len(),
                invitations(&app.store, &u).await
            ),
        };
        out.insert(login.clone(), text);
    }
    out
}

/// 80 seeded users, then 150 NEW, 40 EDIT and 40 DELETE rows: several chunks.
async fn interrupted_run(
    app: &TestApp,
    tenant_id: &str,
    stage: Option<Stage>,
) -> BTreeMap<String, String> {
    let tenant = app.add_tenant(tenant_id).await;
    let importer = importer(app);
    let seeded = run_file(app, &importer, &tenant, seed_file(tenant_id, 80)).await;
    assert_eq!(seeded.status, ImportStatus::Applied);
    let mut rows: Vec<[String; 6]> = (0..150).map(|n| new_row("b", tenant_id, n)).collect();
    for n in 0..40 {
        rows.push([
            "EDIT".into(),
            format!("a{n:04}"),
            format!("New {n}"),
            String::new(),
            "x".into(),
            String::new(),
        ]);
    }
    for n in 40..80 {
        rows.push([
            "DELETE".into(),
            format!("a{n:04}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    let (created, etag) = upload(app, &tenant, ImportMode::Apply, utf8_file(HEADER, &rows)).await;
    if let Some(stage) = stage {
        importer.failpoints().arm(stage, 1);
        let first = deliver(&importer, s3_event(app, &created, &etag)).await;
        assert_eq!(
            first.batch_item_failures.len(),
            1,
            "{stage:?}: the message comes back"
        );
        let mid = job(&app.store, &created).await;
        let expected = if stage == Stage::BeforeLockRelease {
            ImportStatus::Applied
        } else {
            ImportStatus::Applying
        };
        assert_eq!(mid.status, expected, "{stage:?}");
        // The lock is held: API writes wait.
        let resp = app
            .request(Method::POST, "/users", &tenant.admin_token)
            .json(&json!({"login_id": "during", "email": format!("during@{tenant_id}.example"), "name": "During"}))
            .send()
            .await
            .expect("request");
        assert_problem(resp, 409, "import_in_progress").await;
    }
    let again = deliver(&importer, s3_event(app, &created, &etag)).await;
    assert_eq!(again, BatchResponse::default());
    let done = job(&app.store, &created).await;
    assert_eq!(
        done.status,
        ImportStatus::Applied,
        "{stage:?}: {:?}",
        done.error
    );
    let counts = done.counts.expect("counts");
    assert_eq!(
        (counts.created, counts.updated, counts.deleted),
        (150, 40, 40)
    );
    // The lock is free once the job is over.
    let resp = app
        .request(Method::POST, "/users", &tenant.admin_token)
        .json(&json!({"login_id": "after", "email": format!("after@{tenant_id}.example"), "name": "After"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 201, "{stage:?}");
    let logins: Vec<String> = (0..80)
        .map(|n| format!("a{n:04}"))
        .chain((0..150).map(|n| format!("b{n:04}")))
        .collect();
    projection(app, &tenant.id, &logins).await
}

#[tokio::test]
async fn a_failure_at_any_apply_stage_then_redelivery_ends_as_an_uninterrupted_run() {
    let app = spawn_app().await;
    let expected = interrupted_run(&app, "control", None).await;
    assert_eq!(expected["b0149"].matches("invitations 1").count(), 1);
    for (tenant, stage) in [
        ("first", Stage::BeforeFirstWrite),
        ("mid", Stage::MidApply),
        ("commit", Stage::BeforeCommit),
        ("release", Stage::BeforeLockRelease),
    ] {
        let got = interrupted_run(&app, tenant, Some(stage)).await;
        assert_eq!(got, expected, "{stage:?}");
    }
}

#[tokio::test]
async fn the_same_s3_event_three_times_applies_once() {
    let app = spawn_app().await;
    let importer = importer(&app);
    let tenant = &app.acme;
    let (created, etag) = upload(&app, tenant, ImportMode::Apply, seed_file("acme", 30)).await;
    for _ in 0..3 {
        let response = deliver(&importer, s3_event(&app, &created, &etag)).await;
        assert_eq!(response, BatchResponse::default());
    }
    let done = job(&app.store, &created).await;
    assert_eq!(done.status, ImportStatus::Applied);
    let u = user(&app.store, &tenant.id, "a0029")
        .await
        .expect("created");
    assert_eq!(u.version, 1);
    assert_eq!(invitations(&app.store, &u).await, 1);
    let (_, seats) = app
        .store
        .tenant_and_seats(&tenant.id)
        .await
        .expect("tenant");
    assert_eq!(seats.active_or_invited, 31);
}

/// Hands every queued message to bulk-import, as the event source mapping would; returns how
/// many were delivered.
async fn drain_queue(app: &TestApp, importer: &Importer) -> usize {
    let mut delivered = 0;
    loop {
        let report = app
            .import_queue
            .poll(importer, std::time::Duration::from_secs(1))
            .await
            .expect("polling the import queue");
        if report.delivered == 0 {
            return delivered;
        }
        assert_eq!(report.failed, 0, "a message failed");
        delivered += report.delivered;
    }
}

/// `POST /imports`, then the file to the presigned URL; returns the job's id.
async fn upload_through_api(app: &TestApp, mode: &str, bytes: Vec<u8>) -> String {
    let resp = app
        .as_admin(Method::POST, "/imports")
        .json(&json!({"mode": mode}))
        .send()
        .await
        .expect("request");
    let (status, created) = rollcall_e2e::status_and_json(resp).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "waiting");
    assert_eq!(created["upload"]["method"], "PUT");
    let url = created["upload"]["url"].as_str().expect("upload url");
    let put = app.http.put(url).body(bytes).send().await.expect("upload");
    assert!(put.status().is_success(), "upload: {}", put.status());
    created["id"].as_str().expect("id").to_owned()
}

async fn get_json(app: &TestApp, path: &str) -> serde_json::Value {
    let resp = app
        .as_admin(Method::GET, path)
        .send()
        .await
        .expect("request");
    let (status, body) = rollcall_e2e::status_and_json(resp).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn fetch(app: &TestApp, url: &str) -> Vec<u8> {
    let resp = app.http.get(url).send().await.expect("download");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.bytes().await.expect("body").to_vec()
}

#[tokio::test]
async fn validate_then_apply_through_the_api_with_s3_notifications_from_the_bucket() {
    let app = spawn_app().await;
    let importer = app.importer();
    // S3 tests a new notification with an `s3:TestEvent` message: handled, ignored, deleted.
    assert_eq!(drain_queue(&app, &importer).await, 1);
    let rows: Vec<[String; 6]> = (0..5).map(|n| new_row("v", "acme", n)).collect();
    let id = upload_through_api(&app, "validate", utf8_file(HEADER, &rows)).await;
    assert_eq!(drain_queue(&app, &importer).await, 1, "S3 told the queue");
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "validated", "{job}");
    assert_eq!(job["counts"]["created"], 5);
    assert_eq!(job["file_encoding"], "utf-8");
    assert!(job["reports"].get("result_csv").is_none());
    let report = fetch(
        &app,
        job["reports"]["validation_csv"].as_str().expect("link"),
    )
    .await;
    let report = String::from_utf8(report).expect("UTF-8");
    assert!(
        report
            .starts_with("\u{feff}line,operation,login_id,result,column,message_ja,message_en\r\n")
    );
    assert_eq!(report.matches(",ok,").count(), 5);
    assert!(
        user(&app.store, &app.acme.id, "v0000").await.is_none(),
        "validate changes nothing"
    );

    let resp = app
        .as_admin(Method::POST, &format!("/imports/{id}/apply"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 202);
    assert_eq!(drain_queue(&app, &importer).await, 1);
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(job["mode"], "apply");
    assert_eq!(job["progress"]["applied_rows"], 5, "{job}");
    assert_eq!(job["progress"]["chunks_done"], job["progress"]["chunks"]);
    let result = fetch(&app, job["reports"]["result_csv"].as_str().expect("link")).await;
    assert_eq!(
        String::from_utf8(result)
            .expect("UTF-8")
            .matches(",created,")
            .count(),
        5
    );
    assert!(user(&app.store, &app.acme.id, "v0004").await.is_some());

    // Applying again is refused; the list shows the job.
    let resp = app
        .as_admin(Method::POST, &format!("/imports/{id}/apply"))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 409, "import_not_validated").await;
    let list = get_json(&app, "/imports").await;
    assert_eq!(list["items"][0]["id"], id.as_str());
}

#[tokio::test]
async fn import_routes_refuse_bad_input_and_members() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(Method::POST, "/imports")
        .json(&json!({"mode": "merge", "encoding": "latin1", "extra": 1}))
        .send()
        .await
        .expect("request");
    let body = assert_problem(resp, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(fields, ["mode", "encoding", "extra"]);
    let resp = app
        .as_admin(Method::GET, "/imports/01JAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .expect("request");
    assert_problem(resp, 404, "import_not_found").await;
    for (path, field) in [
        ("/imports?limit=0", "limit"),
        ("/imports/template.csv?headers=fr", "headers"),
        ("/imports/template.csv?lang=ja", "lang"),
        ("/users/export.csv?encoding=latin1", "encoding"),
    ] {
        let resp = app
            .as_admin(Method::GET, path)
            .send()
            .await
            .expect("request");
        let body = assert_problem(resp, 400, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    let member = app
        .create_user(json!({"login_id": "m", "email": "m@acme.example", "name": "M"}))
        .await;
    let member_id =
        rollcall::domain::UserId::parse(member["id"].as_str().expect("id")).expect("id");
    let token = rollcall_e2e::token(&app.acme.id, &member_id, rollcall::domain::Role::Member);
    for (method, path) in [
        (Method::GET, "/imports"),
        (Method::GET, "/imports/template.csv"),
        (Method::GET, "/users/export.csv"),
    ] {
        let resp = app
            .request(method, path, &token)
            .send()
            .await
            .expect("request");
        assert_problem(resp, 403, "forbidden").await;
    }
}

#[tokio::test]
async fn export_then_edit_then_reimport_round_trips_and_neutralises_formulas() {
    let app = spawn_app().await;
    let importer = app.importer();
    // A window ending a year from now, on the minute (the export writes minutes).
    let till = (app.store.clock().now() + chrono::Duration::days(365))
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap();
    app.create_user(json!({
        "login_id": "formula", "email": "formula@acme.example", "name": "=SUM(A1)",
        "department": "+81", "notes": "@home", "groups": ["-x", "髙"],
        "valid_till": till.to_rfc3339()
    }))
    .await;
    for n in 0..3 {
        app.create_user(json!({"login_id": format!("u{n}"), "email": format!("u{n}@acme.example"), "name": format!("髙橋 {n}")}))
            .await;
    }
    // reqwest follows the redirect to the presigned link (without the bearer token).
    let resp = app
        .as_admin(Method::GET, "/users/export.csv")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "the redirect is followed");
    let text = resp.text().await.expect("body");
    assert!(text.starts_with("\u{feff}operation,login_id,name,email,role,app_roles,groups,"));
    let till_cell = till.format("%Y/%m/%d %H:%M");
    assert!(text.contains(&format!("EDIT,formula,'=SUM(A1),formula@acme.example,member,,'-x|髙,,'+81,,'@home,,,0,,{till_cell},0\r\n")), "{text}");
    assert_eq!(text.lines().count(), 6, "header, the admin and four users");

    // Unchanged, as the admin who exported it, it re-imports as unchanged rows: the admin's
    // own row included.
    let id = upload_through_api(&app, "apply", text.clone().into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(job["counts"]["unchanged"], 5, "{job}");

    // A row that would change the uploader's own account is refused, naming what it changes.
    let demoted = text
        .replace("EDIT,admin,Admin,", "EDIT,admin,Admin 2,")
        .replace("admin@acme.example,admin,", "admin@acme.example,member,");
    let id = upload_through_api(&app, "apply", demoted.into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    let url = job["reports"]["validation_json"]
        .as_str()
        .expect("the validation report");
    let validation: serde_json::Value =
        serde_json::from_slice(&fetch(&app, url).await).expect("JSON report");
    let own = validation["row_results"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["login_id"] == "admin"))
        .expect("the admin's row");
    assert_eq!(own["problems"][0]["code"], "own_account", "{validation}");
    assert!(
        own["problems"][0]["message_en"]
            .as_str()
            .is_some_and(|m| m.contains("would change: name, role")),
        "{validation}"
    );

    let without_admin: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("EDIT,admin,"))
        .collect();
    let id = upload_through_api(&app, "apply", without_admin.clone().into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(job["counts"]["unchanged"], 4, "{job}");
    let formula = user(&app.store, &app.acme.id, "formula")
        .await
        .expect("user");
    assert_eq!(
        (formula.profile.name.as_str(), formula.version),
        ("=SUM(A1)", 1)
    );

    // Edited in a spreadsheet: one department changed, one row deleted.
    let edited = without_admin
        .replace(
            "EDIT,u1,髙橋 1,u1@acme.example,member,,,,,",
            "EDIT,u1,髙橋 1,u1@acme.example,member,,,,開発部,",
        )
        .replace("EDIT,u2,", "DELETE,u2,");
    let id = upload_through_api(&app, "apply", edited.into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(
        (
            job["counts"]["updated"].as_u64(),
            job["counts"]["deleted"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let u1 = user(&app.store, &app.acme.id, "u1").await.expect("u1");
    assert_eq!(
        u1.profile.department.as_ref().map(|d| d.as_str()),
        Some("開発部")
    );
    assert!(user(&app.store, &app.acme.id, "u2").await.is_none());

    // Shift_JIS export for Excel.
    let resp = app
        .as_admin(Method::GET, "/users/export.csv?encoding=shift_jis")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.expect("body");
    let decoded =
        rollcall::csv::encoding::decode(&bytes, EncodingChoice::ShiftJis).expect("Shift_JIS");
    assert!(decoded.text.contains("EDIT,u1,髙橋 1,"));
}

#[tokio::test]
async fn the_template_lists_every_column_and_a_bad_file_is_reported_by_line() {
    let app = spawn_app().await;
    let importer = app.importer();
    let resp = app
        .as_admin(Method::GET, "/imports/template.csv?headers=ja")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let template = resp.text().await.expect("body");
    assert!(template.starts_with("\u{feff}操作,ログインID,氏名,メールアドレス,"));
    let id = upload_through_api(&app, "apply", template.clone().into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid");
    assert_eq!(job["error"]["code"], "file_no_rows");

    // A formula in a refused cell comes out neutralised in the report.
    let bad = format!("{template}NEW,=1+1,Name,bad-address,,,,,,,,,,,\r\n");
    let id = upload_through_api(&app, "validate", bad.into_bytes()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid");
    let report = String::from_utf8(
        fetch(
            &app,
            job["reports"]["validation_csv"].as_str().expect("link"),
        )
        .await,
    )
    .expect("UTF-8");
    assert!(
        report.contains("\r\n2,NEW,'=1+1,error,ログインID,"),
        "{report}"
    );
    assert!(
        report.contains("\r\n2,NEW,'=1+1,error,メールアドレス,"),
        "{report}"
    );
}

/// Runs a sample event of `events/` through the Lambda entry path (JSON in, the function's
/// event type out), with the app's bucket in place of the sample's.
async fn run_sample(app: &TestApp, importer: &Importer, file: &str, bucket: &str) -> BatchResponse {
    let raw = std::fs::read_to_string(rollcall_e2e::workspace_root().join("events").join(file))
        .expect("reading the sample event");
    let raw = raw.replace(bucket, app.bucket.name());
    let event: SqsEvent = serde_json::from_str(&raw).expect("the sample is an SQS event");
    deliver(importer, LambdaEvent::new(event, Context::default())).await
}

/// The job the samples name: tenant `demo`, job `01JD0000000000000000000000`.
async fn sample_job(app: &TestApp, mode: ImportMode) -> ImportJob {
    let demo = app.add_tenant("demo").await;
    let mut job = ImportJob::new(
        demo.id.clone(),
        demo.admin.id,
        mode,
        EncodingChoice::Auto,
        app.store.clock().now(),
    );
    job.id = rollcall::domain::ImportId::parse("01JD0000000000000000000000").expect("id");
    app.store
        .create_import(&job)
        .await
        .expect("creating the job");
    app.bucket
        .put(&job.upload_key(), "text/csv", seed_file("demo", 3))
        .await
        .expect("uploading");
    job
}

#[tokio::test]
async fn the_sample_events_run_through_the_lambda_entry_path() {
    for (file, bucket) in [
        (
            "bulk-import-s3-upload.json",
            "rollcall-prod-123456789012-ap-northeast-1",
        ),
        ("bulk-import-s3-upload-moto.json", "rollcall-local"),
    ] {
        let app = spawn_app().await;
        let importer = app.importer();
        let created = sample_job(&app, ImportMode::Apply).await;
        assert_eq!(
            run_sample(&app, &importer, file, bucket).await,
            BatchResponse::default()
        );
        let done = job(&app.store, &created).await;
        assert_eq!(
            done.status,
            ImportStatus::Applied,
            "{file}: {:?}",
            done.error
        );
        assert_eq!(done.counts.map(|c| c.created), Some(3), "{file}");
    }

    // The API's apply request, for a job validated first.
    let app = spawn_app().await;
    let importer = app.importer();
    let created = sample_job(&app, ImportMode::Validate).await;
    run_sample(
        &app,
        &importer,
        "bulk-import-s3-upload-moto.json",
        "rollcall-local",
    )
    .await;
    let mut validated = job(&app.store, &created).await;
    assert_eq!(validated.status, ImportStatus::Validated);
    validated.mode = ImportMode::Apply;
    validated.status = ImportStatus::Waiting;
    app.store.save_import(&mut validated).await.expect("saving");
    assert_eq!(
        run_sample(&app, &importer, "bulk-import-apply.json", "-").await,
        BatchResponse::default()
    );
    assert_eq!(
        job(&app.store, &created).await.status,
        ImportStatus::Applied
    );
}

#[tokio::test]
async fn messages_for_no_job_or_another_bucket_are_dropped_and_the_job_is_untouched() {
    let app = spawn_app().await;
    let importer = app.importer();
    // No such job: refused and dropped (not redelivered).
    assert_eq!(
        run_sample(
            &app,
            &importer,
            "bulk-import-s3-upload.json",
            "rollcall-prod-123456789012-ap-northeast-1"
        )
        .await,
        BatchResponse::default()
    );
    let created = sample_job(&app, ImportMode::Apply).await;
    // Another bucket's upload: refused.
    assert_eq!(
        run_sample(&app, &importer, "bulk-import-s3-upload.json", "-").await,
        BatchResponse::default()
    );
    assert_eq!(
        job(&app.store, &created).await.status,
        ImportStatus::Waiting
    );
    // A key that is not a job's upload (another tenant's prefix shape): refused.
    let body = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": app.bucket.name()},
        "object": {"key": "imports/demo/../acme/01JD0000000000000000000000.csv", "eTag": "x"}
    }}]});
    let event = rollcall_e2e::sqs_event("m", &body.to_string());
    assert_eq!(
        deliver(&importer, LambdaEvent::new(event, Context::default())).await,
        BatchResponse::default()
    );
    assert_eq!(
        job(&app.store, &created).await.status,
        ImportStatus::Waiting
    );
}

/// A job of three NEW rows (login ids `{prefix}0000`…), validated through the API and the
/// queue; returns its id.
async fn validated_job(app: &TestApp, importer: &Importer, prefix: &str) -> String {
    drain_queue(app, importer).await;
    let rows: Vec<[String; 6]> = (0..3).map(|n| new_row(prefix, "acme", n)).collect();
    let id = upload_through_api(app, "validate", utf8_file(HEADER, &rows)).await;
    drain_queue(app, importer).await;
    assert_eq!(
        get_json(app, &format!("/imports/{id}")).await["status"],
        "validated"
    );
    id
}

#[tokio::test]
async fn an_apply_that_could_not_be_queued_or_whose_file_expired_says_so() {
    let app = spawn_app().await;
    let importer = app.importer();
    let id = validated_job(&app, &importer, "q").await;

    // The queue refuses the apply request: the job is validated again, and can be applied.
    rollcall_e2e::inject_fault("/", &id, 400, "InvalidParameterValue", 1).await;
    let resp = app
        .as_admin(Method::POST, &format!("/imports/{id}/apply"))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 500, "internal").await;
    assert_eq!(
        get_json(&app, &format!("/imports/{id}")).await["status"],
        "validated"
    );

    // The upload is gone (the bucket's lifecycle): the job is refused, naming why.
    app.bucket
        .client()
        .delete_object()
        .bucket(app.bucket.name())
        .key(format!("imports/acme/{id}.csv"))
        .send()
        .await
        .expect("deleting the upload");
    let resp = app
        .as_admin(Method::POST, &format!("/imports/{id}/apply"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 202);
    assert_eq!(drain_queue(&app, &importer).await, 1);
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["error"]["code"], "file_missing");
    assert!(user(&app.store, &app.acme.id, "q0000").await.is_none());
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let importer = Importer::new(
        app.store.clone(),
        app.bucket.clone(),
        ImportConfig {
            max_bytes: 1_000,
            ..ImportConfig::default()
        },
    );
    let rows: Vec<[String; 6]> = (0..50).map(|n| new_row("s", "acme", n)).collect();
    let bytes = utf8_file(HEADER, &rows);
    assert!(bytes.len() > 1_000);
    let (created, etag) = upload(&app, &app.acme, ImportMode::Apply, bytes).await;
    deliver(&importer, s3_event(&app, &created, &etag)).await;
    let done = job(&app.store, &created).await;
    assert_eq!(done.status, ImportStatus::Invalid);
    let error = done.error.expect("an error");
    assert_eq!(error.code, "file_too_large");
    assert!(
        error.message_en.contains("1000 bytes"),
        "{}",
        error.message_en
    );
    assert_eq!(done.rows, None, "the rows were never read");
}

/// A clock that moves forward by `step` every time it is read: a job that reads it as often as
/// it writes sees time pass as it works, however fast the machine.
struct SteppingClock {
    now: std::sync::Mutex<chrono::DateTime<chrono::Utc>>,
    step: chrono::Duration,
}

impl rollcall::clock::Clock for SteppingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let mut t = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *t += self.step;
        *t
    }
}

fn leased_importer(app: &TestApp, lease: std::time::Duration) -> Importer {
    Importer::new(
        app.store.clone(),
        app.bucket.clone(),
        ImportConfig {
            lock_lease: lease,
            ..ImportConfig::default()
        },
    )
}

#[tokio::test]
async fn a_dead_jobs_lease_expires_and_the_job_then_finishes() {
    let clock = std::sync::Arc::new(rollcall::clock::ManualClock::new(chrono::Utc::now()));
    let app = rollcall_e2e::spawn_app_with_clock(clock.clone()).await;
    let lease = std::time::Duration::from_secs(120);
    let importer = leased_importer(&app, lease);
    // A job that dies after its first chunk keeps the tenant locked until its lease ends.
    let rows: Vec<[String; 6]> = (0..100).map(|n| new_row("l", "acme", n)).collect();
    let (created, etag) =
        upload(&app, &app.acme, ImportMode::Apply, utf8_file(HEADER, &rows)).await;
    importer.failpoints().arm(Stage::MidApply, 1);
    deliver(&importer, s3_event(&app, &created, &etag)).await;
    let write = || async {
        app.as_admin(Method::POST, "/users")
            .json(&json!({"login_id": "w", "email": "w@acme.example", "name": "W"}))
            .send()
            .await
            .expect("request")
    };
    clock.advance(chrono::Duration::seconds(119));
    assert_problem(write().await, 409, "import_in_progress").await;
    clock.advance(chrono::Duration::seconds(2));
    assert_eq!(write().await.status(), 201, "the dead job's lease ran out");

    // The job comes back, takes the lock again and finishes.
    let again = deliver(&importer, s3_event(&app, &created, &etag)).await;
    assert_eq!(again, BatchResponse::default());
    let done = job(&app.store, &created).await;
    assert_eq!(done.status, ImportStatus::Applied, "{:?}", done.error);
}

#[tokio::test]
async fn a_live_job_renews_its_lease_and_outlives_many_leases() {
    let start = chrono::Utc::now();
    let clock = std::sync::Arc::new(SteppingClock {
        now: std::sync::Mutex::new(start),
        step: chrono::Duration::milliseconds(250),
    });
    let app = rollcall_e2e::spawn_app_with_clock(clock.clone()).await;
    // Every chunk reads the clock a few times, so a 2,000-row job lives through many
    // two-second leases: without renewals its chunks would find the lock expired.
    let lease = std::time::Duration::from_secs(2);
    let importer = leased_importer(&app, lease);
    let rows: Vec<[String; 6]> = (0..2_000).map(|n| new_row("m", "acme", n)).collect();
    let (created, etag) =
        upload(&app, &app.acme, ImportMode::Apply, utf8_file(HEADER, &rows)).await;
    let began = rollcall::clock::Clock::now(clock.as_ref());
    assert_eq!(
        deliver(&importer, s3_event(&app, &created, &etag)).await,
        BatchResponse::default()
    );
    let done = job(&app.store, &created).await;
    assert_eq!(done.status, ImportStatus::Applied, "{:?}", done.error);
    let lived = rollcall::clock::Clock::now(clock.as_ref()) - began;
    assert!(
        lived > chrono::Duration::from_std(lease * 10).unwrap(),
        "the job lived {lived} by its clock: more than ten leases"
    );
}

#[tokio::test]
async fn a_file_replaced_after_validation_is_not_applied() {
    let app = spawn_app().await;
    let importer = app.importer();
    let id = validated_job(&app, &importer, "r").await;
    // The same upload link used again, with other rows: S3 tells the queue, the job refuses it.
    let other: Vec<[String; 6]> = (0..3).map(|n| new_row("x", "acme", n)).collect();
    app.bucket
        .put(
            &format!("imports/acme/{id}.csv"),
            "text/csv",
            utf8_file(HEADER, &other),
        )
        .await
        .expect("uploading again");
    assert_eq!(drain_queue(&app, &importer).await, 1);
    assert_eq!(
        get_json(&app, &format!("/imports/{id}")).await["status"],
        "validated"
    );
    let resp = app
        .as_admin(Method::POST, &format!("/imports/{id}/apply"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 202);
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["error"]["code"], "file_changed");
    assert!(user(&app.store, &app.acme.id, "x0000").await.is_none());
    assert!(user(&app.store, &app.acme.id, "r0000").await.is_none());
}

#[tokio::test]
async fn a_file_may_delete_a_user_and_give_their_email_and_login_id_to_new_users() {
    let app = spawn_app().await;
    let importer = app.importer();
    for login in ["exist1", "exist2"] {
        app.create_user(
            json!({"login_id": login, "email": format!("{login}@example.com"), "name": login}),
        )
        .await;
    }
    let file = "operation,login_id,name,email\r\n\
                DELETE,exist1,,\r\n\
                NEW,newbie,New Person,exist1@example.com\r\n\
                DELETE,exist2,,\r\n\
                NEW,exist2,Second Life,second@example.com\r\n";
    let id = upload_through_api(&app, "apply", file.as_bytes().to_vec()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(
        (&job["counts"]["created"], &job["counts"]["deleted"]),
        (&json!(2), &json!(2)),
        "{job}"
    );
    let newbie = user(&app.store, &app.acme.id, "newbie")
        .await
        .expect("newbie");
    assert_eq!(newbie.profile.email.as_str(), "exist1@example.com");
    let reborn = user(&app.store, &app.acme.id, "exist2")
        .await
        .expect("a new exist2");
    assert_eq!(reborn.profile.name.as_str(), "Second Life");
    assert!(user(&app.store, &app.acme.id, "exist1").await.is_none());
    let found = get_json(&app, "/users?email=exist1@example.com").await;
    assert_eq!(found["items"][0]["login_id"], "newbie", "{found}");

    // The other way round (NEW above DELETE) the email is still taken: nothing changes.
    let file = "operation,login_id,name,email\r\n\
                NEW,third,Third,second@example.com\r\n\
                DELETE,exist2,,\r\n";
    let id = upload_through_api(&app, "apply", file.as_bytes().to_vec()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert!(user(&app.store, &app.acme.id, "exist2").await.is_some());
}

#[tokio::test]
async fn a_byte_that_is_not_text_is_named_by_line_and_offset_in_the_job_and_both_reports() {
    let app = spawn_app().await;
    let importer = app.importer();
    // Line 3 holds the first byte of a three-byte UTF-8 character and nothing more (nor is
    // it Shift_JIS: a lead byte followed by a comma).
    let mut file = b"operation,login_id,name,email\r\nNEW,a,A,a@example.com\r\nNEW,b,".to_vec();
    let offset = file.len();
    file.extend_from_slice(b"\xE6,b@example.com\r\n");
    let id = upload_through_api(&app, "validate", file).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    assert_eq!(job["error"]["code"], "file_encoding_unknown", "{job}");
    assert_eq!(job["error"]["line"], 3, "{job}");
    assert_eq!(job["error"]["byte_offset"], offset, "{job}");

    let json_url = job["reports"]["validation_json"].as_str().expect("JSON");
    let report: serde_json::Value =
        serde_json::from_slice(&fetch(&app, json_url).await).expect("JSON report");
    assert_eq!(report["file_problem"]["line"], 3, "{report}");
    assert_eq!(report["file_problem"]["byte_offset"], offset, "{report}");
    let csv_url = job["reports"]["validation_csv"].as_str().expect("CSV");
    let csv = String::from_utf8(fetch(&app, csv_url).await).expect("UTF-8");
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.starts_with("3,")),
        "{csv}"
    );

    // Asked for Shift_JIS, a lead byte at the very end has no trail byte.
    let resp = app
        .as_admin(Method::POST, "/imports")
        .json(&json!({"mode": "validate", "encoding": "shift_jis"}))
        .send()
        .await
        .expect("request");
    let (status, created) = rollcall_e2e::status_and_json(resp).await;
    assert_eq!(status, 201, "{created}");
    let mut sjis =
        encode_shift_jis("operation,login_id,name,email\r\nNEW,c,髙橋,c@example.com\r\n")
            .expect("Shift_JIS");
    let offset = sjis.len();
    sjis.push(0x82);
    let put = app
        .http
        .put(created["upload"]["url"].as_str().expect("url"))
        .body(sjis)
        .send()
        .await
        .expect("upload");
    assert!(put.status().is_success());
    drain_queue(&app, &importer).await;
    let id = created["id"].as_str().expect("id");
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["error"]["code"], "file_encoding_malformed", "{job}");
    assert_eq!(job["error"]["line"], 3, "{job}");
    assert_eq!(job["error"]["byte_offset"], offset, "{job}");
}

#[tokio::test]
async fn only_an_active_admin_may_create_an_import_job() {
    let app = spawn_app().await;
    // An admin who was invited and has not set a password yet.
    let invited = app
        .create_user(json!({"login_id": "new-admin", "email": "new-admin@acme.example", "name": "New Admin", "role": "admin"}))
        .await;
    let id = rollcall::domain::UserId::parse(invited["id"].as_str().expect("id")).expect("id");
    let token = rollcall_e2e::token(&app.acme.id, &id, rollcall::domain::Role::Admin);
    let resp = app
        .request(Method::POST, "/imports", &token)
        .json(&json!({"mode": "apply"}))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 403, "forbidden").await;

    // Suspended, the same.
    let active = app
        .create_user(json!({"login_id": "old-admin", "email": "old-admin@acme.example", "name": "Old Admin", "role": "admin"}))
        .await;
    let old = rollcall::domain::UserId::parse(active["id"].as_str().expect("id")).expect("id");
    let resp = app
        .as_admin(Method::POST, &format!("/users/{old}/suspend"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let token = rollcall_e2e::token(&app.acme.id, &old, rollcall::domain::Role::Admin);
    let resp = app
        .request(Method::POST, "/imports", &token)
        .json(&json!({"mode": "validate"}))
        .send()
        .await
        .expect("request");
    assert_problem(resp, 403, "forbidden").await;
    assert_eq!(
        app.store
            .list_imports(&app.acme.id, 10)
            .await
            .expect("jobs")
            .len(),
        0,
        "no job was created"
    );
}

#[tokio::test]
async fn a_permanent_s3_error_fails_the_job_in_one_delivery_and_a_transient_one_is_retried() {
    let app = spawn_app().await;
    let importer = importer(&app);
    let file = seed_file("acme", 3);

    // S3 refuses the upload for good (access denied): one delivery, and the job says so.
    let (refused, etag) = upload(&app, &app.acme, ImportMode::Apply, file.clone()).await;
    let path = format!("/{}/{}", app.bucket.name(), refused.upload_key());
    rollcall_e2e::inject_fault(&path, "", 403, "AccessDenied", 1).await;
    let response = deliver(&importer, s3_event(&app, &refused, &etag)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a permanent failure is not delivered again: {response:?}"
    );
    let failed = job(&app.store, &refused).await;
    assert_eq!(failed.status, ImportStatus::Failed);
    let error = failed.error.expect("the job says why");
    assert_eq!(error.code, "file_unreadable");
    assert!(
        error.message_en.contains("Nothing was changed"),
        "{error:?}"
    );
    let api = get_json(&app, &format!("/imports/{}", refused.id)).await;
    assert_eq!(api["status"], "failed", "{api}");
    assert_eq!(api["error"]["code"], "file_unreadable", "{api}");
    // The lock is free: the next job runs.
    let (next, etag) = upload(&app, &app.acme, ImportMode::Apply, file.clone()).await;
    let response = deliver(&importer, s3_event(&app, &next, &etag)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(job(&app.store, &next).await.status, ImportStatus::Applied);

    // S3 is unavailable for a while: the message comes back and the job carries on later.
    let beta = app.add_tenant("beta").await;
    let (slow, etag) = upload(&app, &beta, ImportMode::Validate, seed_file("beta", 3)).await;
    let path = format!("/{}/{}", app.bucket.name(), slow.upload_key());
    // More faults than the SDK's own attempts at one delivery.
    rollcall_e2e::inject_fault(&path, "", 503, "SlowDown", 3).await;
    let first = deliver(&importer, s3_event(&app, &slow, &etag)).await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "a transient failure is delivered again"
    );
    let waiting = job(&app.store, &slow).await;
    assert!(
        matches!(
            waiting.status,
            ImportStatus::Waiting | ImportStatus::Validating
        ),
        "{:?}",
        waiting.status
    );
    assert!(waiting.error.is_none());
    let mut deliveries = 1;
    while job(&app.store, &slow).await.status != ImportStatus::Validated {
        assert!(
            deliveries < 4,
            "still not validated after {deliveries} deliveries"
        );
        deliver(&importer, s3_event(&app, &slow, &etag)).await;
        deliveries += 1;
    }
}

#[tokio::test]
async fn an_event_key_that_is_not_utf8_once_decoded_is_dropped_not_guessed() {
    let app = spawn_app().await;
    let importer = importer(&app);
    let body = json!({"Records": [{
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": app.bucket.name()},
            "object": {"key": "imports%2Facme%2F%FF%FE.csv", "eTag": "x"}
        }
    }]});
    let event = rollcall_e2e::sqs_event("bad-key", &body.to_string());
    assert_eq!(
        deliver(&importer, LambdaEvent::new(event, Context::default())).await,
        BatchResponse::default(),
        "refused for good: not delivered again"
    );
    assert!(
        app.store
            .list_imports(&app.acme.id, 10)
            .await
            .expect("jobs")
            .is_empty()
    );
}

#[tokio::test]
async fn login_hours_come_in_japanese_from_a_csv_and_go_out_canonical() {
    let app = spawn_app().await;
    let importer = app.importer();
    let file = "操作,ログインID,氏名,メールアドレス,ログイン可能時間\r\n\
                NEW,kinmu,勤務 太郎,kinmu@acme.example,月〜金 ０８:００-２０:００\r\n\
                NEW,yakin,夜勤 花子,yakin@acme.example,金・土 22:00-06:00\r\n";
    let id = upload_through_api(&app, "apply", file.as_bytes().to_vec()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "applied", "{job}");
    let kinmu = user(&app.store, &app.acme.id, "kinmu")
        .await
        .expect("created");
    assert_eq!(
        kinmu.profile.login_hours.map(|h| h.to_string()).as_deref(),
        Some("Mon-Fri 08:00-20:00")
    );
    let export = app
        .as_admin(Method::GET, "/users/export.csv")
        .send()
        .await
        .expect("request");
    let url = export.url().clone();
    let text = String::from_utf8(fetch(&app, url.as_str()).await).expect("UTF-8");
    let header = text.lines().next().expect("a header");
    assert!(header.contains(",login_hours,"), "{header}");
    assert!(text.contains(",Mon-Fri 08:00-20:00,"), "{text}");
    assert!(text.contains(",\"Fri,Sat 22:00-06:00\","), "{text}");

    // A cell that is not login hours is named by line and column.
    let bad = "operation,login_id,name,email,login_hours\r\nNEW,bad,Bad,bad@acme.example,Mon-Fry 08:00-20:00\r\n";
    let id = upload_through_api(&app, "validate", bad.as_bytes().to_vec()).await;
    drain_queue(&app, &importer).await;
    let job = get_json(&app, &format!("/imports/{id}")).await;
    assert_eq!(job["status"], "invalid", "{job}");
    let report = String::from_utf8(
        fetch(
            &app,
            job["reports"]["validation_json"].as_str().expect("link"),
        )
        .await,
    )
    .expect("UTF-8");
    assert!(report.contains("login_hours_invalid"), "{report}");
    assert!(report.contains("\"column\":\"login_hours\""), "{report}");
}

/// Chunk transactions the test has DynamoDB throttle.
const THROTTLED: u32 = 40;

#[tokio::test]
async fn a_throttled_table_slows_the_chunks_and_the_file_still_applies_exactly_once() {
    let app = spawn_app().await;
    let tenant = app.add_tenant("throttled").await;
    let importer = importer(&app);
    let rows: Vec<[String; 6]> = (0..300).map(|n| new_row("t", "throttled", n)).collect();
    let (created, etag) = upload(&app, &tenant, ImportMode::Apply, utf8_file(HEADER, &rows)).await;
    // Each chunk's transaction carries its journal entry, keyed by the job: the next 40 of them
    // are throttled, more than the SDK's three attempts for each of the ten row chunks sent at
    // once, so they reach the apply's pace (half as many in flight, a back-off, the chunk
    // again).
    rollcall_e2e::inject_dynamodb_fault(
        "TransactWriteItems",
        &format!("JOURNAL#throttled#{}", created.id),
        "ThrottlingException",
        THROTTLED,
    )
    .await;
    app.counter.reset();
    let response = deliver(&importer, s3_event(&app, &created, &etag)).await;
    assert_eq!(
        response,
        BatchResponse::default(),
        "retried within the delivery"
    );
    let done = job(&app.store, &created).await;
    assert_eq!(done.status, ImportStatus::Applied, "{:?}", done.error);
    assert_eq!(done.journal.applied_rows, 300);
    let chunks = u64::from(done.journal.chunks + done.journal.invitation_chunks);
    let sent = app.counter.snapshot()["TransactWriteItems"];
    // The step to applying, every chunk once, and every throttled attempt.
    assert_eq!(
        sent,
        1 + chunks + u64::from(THROTTLED),
        "{sent} transactions for {chunks} chunks"
    );
    for n in [0, 150, 299] {
        let u = user(&app.store, &tenant.id, &format!("t{n:04}"))
            .await
            .expect("created");
        assert_eq!(invitations(&app.store, &u).await, 1, "one invitation each");
    }
    let (_, seats) = app
        .store
        .tenant_and_seats(&tenant.id)
        .await
        .expect("tenant");
    assert_eq!(
        seats.active_or_invited, 301,
        "the admin and 300 invited, once"
    );
}
