//! Each API operation stays within its DynamoDB request budget: create = 1 write request,
//! get = 1 query (the user's partition: the user and their invitations), one list page = 1
//! query per listing shard and one for the pre-shard partition, all sent at once. More would be
//! a design bug.

use std::collections::BTreeMap;

use reqwest::Method;
use rollcall_e2e::{TestApp, spawn_app};
use serde_json::json;

async fn counted(
    app: &TestApp,
    req: reqwest::RequestBuilder,
    expect_status: u16,
) -> BTreeMap<String, u64> {
    app.counter.reset();
    let resp = req.send().await.unwrap();
    assert_eq!(
        resp.status().as_u16(),
        expect_status,
        "{:?}",
        resp.text().await
    );
    app.counter.snapshot()
}

/// Queries of one page: each shard, and the partition from before sharding.
const PAGE_QUERIES: u64 = rollcall::store::schema::LISTING_SHARDS as u64 + 1;

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn each_operation_makes_exactly_its_budgeted_dynamodb_requests() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_user(json!({"login_id": format!("u{i}"), "email": format!("u{i}@example.com"), "name": format!("User {i}")}))
            .await;
    }

    let create = counted(
        &app,
        app.as_admin(Method::POST, "/users")
            .json(&json!({"login_id": "c1", "email": "c1@example.com", "name": "C1"})),
        201,
    )
    .await;
    assert_eq!(create, counts(&[("TransactWriteItems", 1)]));

    let create_idempotent = counted(
        &app,
        app.as_admin(Method::POST, "/users")
            .header("idempotency-key", "k-1")
            .json(&json!({"login_id": "c2", "email": "c2@example.com", "name": "C2"})),
        201,
    )
    .await;
    assert_eq!(create_idempotent, counts(&[("TransactWriteItems", 1)]));

    let id = app.acme.admin.id.to_string();
    let get = counted(
        &app,
        app.as_admin(Method::GET, &format!("/users/{id}")),
        200,
    )
    .await;
    assert_eq!(get, counts(&[("Query", 1)]));

    for order in [
        "sort=name",
        "sort=name&order=desc",
        "sort=created",
        "sort=created&order=desc",
    ] {
        let page = counted(
            &app,
            app.as_admin(Method::GET, &format!("/users?{order}&limit=3")),
            200,
        )
        .await;
        assert_eq!(page, counts(&[("Query", PAGE_QUERIES)]), "{order}");
    }
    let prefix = counted(
        &app,
        app.as_admin(Method::GET, "/users?q=user&limit=3"),
        200,
    )
    .await;
    assert_eq!(prefix, counts(&[("Query", PAGE_QUERIES)]));

    let by_email = counted(
        &app,
        app.as_admin(Method::GET, "/users?email=u1@example.com"),
        200,
    )
    .await;
    assert_eq!(by_email, counts(&[("GetItem", 2)]));

    let target = app
        .create_user(json!({"login_id": "t", "email": "t@example.com", "name": "T"}))
        .await;
    let path = format!("/users/{}", target["id"].as_str().unwrap());
    let patch = counted(
        &app,
        app.as_admin(Method::PATCH, &path)
            .json(&json!({"name": "T2"})),
        200,
    )
    .await;
    assert_eq!(patch, counts(&[("Query", 1), ("TransactWriteItems", 1)]));
    let resend = counted(
        &app,
        app.as_admin(Method::POST, &format!("{path}/invitation")),
        202,
    )
    .await;
    assert_eq!(resend, counts(&[("Query", 1), ("TransactWriteItems", 1)]));
    let delete = counted(&app, app.as_admin(Method::DELETE, &path), 204).await;
    assert_eq!(delete, counts(&[("Query", 1), ("TransactWriteItems", 1)]));
}
