//! Invitations end to end: the API writes the outbox item, the table's stream carries it through
//! the stand-in event source mapping (the template's filter, batch size and retry rules) into
//! send-invitations, which mails through moto's SES; the test reads the mail back from moto,
//! opens its link and sets a password through the API.
//!
//! Over 600 lines: one file per flow keeps the invitation's end-to-end tests together.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, TimeZone as _, Utc};
use lambda_runtime::{Context, LambdaEvent};
use reqwest::Method;
use rollcall::clock::{Clock, ManualClock};
use rollcall::domain::InvitationStatus;
use rollcall::domain::{InvitationToken, UserId};
use rollcall_cli::mail::invitation_api_url;
use rollcall_e2e::{
    TestApp, assert_problem, inject_ses_fault, mail_to, spawn_app, spawn_app_with_clock,
    status_and_json, unique_address, workspace_root,
};
use send_invitations::{Incoming, Outgoing, SweepReport, SweepRequest};
use serde_json::{Value, json};

const GOOD_PASSWORD: &str = "Sakura#2026";

/// Creates a user with a unique address; returns (id, address).
async fn invite(app: &TestApp, tag: &str, extra: Value) -> (String, String) {
    let email = unique_address(tag);
    let mut body = json!({"login_id": tag, "email": email, "name": format!("{tag} san")});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let created = app.create_user(body).await;
    (created["id"].as_str().unwrap().to_owned(), email)
}

/// The one link in the newest mail to `address`.
async fn newest_link(address: &str) -> String {
    let mail = mail_to(address).await;
    let last = mail
        .last()
        .unwrap_or_else(|| panic!("no mail to {address}"));
    let links = last.links();
    assert_eq!(links.len(), 1, "{}", last.body);
    links[0].clone()
}

async fn check(app: &TestApp, link: &str) -> (u16, Value) {
    status_and_json(app.http.get(invitation_api_url(link)).send().await.unwrap()).await
}

async fn accept(app: &TestApp, link: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/accept", invitation_api_url(link)))
        .json(&json!({ "password": password }))
        .send()
        .await
        .unwrap()
}

async fn user_json(app: &TestApp, id: &str) -> Value {
    let (status, body) = status_and_json(
        app.as_admin(Method::GET, &format!("/users/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn creating_a_user_sends_exactly_one_mail_whose_link_sets_the_password() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "hanako", json!({"language": "ja"})).await;

    let report = poller.poll(&sender).await.unwrap();
    assert_eq!(
        report.delivered, 1,
        "only the INVITE record passes the filter: {report:?}"
    );
    assert!(
        report.read > 1,
        "user, claims and the invitation were all on the stream"
    );

    let mail = mail_to(&email).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].subject, "【acme Inc.】アカウントへの招待");
    assert_eq!(mail[0].source, rollcall_e2e::TEST_SENDER);
    let link = newest_link(&email).await;
    assert!(
        link.starts_with(&format!("{}/t/acme/invitations/", app.base)),
        "{link}"
    );
    assert!(
        mail[0].body.contains("hanako"),
        "the login id is in the mail"
    );

    // Checking the link twice does not use it.
    for _ in 0..2 {
        let (status, body) = check(&app, &link).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "valid");
        assert_eq!(body["login_id"], "hanako");
        assert_eq!(body["tenant_name"], "acme Inc.");
        assert_eq!(body["password_rules"]["min_length"], 8);
    }
    let user = user_json(&app, &id).await;
    assert_eq!(user["status"], "invited");
    assert_eq!(user["invitation"]["status"], "sent");
    assert!(user["invitation"]["expires_at"].is_string());

    let (status, body) = status_and_json(accept(&app, &link, GOOD_PASSWORD).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "active");
    let user = user_json(&app, &id).await;
    assert_eq!(user["status"], "active");
    assert_eq!(user["invitation"]["status"], "accepted");
    let stored = app
        .store
        .get_user(&app.acme.id, &UserId::parse(&id).unwrap())
        .await
        .unwrap();
    let hash = stored.password_hash.expect("a hash is stored");
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(hash.verify(GOOD_PASSWORD));

    // The link is burnt; nothing more is sent.
    assert_problem(
        accept(&app, &link, GOOD_PASSWORD).await,
        409,
        "invitation_used",
    )
    .await;
    let (_, body) = check(&app, &link).await;
    assert_eq!(body["status"], "used");
    assert!(
        body.get("login_id").is_none(),
        "a used link reveals no login id"
    );
    assert_eq!(poller.poll(&sender).await.unwrap().delivered, 0);
    assert_eq!(mail_to(&email).await.len(), 1);
}

