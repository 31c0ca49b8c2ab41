//! Billing benchmark, written into BENCHMARKS.md (between its `billing` markers): one
//! billing-snapshot run over many tenants against moto, re-driving a closed month so every
//! tenant is counted.
//!
//! - items read per user (target ≤ 1: no per-user reads) and requests by operation;
//! - the run's wall time, with the machine and the date.
//!
//! Users are seeded with BatchWriteItem from the items the API itself wrote for a live user
//! and a deleted one (tombstone), so they have the stored shape exactly; a tenth of them are
//! tombstones. Scale: `BILLING_BENCH_TENANTS` (default 1,000) × `BILLING_BENCH_USERS`
//! (default 1,000), the figure; it takes most of an hour against moto, so
//! `BILLING_BENCH_TENANTS=20` is the quick check.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench billing`).

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use billing_snapshot::{Outcome, SnapshotRequest};
use chrono::{TimeZone as _, Utc};
use reqwest::Method;
use rollcall::domain::{
    BillingMonth, DisplayName, StateChange, TenantId, TimeZone, UserId, UserState,
};
use rollcall_cli::bootstrap::{self, TenantSpec};
use rollcall_e2e::{machine, spawn_app, status_and_json, write_benchmark_section};
use serde_json::json;

type Item = HashMap<String, AttributeValue>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A copy of `template` as user `n` of `tenant`, live or deleted, with `history`.
fn user_like(
    template: &Item,
    tenant: &TenantId,
    n: usize,
    deleted: bool,
    history: &AttributeValue,
) -> Item {
    let uid = UserId::generate();
    let mut item = template.clone();
    let login = format!("u{n:06}");
    item.insert("pk".into(), s(format!("USER#{tenant}#{uid}")));
    item.insert("tenant_id".into(), s(tenant.as_str()));
    item.insert("user_id".into(), s(uid.to_string()));
    item.insert("login_id".into(), s(login.clone()));
    item.insert("email".into(), s(format!("{login}@{tenant}.example")));
    item.insert("history".into(), history.clone());
    let shard = rollcall::store::listing_shard(&uid);
    if deleted {
        item.insert(
            "gsi2pk".into(),
            s(rollcall::store::deleted_users_pk(tenant, shard)),
        );
    } else {
        let live = rollcall::store::live_users_pk(tenant, shard);
        item.insert("gsi1pk".into(), s(live.clone()));
        item.insert("gsi1sk".into(), s(format!("{login}\u{1}{uid}")));
        item.insert("gsi2pk".into(), s(live));
    }
    item.insert("gsi2sk".into(), s(uid.to_string()));
    item
}

fn history(changes: &[(chrono::DateTime<Utc>, UserState)]) -> AttributeValue {
    let entries: Vec<StateChange> = changes
        .iter()
        .map(|(at, state)| StateChange {
            at: *at,
            state: *state,
            valid_from: None,
            valid_till: None,
        })
        .collect();
    serde_dynamo::to_attribute_value(entries).expect("history")
}

