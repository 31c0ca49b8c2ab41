//! Races: uniqueness, optimistic concurrency and the admin guard hold when requests arrive
//! together.

use reqwest::Method;
use rollcall::domain::{Role, UserId};
use rollcall_e2e::{join_spawned, spawn_app, status_and_json, token};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_one_email_make_exactly_one_user() {
    let app = spawn_app().await;
    let requests = (0..20).map(|i| {
        app.as_admin(Method::POST, "/users")
            .json(&json!({
                "login_id": format!("racer{i}"),
                // The same address, in different cases.
                "email": if i % 2 == 0 { "Race@Example.com" } else { "race@example.COM" },
                "name": format!("Racer {i}")
            }))
            .send()
    });
    let responses = join_spawned(requests).await;
    let mut created = 0;
    let mut conflicts = 0;
    for resp in responses {
        let (status, body) = status_and_json(resp.unwrap()).await;
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["code"], "email_taken", "{body}");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, conflicts), (1, 19));
    let (_, page) = status_and_json(
        app.as_admin(Method::GET, "/users?email=race@example.com")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_patches_with_one_if_match_give_one_200_and_nineteen_412() {
    let app = spawn_app().await;
    let u = app
        .create_user(json!({"login_id": "target", "email": "target@example.com", "name": "Target"}))
        .await;
    let path = format!("/users/{}", u["id"].as_str().unwrap());
    let requests = (0..20).map(|i| {
        app.as_admin(Method::PATCH, &path)
            .header("if-match", "\"1\"")
            .json(&json!({"notes": format!("writer {i}")}))
            .send()
    });
    let mut ok = Vec::new();
    let mut refused = 0;
    for resp in join_spawned(requests).await {
        let (status, body) = status_and_json(resp.unwrap()).await;
        match status {
            200 => ok.push(body),
            412 => {
                assert_eq!(body["code"], "precondition_failed");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok.len(), refused), (1, 19));
    let (_, now) = status_and_json(app.as_admin(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(now["version"], 2);
    assert_eq!(
        now["notes"], ok[0]["notes"],
        "the winner's write is the one stored"
    );
}

/// Sends two requests at once: one succeeds, the other is refused as removing the last admin.
async fn one_wins_and_the_other_is_refused_as_last_admin(
    a: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    b: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) {
    let (a, b) = tokio::join!(a, b);
    let (sa, ba) = status_and_json(a.unwrap()).await;
    let (sb, bb) = status_and_json(b.unwrap()).await;
    let mut statuses = [sa, sb];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{ba} {bb}");
    let refused = if sa == 409 { ba } else { bb };
    assert_eq!(refused["code"], "last_admin", "{refused}");
}

/// A second admin of acme, active (as accepting the invitation makes them).
async fn second_active_admin(app: &rollcall_e2e::TestApp) -> UserId {
    let second = app
        .create_user(json!({"login_id": "admin2", "email": "admin2@example.com", "name": "Admin 2", "role": "admin"}))
        .await;
    let second_id = UserId::parse(second["id"].as_str().unwrap()).unwrap();
    let current = app.store.get_user(&app.acme.id, &second_id).await.unwrap();
    let mut active = current.clone();
    active.status = active.status.activate().unwrap();
    app.store.update_user(&current, active).await.unwrap();
    second_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_suspending_each_other_at_once_leave_one_active_admin() {
    let app = spawn_app().await;
    let second_id = second_active_admin(&app).await;

    let first_token = app.acme.admin_token.clone();
    let second_token = token(&app.acme.id, &second_id, Role::Admin);
    let a = app
        .request(
            Method::POST,
            &format!("/users/{second_id}/suspend"),
            &first_token,
        )
        .send();
    let b = app
        .request(
            Method::POST,
            &format!("/users/{}/suspend", app.acme.admin.id),
            &second_token,
        )
        .send();
    one_wins_and_the_other_is_refused_as_last_admin(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_one_idempotency_key_make_exactly_one_user() {
    let app = spawn_app().await;
    let body = json!({"login_id": "once", "email": "once@example.com", "name": "Once"});
    let requests = (0..20).map(|_| {
        app.as_admin(Method::POST, "/users")
            .header("idempotency-key", "create-once")
            .json(&body)
            .send()
    });
    // Each gets the first one's answer: the winner's, or a replay of it.
    let mut ids = std::collections::BTreeSet::new();
    for resp in join_spawned(requests).await {
        let (status, body) = status_and_json(resp.unwrap()).await;
        assert_eq!(status, 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every 201 names the same user: {ids:?}");
    let (_, page) = status_and_json(
        app.as_admin(Method::GET, "/users?q=Once")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let second_id = second_active_admin(&app).await;

    let second_token = token(&app.acme.id, &second_id, Role::Admin);
    let a = app
        .as_admin(Method::PATCH, &format!("/users/{second_id}"))
        .json(&json!({"role": "member"}))
        .send();
    let b = app
        .request(
            Method::PATCH,
            &format!("/users/{}", app.acme.admin.id),
            &second_token,
        )
        .json(&json!({"role": "manager"}))
        .send();
    one_wins_and_the_other_is_refused_as_last_admin(a, b).await;
    let mut left = 0;
    for id in [app.acme.admin.id, second_id] {
        let user = app.store.get_user(&app.acme.id, &id).await.unwrap();
        left += usize::from(user.is_active_admin());
    }
    assert_eq!(left, 1, "one active admin remains");
}