#[tokio::test]
async fn the_same_stream_batch_delivered_twice_sends_one_mail() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (_, email) = invite(&app, "twice", json!({})).await;
    let (_, records) = poller.read().await.unwrap();
    assert_eq!(records.len(), 1);

    for _ in 0..2 {
        let report = poller
            .deliver_records(&sender, records.clone())
            .await
            .unwrap();
        assert_eq!(report.invocations, 1, "no item failures, no retries");
    }
    assert_eq!(mail_to(&email).await.len(), 1);
}

#[tokio::test]
async fn ses_throttling_is_retried_until_exactly_one_mail_is_sent() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "throttled", json!({})).await;
    // More failures than the SDK's own three attempts: the record must come back through the
    // batch-item-failure path too.
    inject_ses_fault(&email, 429, "TooManyRequestsException", 5).await;

    let report = poller.poll(&sender).await.unwrap();
    assert!(report.invocations >= 2, "the batch was retried: {report:?}");
    assert_eq!(report.dropped, 0);
    assert_eq!(mail_to(&email).await.len(), 1);
    let user = user_json(&app, &id).await;
    assert_eq!(user["invitation"]["status"], "sent");
    assert_eq!(user["invitation"]["attempts"], 2);
    assert!(user["invitation"]["failure"].is_null(), "{user}");
}

#[tokio::test]
async fn a_permanent_ses_refusal_marks_the_invitation_failed_with_its_reason() {
    let app = spawn_app().await;
    let sender = app.sender_from("not-verified@nowhere.example").await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "rejected", json!({})).await;

    let report = poller.poll(&sender).await.unwrap();
    assert_eq!(
        report.invocations, 1,
        "a permanent failure is not retried: {report:?}"
    );
    assert!(mail_to(&email).await.is_empty());
    let user = user_json(&app, &id).await;
    assert_eq!(user["invitation"]["status"], "failed");
    assert_eq!(user["invitation"]["failure"]["code"], "MessageRejected");
    assert!(
        user["invitation"]["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not verified")),
        "{user}"
    );

    // A resend from a working sender gets through.
    let resp = app
        .as_admin(Method::POST, &format!("/users/{id}/invitation"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    poller.poll(&app.sender().await).await.unwrap();
    assert_eq!(mail_to(&email).await.len(), 1);
}

#[tokio::test]
async fn an_expired_link_says_so_and_the_sweep_marks_it_expired() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "late", json!({})).await;
    poller.poll(&sender).await.unwrap();
    let link = newest_link(&email).await;
    // 72 hours from 2026-11-20 01:00 UTC is 2026-11-23 10:00 in Tokyo.
    assert!(
        mail_to(&email).await[0]
            .body
            .contains("2026年11月23日 10:00 (JST)")
    );

    clock.advance(Duration::hours(72) - Duration::milliseconds(1));
    assert_eq!(check(&app, &link).await.1["status"], "valid");
    clock.advance(Duration::milliseconds(1));
    let (status, body) = check(&app, &link).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("expired")));
    assert_eq!(body["code"], "invitation_expired");
    assert_problem(
        accept(&app, &link, GOOD_PASSWORD).await,
        410,
        "invitation_expired",
    )
    .await;
    assert_eq!(
        user_json(&app, &id).await["invitation"]["status"],
        "expired"
    );

    let report = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    let again = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(
        again.expired, 0,
        "an expired invitation leaves the due index"
    );
}

