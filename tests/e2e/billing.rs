//! Month-end billing end to end: users change through the API under a clock the test moves,
//! billing-snapshot counts them at the month end in each tenant's time zone, writes the
//! snapshot once and the list of counted users to S3, and the API serves both. Seat limits
//! hold under concurrent writes.

use std::sync::Arc;

use billing_snapshot::{Outcome, RunReport, SnapshotRequest, TenantRun};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use lambda_runtime::{Context, LambdaEvent};
use reqwest::Method;
use rollcall::clock::ManualClock;
use rollcall::domain::{BillingMonth, BillingPolicy, TenantId, TimeZone};
use rollcall_e2e::{
    TestApp, TestTenant, add_tenant_in, assert_problem, join_spawned, mail_to, spawn_app,
    spawn_app_with_clock, status_and_json, unique_address, workspace_root,
};
use serde_json::{Value, json};

/// 2026-`mo`-`d` `h`:`mi`:`s` and `ms` milliseconds, local time in `tz`.
fn at(tz: &str, (mo, d, h, mi, s): (u32, u32, u32, u32, u32), ms: i64) -> DateTime<Utc> {
    let tz: TimeZone = tz.parse().unwrap();
    tz.tz()
        .with_ymd_and_hms(2026, mo, d, h, mi, s)
        .unwrap()
        .with_timezone(&Utc)
        + Duration::milliseconds(ms)
}

fn jst(mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> DateTime<Utc> {
    at("Asia/Tokyo", (mo, d, h, mi, s), ms)
}

fn october() -> BillingMonth {
    BillingMonth::parse("2026-10").unwrap()
}

async fn app_at(t: DateTime<Utc>) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t));
    (spawn_app_with_clock(clock.clone()).await, clock)
}

