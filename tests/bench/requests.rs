//! Counts the DynamoDB requests each users-api operation makes, against moto, and writes the
//! table into BENCHMARKS.md (between its `requests` markers). Targets: create = 1 write
//! request, get = 1 query of the user's partition (the user and their invitations), one list
//! page = 1 query unless a filter leaves the page short.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench requests`).

use std::collections::BTreeMap;

use reqwest::Method;
use rollcall_e2e::{TestApp, describe_requests, spawn_app, write_benchmark_section};
use serde_json::json;

struct Row {
    operation: &'static str,
    counts: BTreeMap<String, u64>,
    target: &'static str,
}

async fn measure(app: &TestApp, req: reqwest::RequestBuilder) -> BTreeMap<String, u64> {
    app.counter.reset();
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    app.counter.snapshot()
}

#[tokio::main]
async fn main() {
    let app = spawn_app().await;
    for i in 0..120 {
        let status_filler = json!({"login_id": format!("u{i:03}"), "email": format!("u{i:03}@example.com"), "name": format!("User {i:03}")});
        let created = app.create_user(status_filler).await;
        if i % 10 == 0 {
            let id = created["id"].as_str().expect("id");
            app.as_admin(Method::POST, &format!("/users/{id}/suspend"))
                .send()
                .await
                .expect("suspend");
        }
    }
    let admin = app.acme.admin.id.to_string();
    let target = app
        .create_user(json!({"login_id": "target", "email": "target@example.com", "name": "Target"}))
        .await;
    let target = format!("/users/{}", target["id"].as_str().expect("id"));

    let mut rows = Vec::new();
    let mut row = |operation, counts, target| {
        rows.push(Row {
            operation,
            counts,
            target,
        })
    };
    row(
        "POST /users",
        measure(
            &app,
            app.as_admin(Method::POST, "/users")
                .json(&json!({"login_id": "n1", "email": "n1@example.com", "name": "N1"})),
        )
        .await,
        "1 write",
    );
    row(
        "POST /users with Idempotency-Key",
        measure(
            &app,
            app.as_admin(Method::POST, "/users")
                .header("idempotency-key", "bench-1")
                .json(&json!({"login_id": "n2", "email": "n2@example.com", "name": "N2"})),
        )
        .await,
        "1 write",
    );
    row(
        "POST /users, replayed Idempotency-Key",
        measure(
            &app,
            app.as_admin(Method::POST, "/users")
                .header("idempotency-key", "bench-1")
                .json(&json!({"login_id": "n2", "email": "n2@example.com", "name": "N2"})),
        )
        .await,
        "1 write tried + 1 read",
    );
    row(
        "GET /users/{id}",
        measure(&app, app.as_admin(Method::GET, &format!("/users/{admin}"))).await,
        "1 query (user + invitations)",
    );
    for (op, q) in [
        ("GET /users (by name, page of 50)", "/users"),
        (
            "GET /users?sort=created&order=desc",
            "/users?sort=created&order=desc",
        ),
        ("GET /users?q=user (name prefix)", "/users?q=user"),
        (
            "GET /users?email=… (exact)",
            "/users?email=u001@example.com",
        ),
    ] {
        row(
            op,
            measure(&app, app.as_admin(Method::GET, q)).await,
            if q.contains("email") {
                "2 reads (claim, user)"
            } else {
                "1 query per shard (32) + 1 (the pre-shard partition), all at once"
            },
        );
    }
    row(
        "GET /users?status=suspended&limit=10 (sparse filter)",
        measure(
            &app,
            app.as_admin(Method::GET, "/users?status=suspended&limit=10"),
        )
        .await,
        "33 queries, then more of each shard that empties first, growing ×4",
    );
    row(
        "GET /users?q=nobody (no user found: the tenant is read)",
        measure(&app, app.as_admin(Method::GET, "/users?q=nobody")).await,
        "33 queries + 1 read (an empty page checks that the tenant exists)",
    );
    row(
        "POST /imports",
        measure(
            &app,
            app.as_admin(Method::POST, "/imports")
                .json(&json!({"mode": "validate"})),
        )
        .await,
        "1 read (the caller, as stored) + 1 write",
    );
    row(
        "PATCH /users/{id}",
        measure(
            &app,
            app.as_admin(Method::PATCH, &target)
                .json(&json!({"department": "開発部"})),
        )
        .await,
        "1 query + 1 write",
    );
    row(
        "POST /users/{id}/suspend",
        measure(
            &app,
            app.as_admin(Method::POST, &format!("{target}/suspend")),
        )
        .await,
        "1 query + 1 write",
    );
    row(
        "DELETE /users/{id}",
        measure(&app, app.as_admin(Method::DELETE, &target)).await,
        "1 query + 1 write",
    );

    let mut table = String::from("| operation | DynamoDB requests | budget |\n|---|---|---|\n");
    for r in &rows {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.operation,
            describe_requests(&r.counts),
            r.target
        ));
    }
    print!("{table}");
    write_benchmark_section(
        "requests",
        "DynamoDB requests per API operation",
        &format!(
            "Measured by `make bench` (`cargo bench -p rollcall-e2e --bench requests`) against \
             moto, with a tenant of 120 users (12 suspended). Counts are requests sent by the \
             SDK, retries included, recorded by an interceptor on the API's own client.\n\n{table}"
        ),
    );
}