#[tokio::test]
async fn a_resend_revokes_the_older_link_and_is_limited_to_five_an_hour() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "again", json!({})).await;
    poller.poll(&sender).await.unwrap();
    let first = newest_link(&email).await;

    let resend = || async {
        app.as_admin(Method::POST, &format!("/users/{id}/invitation"))
            .send()
            .await
            .unwrap()
    };
    let (status, body) = status_and_json(resend().await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["invitation"]["trigger"], "resend");
    assert_eq!(body["invitation"]["status"], "pending");
    poller.poll(&sender).await.unwrap();
    let second = newest_link(&email).await;
    assert_ne!(first, second);

    let (_, old) = check(&app, &first).await;
    assert_eq!(old["status"], "revoked");
    assert_problem(
        accept(&app, &first, GOOD_PASSWORD).await,
        410,
        "invitation_revoked",
    )
    .await;

    for _ in 0..4 {
        assert_eq!(resend().await.status(), 202);
    }
    let limited = resend().await;
    let retry_after: i64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_problem(limited, 429, "too_many_resends").await;
    clock.advance(Duration::hours(1));
    assert_eq!(resend().await.status(), 202, "the hour has passed");

    poller.poll(&sender).await.unwrap();
    let newest = newest_link(&email).await;
    // Six more invitations were queued, but each superseded the one before it before the stream
    // got there: only the newest is mailed.
    assert_eq!(mail_to(&email).await.len(), 3);
    assert_eq!(check(&app, &second).await.1["status"], "revoked");
    let (status, _) = status_and_json(accept(&app, &newest, GOOD_PASSWORD).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_not_found() {
    let app = spawn_app().await;
    let unknown = InvitationToken::mint().unwrap();
    for token in [unknown.expose(), "short", "%00"] {
        let link = format!("{}/invitations/{token}", app.base);
        assert_problem(
            app.http.get(&link).send().await.unwrap(),
            404,
            "invitation_not_found",
        )
        .await;
        assert_problem(
            accept(&app, &link, GOOD_PASSWORD).await,
            404,
            "invitation_not_found",
        )
        .await;
    }
}

#[tokio::test]
async fn each_password_rule_is_enforced_and_every_broken_rule_is_listed() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    // A login id that itself meets every rule, so the login-id rule can be broken alone.
    let (_, email) = invite(&app, "Aa1.aaaa", json!({})).await;
    poller.poll(&sender).await.unwrap();
    let link = newest_link(&email).await;

    let cases: &[(&str, &str)] = &[
        ("Aa1!aaa", "password_too_short"),
        (&format!("Aa1!{}", "a".repeat(252)), "password_too_long"),
        ("aa1!aaaa", "password_needs_upper"),
        ("AA1!AAAA", "password_needs_lower"),
        ("Aab!aaaa", "password_needs_digit"),
        ("Aa1aaaaa", "password_needs_symbol"),
        ("Aa1!aaaaあ", "password_disallowed_character"),
        ("aA1.AAAA", "password_same_as_login_id"),
    ];
    for (password, code) in cases {
        let resp = app
            .http
            .post(format!("{}/accept", invitation_api_url(&link)))
            .header("accept-language", "ja")
            .json(&json!({ "password": password }))
            .send()
            .await
            .unwrap();
        let body = assert_problem(resp, 422, "password_rejected").await;
        assert_eq!(
            body["instance"], "/invitations/{token}/accept",
            "no token in problems"
        );
        let codes: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, vec![*code], "{password:?}: {body}");
        assert_eq!(body["errors"][0]["field"], "password");
        assert!(
            !body["errors"][0]["message"].as_str().unwrap().is_ascii(),
            "the message is in Japanese: {body}"
        );
    }

    let body = assert_problem(accept(&app, &link, "x").await, 422, "password_rejected").await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 4, "{body}");
    // Failed attempts do not use the link.
    let (status, _) = status_and_json(accept(&app, &link, GOOD_PASSWORD).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn changing_the_email_sends_a_new_invitation_and_revokes_the_old_link() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, old_email) = invite(&app, "moving", json!({})).await;
    poller.poll(&sender).await.unwrap();
    let old_link = newest_link(&old_email).await;

    let new_email = unique_address("moved");
    let (status, body) = status_and_json(
        app.as_admin(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({ "email": new_email }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["invitation"]["trigger"], "email_changed");
    poller.poll(&sender).await.unwrap();

    assert_eq!(
        mail_to(&old_email).await.len(),
        1,
        "nothing more to the old address"
    );
    assert_eq!(mail_to(&new_email).await.len(), 1);
    assert_eq!(check(&app, &old_link).await.1["status"], "revoked");
    let new_link = newest_link(&new_email).await;
    let (status, _) = status_and_json(accept(&app, &new_link, GOOD_PASSWORD).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn names_are_escaped_in_the_mail_and_line_breaks_never_reach_it() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (_, email) = invite(
        &app,
        "escaped",
        json!({"name": "<script>alert('x')</script> & Co", "language": "en"}),
    )
    .await;
    poller.poll(&sender).await.unwrap();
    let mail = &mail_to(&email).await[0];
    assert!(!mail.body.contains("<script>"), "{}", mail.body);
    assert!(
        mail.body
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co")
    );
    assert!(!mail.subject.contains(['\r', '\n']));

    // A name with a line break is refused at the edge, so it can't reach a header at all.
    let resp = app
        .as_admin(Method::POST, "/users")
        .json(&json!({"login_id": "crlf", "email": unique_address("crlf"),
                      "name": "Evil\r\nBcc: victim@example.com"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "name");
}

#[tokio::test]
async fn the_sweep_sends_what_the_stream_missed_and_a_late_stream_sends_nothing_more() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    let sender = app.sender().await;
    let (_, email) = invite(&app, "missed", json!({})).await;

    let early = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(
        early.sent, 0,
        "younger than five minutes: left to the stream"
    );
    clock.advance(Duration::minutes(5));
    let report = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(mail_to(&email).await.len(), 1);

    let mut poller = app.poller().await;
    assert_eq!(poller.poll(&sender).await.unwrap().delivered, 1);
    assert_eq!(
        mail_to(&email).await.len(),
        1,
        "the late record finds it sent"
    );
}

#[tokio::test]
async fn invitations_of_deleted_or_suspended_users_are_revoked_not_sent() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (gone, gone_email) = invite(&app, "gone", json!({})).await;
    let (paused, paused_email) = invite(&app, "paused", json!({})).await;
    let resp = app
        .as_admin(Method::DELETE, &format!("/users/{gone}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .as_admin(Method::POST, &format!("/users/{paused}/suspend"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    poller.poll(&sender).await.unwrap();
    assert!(mail_to(&gone_email).await.is_empty());
    assert!(mail_to(&paused_email).await.is_empty());
    assert_eq!(
        user_json(&app, &paused).await["invitation"]["status"],
        "revoked"
    );
    let resp = app
        .as_admin(Method::POST, &format!("/users/{paused}/invitation"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "not_invitable").await;
}

#[tokio::test]
async fn the_sample_events_run_through_the_lambda_entry_path() {
    let app = spawn_app().await;
    let sender = app.sender().await;
    let (id, email) = invite(&app, "suzuki", json!({})).await;
    let invitation = user_json(&app, &id).await["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read =
        |name: &str| std::fs::read_to_string(workspace_root().join("events").join(name)).unwrap();
    let raw = read("send-invitations-stream.json")
        .replace("REPLACE_WITH_TENANT", app.acme.id.as_str())
        .replace("REPLACE_WITH_USER", &id)
        .replace("REPLACE_WITH_INVITATION", &invitation);
    let event: Incoming = serde_json::from_str(&raw).expect("a DynamoDB stream event");
    let out = sender
        .function_handler(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let out = serde_json::to_value(&out).unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(mail_to(&email).await.len(), 1);

    let sweep: Incoming = serde_json::from_str(&read("send-invitations-sweep.json")).unwrap();
    let out = sender
        .function_handler(LambdaEvent::new(sweep, Context::default()))
        .await
        .unwrap();
    assert!(
        matches!(out, Outgoing::Sweep(ref r) if r.sent == 0),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_sender_that_dies_mid_send_is_taken_over_when_its_lease_runs_out() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let (id, email) = invite(&app, "orphan", json!({})).await;

    // Another sender leases the invitation and dies before SES is called.
    let found = app
        .store
        .user_invitations(&app.acme.id, &UserId::parse(&id).unwrap())
        .await
        .unwrap();
    let invitation = found.latest().unwrap();
    let now = clock.now();
    let leased = app
        .store
        .begin_sending(
            invitation,
            &InvitationToken::mint().unwrap().digest(),
            now + Duration::hours(72),
            now + Duration::seconds(send_invitations::LEASE_SECONDS),
        )
        .await
        .unwrap();
    assert!(leased);

    poller.poll(&sender).await.unwrap();
    assert!(
        mail_to(&email).await.is_empty(),
        "the lease is live: hands off"
    );
    clock.advance(Duration::seconds(send_invitations::LEASE_SECONDS - 1));
    assert_eq!(
        sender.sweep(&SweepRequest::default()).await.unwrap().sent,
        0
    );
    clock.advance(Duration::seconds(1));
    let report = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(mail_to(&email).await.len(), 1);
    assert_eq!(user_json(&app, &id).await["invitation"]["attempts"], 2);
}

#[tokio::test]
async fn an_invitation_the_sweep_can_never_send_ends_failed_with_its_reason_and_is_not_tried_again()
{
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
    ));
    let app = spawn_app_with_clock(clock.clone()).await;
    let sender = app.sender().await;
    let (id, email) = invite(&app, "orphan", json!({})).await;
    // The tenant's item is gone (removed by hand, say): no mail can be written for it.
    app.store
        .client()
        .delete_item()
        .table_name(app.store.table())
        .key("pk", AttributeValue::S(format!("TENANT#{}", app.acme.id)))
        .key("sk", AttributeValue::S("TENANT".into()))
        .send()
        .await
        .unwrap();

    clock.advance(Duration::minutes(5));
    let report = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!((report.failed, report.skipped), (1, 0), "{report:?}");
    assert!(mail_to(&email).await.is_empty());
    let user = rollcall::domain::UserId::parse(&id).unwrap();
    let invitations = app
        .store
        .user_invitations(&app.acme.id, &user)
        .await
        .unwrap();
    let invitation = invitations.latest().expect("the invitation");
    assert_eq!(invitation.status, InvitationStatus::Failed);
    let (code, message) = invitation.failure.clone().expect("the reason");
    assert_eq!(code, "store_refused");
    assert!(message.contains("tenant not found"), "{message}");

    clock.advance(Duration::hours(1));
    let again = sender.sweep(&SweepRequest::default()).await.unwrap();
    assert_eq!(again, SweepReport::default(), "nothing is due any more");
}