#[tokio::main]
async fn main() {
    let tenants = env_usize("BILLING_BENCH_TENANTS", 1_000);
    let users = env_usize("BILLING_BENCH_USERS", 1_000);
    let app = spawn_app().await;
    let client = app.store.client().clone();
    let table = app.store.table().to_owned();

    // Two real items: a live user and a tombstone, as the API writes them.
    let (_, live) = status_and_json(
        app.as_admin(Method::POST, "/users")
            .json(&json!({"login_id": "template", "email": "template@acme.example", "name": "Template User", "department": "営業部"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, gone) = status_and_json(
        app.as_admin(Method::POST, "/users")
            .json(&json!({"login_id": "gone", "email": "gone@acme.example", "name": "Gone User"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let gone_id = gone["id"].as_str().unwrap();
    let (status, _) = status_and_json(
        app.as_admin(Method::DELETE, &format!("/users/{gone_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    let raw = |id: String| {
        let client = client.clone();
        let table = table.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", s(format!("USER#acme#{id}")))
                .key("sk", s("USER"))
                .send()
                .await
                .unwrap()
                .item
                .expect("the item")
        }
    };
    let live_item = raw(live["id"].as_str().unwrap().to_owned()).await;
    let gone_item = raw(gone_id.to_owned()).await;

    let jst = |y, m, d| {
        TimeZone::TOKYO
            .tz()
            .with_ymd_and_hms(y, m, d, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    let month = BillingMonth::parse("2026-10").unwrap();
    let active = history(&[(jst(2026, 9, 1), UserState::Active)]);
    let deleted = history(&[
        (jst(2026, 9, 1), UserState::Active),
        (jst(2026, 10, 15), UserState::Deleted),
    ]);

    let seeding = Instant::now();
    let mut batch = Vec::with_capacity(25);
    for t in 0..tenants {
        let id = TenantId::parse(&format!("bench-{t:04}")).unwrap();
        bootstrap::create_tenant(
            &app.store,
            &TenantSpec {
                id: id.clone(),
                name: DisplayName::parse(&format!("Bench {t}")).unwrap(),
                seat_limit: None,
                time_zone: TimeZone::TOKYO,
            },
        )
        .await
        .unwrap();
        for n in 0..users {
            let is_deleted = n % 10 == 9;
            let (template, h) = if is_deleted {
                (&gone_item, &deleted)
            } else {
                (&live_item, &active)
            };
            let item = user_like(template, &id, n, is_deleted, h);
            batch.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build(),
            );
            if batch.len() == 25 {
                write(&client, &table, std::mem::take(&mut batch)).await;
            }
        }
    }
    if !batch.is_empty() {
        write(&client, &table, batch).await;
    }
    let seeded_in = seeding.elapsed();

    app.counter.reset();
    let started = Instant::now();
    let report = app
        .snapshotter()
        .run(&SnapshotRequest {
            month: Some(month),
            tenants: Vec::new(),
        })
        .await
        .expect("the run");
    let wall = started.elapsed();
    let requests = app.counter.snapshot();

    let bench_runs: Vec<_> = report
        .runs
        .iter()
        .filter(|r| r.tenant.as_str().starts_with("bench-"))
        .collect();
    assert_eq!(bench_runs.len(), tenants);
    let expected = (users - users / 10) as u64;
    for r in &bench_runs {
        assert_eq!(r.outcome, Outcome::Written, "{r:?}");
        assert_eq!(r.count, Some(expected), "{r:?}");
    }
    // acme: its admin and the template user, created now, so not counted in October.
    let stored_users = (tenants * users) as u64 + 3;
    let per_user = report.items_read as f64 / stored_users as f64;
    assert!(per_user <= 1.0, "{per_user} items read per user");
    let ops: Vec<String> = requests.iter().map(|(op, n)| format!("{op} {n}")).collect();

    let body = format!(
        "One billing-snapshot run re-driving 2026-10 for every tenant ({tenants} tenants × {users} \
         users, a tenth of them deleted: {stored_users} user items in all), against moto on \
         loopback.\n\n\
         | figure | value |\n|---|---|\n\
         | items read per user | {per_user:.3} (target ≤ 1; {items} items) |\n\
         | user queries (by_created, 33 live + 33 deleted partitions per tenant) | {queries} |\n\
         | requests by operation | {ops} |\n\
         | wall time of the run | {wall:.1} s ({per_tenant:.0} ms per tenant, 8 tenants at a time) |\n\
         | seeding ({seed_requests} BatchWriteItem of 25) | {seeded:.1} s |\n\
         | machine | {machine}, {date} |\n\n\
         moto answers one request at a time and spends about a millisecond serialising each \
         item a query returns, so the time is moto's, linear in the users of the tenant, and \
         does not grow with the table: the local stack's moto reads only the partition a query \
         names, as DynamoDB does (stock moto walks the whole table on every page). The request \
         count is what carries over to AWS: per tenant 1 GetItem (the stored snapshot), one Query \
         page for each of the 66 partitions (32 listing shards and the pre-shard partition, live \
         and deleted; 8 read at once; a page of 1 MB holds about 1,000 users, so a tenant of \
         under 32,000 users needs one page per partition), 1 PutObject and 1 PutItem. \
         `BILLING_BENCH_TENANTS` and `BILLING_BENCH_USERS` change the scale.\n",
        items = report.items_read,
        queries = report.queries,
        ops = ops.join(", "),
        wall = wall.as_secs_f64(),
        per_tenant = wall.as_secs_f64() * 1000.0 / tenants as f64,
        seed_requests = (tenants * users).div_ceil(25),
        seeded = seeded_in.as_secs_f64(),
        machine = machine(),
        date = Utc::now().format("%Y-%m-%d"),
    );
    println!("{body}");
    write_benchmark_section("billing", "Billing snapshots", &body);
}

async fn write(client: &aws_sdk_dynamodb::Client, table: &str, batch: Vec<WriteRequest>) {
    let mut pending = HashMap::from([(table.to_owned(), batch)]);
    loop {
        let out = client
            .batch_write_item()
            .set_request_items(Some(pending))
            .send()
            .await
            .expect("BatchWriteItem");
        match out.unprocessed_items {
            Some(rest) if !rest.is_empty() => pending = rest,
            _ => return,
        }
    }
}