/// Creates a user in `tenant` (through the API, as its admin); returns the id.
async fn create(app: &TestApp, tenant: &TestTenant, login: &str, extra: Value) -> String {
    let mut body = json!({
        "login_id": login,
        "email": format!("{login}@{}.example", tenant.id),
        "name": format!("{login} san"),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let resp = app
        .request(Method::POST, "/users", &tenant.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, json) = status_and_json(resp).await;
    assert_eq!(status, 201, "{json}");
    json["id"].as_str().unwrap().to_owned()
}

async fn call(app: &TestApp, tenant: &TestTenant, method: Method, path: &str) -> (u16, Value) {
    status_and_json(
        app.request(method, path, &tenant.admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn run(app: &TestApp, request: Value) -> RunReport {
    let request: SnapshotRequest = serde_json::from_value(request).unwrap();
    app.snapshotter()
        .function_handler(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the run completes")
}

fn run_of<'a>(report: &'a RunReport, tenant: &TenantId) -> &'a TenantRun {
    report
        .runs
        .iter()
        .find(|r| &r.tenant == tenant)
        .unwrap_or_else(|| panic!("no run for {tenant}: {report:?}"))
}

/// The login ids in a list of counted users.
fn listed_logins(csv: &str) -> Vec<String> {
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    assert_eq!(
        lines.next(),
        Some("user_id,login_id,name,email,state,valid_from,valid_till")
    );
    let mut logins: Vec<String> = lines
        .map(|l| l.split(',').nth(1).unwrap().to_owned())
        .collect();
    logins.sort();
    logins
}

/// A month's end in Tokyo, exact to the millisecond, for the month `month`: users deleted,
/// suspended and created in the last millisecond of the month and the first of the next, and
/// validity windows ending just before and exactly at the end.
async fn month_end_boundaries_are_exact_to_the_millisecond(month: &str) {
    let month = BillingMonth::parse(month).unwrap();
    let tokyo = TimeZone::TOKYO;
    let end = month.end(tokyo);
    let last_ms = end - Duration::milliseconds(1);
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (app, clock) = app_at(month.start(tokyo) + Duration::hours(9)).await;
    let acme = app.acme.clone();
    let deleted_before = create(&app, &acme, "deleted-before", json!({})).await;
    let deleted_after = create(&app, &acme, "deleted-after", json!({})).await;
    let suspended = create(&app, &acme, "suspended", json!({})).await;
    create(
        &app,
        &acme,
        "window-ended",
        json!({"valid_till": iso(end - Duration::hours(12))}),
    )
    .await;
    create(
        &app,
        &acme,
        "window-to-the-end",
        json!({"valid_till": iso(end)}),
    )
    .await;

    clock.set(last_ms);
    let (s, _) = call(
        &app,
        &acme,
        Method::DELETE,
        &format!("/users/{deleted_before}"),
    )
    .await;
    assert_eq!(s, 204);
    let (s, body) = call(
        &app,
        &acme,
        Method::POST,
        &format!("/users/{suspended}/suspend"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    create(&app, &acme, "created-at-the-end", json!({})).await;

    clock.set(end);
    let (s, _) = call(
        &app,
        &acme,
        Method::DELETE,
        &format!("/users/{deleted_after}"),
    )
    .await;
    assert_eq!(s, 204);
    create(&app, &acme, "created-after", json!({})).await;

    // Too early: the month has ended but not settled.
    clock.set(end + Duration::minutes(1));
    let early = run(&app, json!({"month": month.to_string()})).await;
    assert_eq!(run_of(&early, &acme.id).outcome, Outcome::NotClosed);

    clock.set(end + Duration::minutes(5));
    let report = run(&app, json!({})).await;
    let acme_run = run_of(&report, &acme.id);
    assert_eq!(acme_run.outcome, Outcome::Written, "{report:?}");
    assert_eq!(acme_run.month, Some(month));
    assert_eq!(acme_run.count, Some(4), "{report:?}");

    let list = app
        .object_text(&format!("billing/{}/{month}.csv", acme.id))
        .await;
    assert_eq!(
        listed_logins(&list),
        [
            "admin",
            "created-at-the-end",
            "deleted-after",
            "window-to-the-end"
        ]
    );
    // Times in the list are in the tenant's zone.
    let next_start = format!("{}-01T00:00:00.000+09:00", month.next());
    assert!(list.contains(&next_start), "{list}");

    let (s, snap) = call(
        &app,
        &acme,
        Method::GET,
        &format!("/billing/snapshots/{month}"),
    )
    .await;
    assert_eq!(s, 200, "{snap}");
    assert_eq!(snap["count"], 4);
    let last_day = last_ms.with_timezone(&tokyo.tz()).format("%Y-%m-%d");
    assert_eq!(snap["counted_at"], format!("{last_day}T23:59:59.999+09:00"));
    assert_eq!(snap["time_zone"], "Asia/Tokyo");
    let url = snap["users_url"].as_str().expect("a link to the list");
    let fetched = app.http.get(url).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.text().await.unwrap(), list);
}

#[tokio::test]
async fn jst_month_end_boundaries_are_exact_to_the_millisecond() {
    month_end_boundaries_are_exact_to_the_millisecond("2026-10").await;
}

/// January 2027 ends at 2027-01-31T15:00:00Z: the last millisecond billed is 14:59:59.999.
#[tokio::test]
async fn a_january_month_end_is_exact_across_the_new_year() {
    month_end_boundaries_are_exact_to_the_millisecond("2027-01").await;
}

/// February 2028 has 29 days: it ends at 2028-02-29T15:00:00Z.
#[tokio::test]
async fn a_leap_february_ends_after_its_twenty_ninth_day() {
    let feb = BillingMonth::parse("2028-02").unwrap();
    assert_eq!(
        feb.end(TimeZone::TOKYO),
        Utc.with_ymd_and_hms(2028, 2, 29, 15, 0, 0).unwrap()
    );
    month_end_boundaries_are_exact_to_the_millisecond("2028-02").await;
}

#[tokio::test]
async fn a_run_three_days_late_counts_what_an_on_time_run_counted() {
    let (app, clock) = app_at(jst(10, 10, 9, 0, 0, 0)).await;
    let acme = app.acme.clone();
    let beta = app.add_tenant("beta").await;
    let mut ids = Vec::new();
    for tenant in [&acme, &beta] {
        let a = create(&app, tenant, "aoki", json!({})).await;
        let b = create(&app, tenant, "baba", json!({})).await;
        create(&app, tenant, "chiba", json!({})).await;
        ids.push((a, b));
    }

    clock.set(jst(11, 1, 0, 5, 0, 0));
    let on_time = run(&app, json!({"tenants": ["acme"]})).await;
    assert_eq!(run_of(&on_time, &acme.id).outcome, Outcome::Written);
    assert_eq!(run_of(&on_time, &acme.id).count, Some(4));

    // November changes the present, not October's end.
    clock.set(jst(11, 2, 10, 0, 0, 0));
    for (tenant, (a, b)) in [&acme, &beta].into_iter().zip(&ids) {
        let (s, _) = call(&app, tenant, Method::DELETE, &format!("/users/{a}")).await;
        assert_eq!(s, 204);
        let (s, _) = call(&app, tenant, Method::POST, &format!("/users/{b}/suspend")).await;
        assert_eq!(s, 200);
        create(&app, tenant, "dan", json!({})).await;
        create(&app, tenant, "endo", json!({})).await;
    }

    clock.set(jst(11, 4, 9, 0, 0, 0));
    let late = run(&app, json!({})).await;
    assert_eq!(run_of(&late, &acme.id).outcome, Outcome::Existing);
    assert_eq!(run_of(&late, &beta.id).outcome, Outcome::Written);
    assert_eq!(run_of(&late, &beta.id).count, Some(4), "{late:?}");

    // Re-driven late, acme's count is recomputed and agrees with the stored one.
    let redrive = run(&app, json!({"month": "2026-10", "tenants": ["acme"]})).await;
    assert_eq!(run_of(&redrive, &acme.id).outcome, Outcome::Verified);
    assert_eq!(run_of(&redrive, &acme.id).count, Some(4));

    let (_, current) = call(&app, &acme, Method::GET, "/billing/current").await;
    assert_eq!(current["month"], "2026-11");
    assert_eq!(current["billable"], 4, "{current}");
}

#[tokio::test]
async fn concurrent_runs_and_a_rerun_leave_one_unchanged_snapshot() {
    let (app, clock) = app_at(jst(10, 10, 9, 0, 0, 0)).await;
    let acme = app.acme.clone();
    for login in ["aoki", "baba"] {
        create(&app, &acme, login, json!({})).await;
    }
    clock.set(jst(11, 1, 0, 5, 0, 0));
    let (one, two) = tokio::join!(run(&app, json!({})), run(&app, json!({"month": "2026-10"})));
    let mut outcomes = [
        run_of(&one, &acme.id).outcome,
        run_of(&two, &acme.id).outcome,
    ];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert!(
        outcomes == [Outcome::Existing, Outcome::Written]
            || outcomes == [Outcome::Verified, Outcome::Written],
        "{outcomes:?}"
    );
    let first = app.store.snapshot(&acme.id, october()).await.unwrap();
    let first = first.expect("the snapshot");
    assert_eq!(first.count, 3);

    clock.set(jst(11, 1, 1, 5, 0, 0));
    let again = run(&app, json!({})).await;
    assert_eq!(run_of(&again, &acme.id).outcome, Outcome::Existing);
    let redrive = run(&app, json!({"month": "2026-10"})).await;
    assert_eq!(run_of(&redrive, &acme.id).outcome, Outcome::Verified);
    let (s, list) = call(
        &app,
        &acme,
        Method::GET,
        "/billing/snapshots?from=2026-01&to=2026-12",
    )
    .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let after = app.store.snapshot(&acme.id, october()).await.unwrap();
    assert_eq!(after, Some(first), "the snapshot never changes");
}

#[tokio::test]
async fn a_recount_that_differs_is_reported_and_never_overwrites() {
    let (app, clock) = app_at(jst(10, 10, 9, 0, 0, 0)).await;
    let acme = app.acme.clone();
    create(&app, &acme, "aoki", json!({})).await;
    clock.set(jst(11, 1, 0, 5, 0, 0));
    let first = run(&app, json!({})).await;
    assert_eq!(run_of(&first, &acme.id).count, Some(2));
    let stored = app.store.snapshot(&acme.id, october()).await.unwrap();

    // A writer whose clock lags writes a user "in October" after the snapshot was taken.
    clock.set(jst(10, 20, 9, 0, 0, 0));
    create(&app, &acme, "late-writer", json!({})).await;
    clock.set(jst(11, 2, 9, 0, 0, 0));
    let recount = run(&app, json!({"month": "2026-10"})).await;
    let r = run_of(&recount, &acme.id);
    assert_eq!(r.outcome, Outcome::Mismatch, "{recount:?}");
    assert_eq!((r.count, r.computed), (Some(2), Some(3)));
    assert_eq!(
        app.store.snapshot(&acme.id, october()).await.unwrap(),
        stored
    );
}

#[tokio::test]
async fn invited_users_count_by_default_and_not_when_the_policy_excludes_them() {
    let (app, clock) = app_at(jst(10, 10, 9, 0, 0, 0)).await;
    let acme = app.acme.clone();
    let beta = app.add_tenant("beta").await;
    app.store
        .set_billing_settings(
            &beta.id,
            None,
            BillingPolicy {
                count_invited: false,
            },
        )
        .await
        .unwrap();
    for tenant in [&acme, &beta] {
        create(&app, tenant, "invited-1", json!({})).await;
        create(&app, tenant, "invited-2", json!({})).await;
    }
    clock.set(jst(11, 1, 0, 5, 0, 0));
    let report = run(&app, json!({})).await;
    assert_eq!(run_of(&report, &acme.id).count, Some(3));
    assert_eq!(run_of(&report, &beta.id).count, Some(1), "only the admin");
    let (_, current) = call(&app, &beta, Method::GET, "/billing/current").await;
    assert_eq!(current["billable"], 1, "{current}");
    assert_eq!(current["count_invited"], false);
}

#[tokio::test]
async fn a_new_york_tenant_is_billed_at_its_own_month_end_across_dst() {
    // October 2026 ends at 00:00 EDT (UTC-4) on November 1; DST ends later that day.
    let ny = |mo, d, h, mi| at("America/New_York", (mo, d, h, mi, 0), 0);
    let (app, clock) = app_at(ny(10, 5, 9, 0)).await;
    let nyc = add_tenant_in(&app.store, "nyc", "America/New_York".parse().unwrap()).await;
    let leaving = create(&app, &nyc, "leaving", json!({})).await;
    let staying = create(&app, &nyc, "staying", json!({})).await;

    // Deleted on October 31 in New York, already November 1 in Tokyo.
    clock.set(ny(10, 31, 23, 30));
    let (s, _) = call(&app, &nyc, Method::DELETE, &format!("/users/{leaving}")).await;
    assert_eq!(s, 204);
    // Created on November 1 in Tokyo, still October 31 in New York.
    clock.set(jst(11, 1, 0, 30, 0, 0));
    create(&app, &nyc, "joining", json!({})).await;
    // Suspended after New York's month end.
    clock.set(ny(11, 1, 0, 0));
    let (s, _) = call(
        &app,
        &nyc,
        Method::POST,
        &format!("/users/{staying}/suspend"),
    )
    .await;
    assert_eq!(s, 200);

    // The Tokyo month-end run comes before New York's month end: October is not closed there.
    clock.set(jst(11, 1, 0, 5, 0, 0));
    let tokyo_run = run(&app, json!({"month": "2026-10"})).await;
    assert_eq!(run_of(&tokyo_run, &nyc.id).outcome, Outcome::NotClosed);

    // The hourly runs on the 1st reach it after 00:00 in New York.
    clock.set(ny(11, 1, 0, 5));
    let report = run(&app, json!({})).await;
    let r = run_of(&report, &nyc.id);
    assert_eq!((r.outcome, r.month), (Outcome::Written, Some(october())));
    assert_eq!(r.count, Some(3), "admin, staying and joining: {report:?}");
    let (_, snap) = call(&app, &nyc, Method::GET, "/billing/snapshots/2026-10").await;
    assert_eq!(snap["counted_at"], "2026-10-31T23:59:59.999-04:00");
}

#[tokio::test]
async fn a_hundred_concurrent_creates_never_exceed_the_seat_limit() {
    let app = spawn_app().await;
    app.store
        .set_billing_settings(&app.acme.id, Some(10), BillingPolicy::default())
        .await
        .unwrap();
    let requests = (0..100).map(|i| {
        app.as_admin(Method::POST, "/users")
            .json(&json!({
                "login_id": format!("seat{i}"),
                "email": format!("seat{i}@example.com"),
                "name": format!("Seat {i}")
            }))
            .send()
    });
    let mut created = Vec::new();
    let mut refused = 0;
    for resp in join_spawned(requests).await {
        let (status, body) = status_and_json(resp.unwrap()).await;
        match status {
            201 => created.push(body["id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(body["code"], "seat_limit_reached", "{body}");
                assert!(body["detail"].as_str().unwrap().contains("10"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), refused), (9, 91), "the admin holds a seat");
    let (_, current) = call(&app, &app.acme, Method::GET, "/billing/current").await;
    assert_eq!(
        current["seats"],
        json!({"used": 10, "limit": 10, "available": 0})
    );

    // Suspending frees a seat; reactivating needs one.
    let path = format!("/users/{}/suspend", created[0]);
    let (s, _) = call(&app, &app.acme, Method::POST, &path).await;
    assert_eq!(s, 200);
    let extra = app
        .create_user(json!({"login_id": "extra", "email": "extra@example.com", "name": "Extra"}))
        .await;
    let reactivate = format!("/users/{}/reactivate", created[0]);
    let resp = app
        .as_admin(Method::POST, &reactivate)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 409, "seat_limit_reached").await;
    // Deleting frees one too.
    let extra_path = format!("/users/{}", extra["id"].as_str().unwrap());
    let (s, _) = call(&app, &app.acme, Method::DELETE, &extra_path).await;
    assert_eq!(s, 204);
    let (s, body) = call(&app, &app.acme, Method::POST, &reactivate).await;
    assert_eq!(s, 200, "{body}");
    let (_, current) = call(&app, &app.acme, Method::GET, "/billing/current").await;
    assert_eq!(current["seats"]["used"], 10);
    assert_eq!(current["billable"], 10);
}

#[tokio::test]
async fn when_invited_users_are_not_billed_accepting_an_invitation_takes_the_seat() {
    let app = spawn_app().await;
    app.store
        .set_billing_settings(
            &app.acme.id,
            Some(2),
            BillingPolicy {
                count_invited: false,
            },
        )
        .await
        .unwrap();
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let mut addresses = Vec::new();
    for login in ["first", "second", "third"] {
        let email = unique_address(login);
        app.create_user(json!({"login_id": login, "email": email, "name": login}))
            .await;
        addresses.push(email);
    }
    poller.poll(&sender).await.unwrap();
    let mut links = Vec::new();
    for a in &addresses {
        let mail = mail_to(a).await;
        links.push(mail.last().expect("an invitation").links()[0].clone());
    }
    let accept = |link: String| {
        app.http
            .post(format!(
                "{}/accept",
                rollcall_cli::mail::invitation_api_url(&link)
            ))
            .json(&json!({"password": "Sakura#2026"}))
            .send()
    };
    let (s, body) = status_and_json(accept(links[0].clone()).await.unwrap()).await;
    assert_eq!(s, 200, "{body}");
    let refused = accept(links[1].clone()).await.unwrap();
    assert_problem(refused, 409, "seat_limit_reached").await;
    let (_, current) = call(&app, &app.acme, Method::GET, "/billing/current").await;
    assert_eq!(current["seats"]["used"], 2);
    assert_eq!(current["billable"], 2);
}

#[tokio::test]
async fn billing_routes_are_for_admins_and_check_their_parameters() {
    let app = spawn_app().await;
    let member = create(&app, &app.acme, "member", json!({})).await;
    let member_token = rollcall_e2e::token(
        &app.acme.id,
        &member.parse().unwrap(),
        rollcall::domain::Role::Manager,
    );
    for path in [
        "/billing/current",
        "/billing/snapshots",
        "/billing/snapshots/2026-10",
    ] {
        let resp = app
            .request(Method::GET, path, &member_token)
            .send()
            .await
            .unwrap();
        assert_problem(resp, 403, "forbidden").await;
    }
    let resp = app
        .as_admin(Method::GET, "/billing/snapshots/2026-13")
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 400, "invalid_request").await;
    assert_eq!(body["errors"][0]["field"], "month", "{body}");
    let resp = app
        .as_admin(Method::GET, "/billing/snapshots?from=2026-10&to=2026-01")
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, 400, "invalid_request").await;
    assert_eq!(body["errors"][0]["code"], "range_invalid", "{body}");
    let resp = app
        .as_admin(Method::GET, "/billing/snapshots/2026-10")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "snapshot_not_found").await;
}

#[tokio::test]
async fn the_sample_scheduled_events_run_through_the_lambda_entry_path() {
    let (app, clock) = app_at(jst(10, 10, 9, 0, 0, 0)).await;
    create(&app, &app.acme, "aoki", json!({})).await;
    clock.set(jst(11, 1, 0, 5, 0, 0));
    for (file, outcome) in [
        ("billing-snapshot-schedule.json", Outcome::Written),
        ("billing-snapshot-redrive.json", Outcome::Verified),
    ] {
        let raw = std::fs::read_to_string(workspace_root().join("events").join(file)).unwrap();
        let event: Value = serde_json::from_str(&raw).unwrap();
        let report = run(&app, event).await;
        assert_eq!(run_of(&report, &app.acme.id).outcome, outcome, "{file}");
        assert_eq!(run_of(&report, &app.acme.id).count, Some(2), "{file}");
    }
}
