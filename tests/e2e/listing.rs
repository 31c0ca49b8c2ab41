//! Listing 1,000 users a page at a time, in every order, with filters: each user exactly once,
//! in order.

use std::collections::HashSet;

use reqwest::Method;
use rollcall::domain::{DisplayName, Email, LoginId, Profile, Role, Status, User, UserId};
use rollcall::store::schema::{BY_CREATED, LISTING_SHARDS};
use rollcall::store::{Store, listing_shard};
use rollcall_e2e::{TestApp, assert_problem, spawn_app, status_and_json};

const SURNAMES: [&str; 12] = [
    "山田",
    "佐藤",
    "鈴木",
    "髙橋",
    "田中",
    "ｲﾄｳ",
    "Watanabe",
    "watanabe",
    "ＷＡＴＡＮＡＢＥ",
    "Ito",
    "伊藤",
    "Álvarez",
];

fn new_user(i: usize) -> Profile {
    // Every twentieth name repeats exactly, so ties are broken by id.
    let name = if i.is_multiple_of(20) {
        "同姓 同名".to_owned()
    } else {
        format!("{} {}", SURNAMES[i % SURNAMES.len()], i)
    };
    Profile::minimal(
        LoginId::parse(&format!("user{i:04}")).unwrap(),
        Email::parse(&format!("user{i:04}@example.com")).unwrap(),
        DisplayName::parse(&name).unwrap(),
        Role::Member,
    )
}

/// Creates `n` users straight through the store (the API's create path is tested elsewhere),
/// suspending every seventh.
async fn seed(app: &TestApp, n: usize) -> Vec<User> {
    let workers = 8;
    let mut handles = Vec::new();
    for w in 0..workers {
        let store: Store = app.store.clone();
        let tenant = app.acme.id.clone();
        handles.push(tokio::spawn(async move {
            let mut made = Vec::new();
            for i in (w..n).step_by(workers) {
                let now = store.clock().now();
                let status = if i.is_multiple_of(7) {
                    Status::Suspended
                } else {
                    Status::Invited
                };
                let user = User::new(tenant.clone(), UserId::generate(), new_user(i), status, now);
                store
                    .create_user(&user, None, None)
                    .await
                    .expect("seeding a user");
                made.push(user);
            }
            made
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.push(app.acme.admin.clone());
    all
}

async fn collect(app: &TestApp, query: &str) -> Vec<serde_json::Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/users?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) =
            status_and_json(app.as_admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        assert!(pages < 2_000, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    items
}

fn ids(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_paged_in_every_order_come_back_once_each_in_order() {
    let app = spawn_app().await;
    let users = seed(&app, 1_000).await;
    assert_eq!(users.len(), 1_001);
    // The users are spread over every listing shard, so each page below merges them all.
    let mut per_shard = vec![0; LISTING_SHARDS as usize];
    for u in &users {
        per_shard[listing_shard(&u.id) as usize] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 10), "{per_shard:?}");

    let mut by_name: Vec<&User> = users.iter().collect();
    by_name.sort_by_key(|u| (u.profile.name.sort_key(), u.id.to_string()));
    let name_order: Vec<String> = by_name.iter().map(|u| u.id.to_string()).collect();
    let mut created_order: Vec<String> = users.iter().map(|u| u.id.to_string()).collect();
    created_order.sort();

    for (query, expected) in [
        ("sort=name&order=asc&limit=97", name_order.clone()),
        (
            "sort=name&order=desc&limit=200",
            name_order.iter().rev().cloned().collect(),
        ),
        ("sort=created&order=asc&limit=53", created_order.clone()),
        (
            "sort=created&order=desc&limit=31",
            created_order.iter().rev().cloned().collect::<Vec<_>>(),
        ),
    ] {
        let got = ids(&collect(&app, query).await);
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "{query}: a user came back twice");
        assert_eq!(got.len(), expected.len(), "{query}: wrong count");
        assert_eq!(got, expected, "{query}: wrong order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_page_through_exactly_the_matching_users() {
    let app = spawn_app().await;
    let users = seed(&app, 300).await;

    let suspended: HashSet<String> = users
        .iter()
        .filter(|u| u.status == Status::Suspended)
        .map(|u| u.id.to_string())
        .collect();
    for query in [
        "status=suspended&limit=10",
        "status=suspended&sort=created&order=desc&limit=7",
    ] {
        let got = ids(&collect(&app, query).await);
        assert_eq!(got.len(), suspended.len(), "{query}");
        assert_eq!(
            got.iter().cloned().collect::<HashSet<_>>(),
            suspended,
            "{query}"
        );
    }

    // Name prefixes match after NFKC and lower-casing: "watanabe", "Watanabe" and
    // "ＷＡＴＡＮＡＢＥ" are one prefix; half-width "ｲﾄｳ" is found by full-width "イトウ".
    for (prefix, expected_prefixes) in [
        ("watanabe", vec!["Watanabe", "watanabe", "ＷＡＴＡＮＡＢＥ"]),
        ("イトウ", vec!["ｲﾄｳ"]),
        ("髙橋", vec!["髙橋"]),
    ] {
        let expected: HashSet<String> = users
            .iter()
            .filter(|u| {
                expected_prefixes
                    .iter()
                    .any(|p| u.profile.name.as_str().starts_with(p))
            })
            .map(|u| u.id.to_string())
            .collect();
        assert!(!expected.is_empty());
        for sort in ["name", "created"] {
            let q = format!("q={}&sort={sort}&limit=9", urlencode(prefix));
            let got = ids(&collect(&app, &q).await);
            assert_eq!(got.len(), expected.len(), "{q}");
            assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected, "{q}");
        }
        // By name, within the prefix, in order both ways across the shards.
        let mut in_order: Vec<&User> = users
            .iter()
            .filter(|u| expected.contains(&u.id.to_string()))
            .collect();
        in_order.sort_by_key(|u| (u.profile.name.sort_key(), u.id.to_string()));
        let in_order: Vec<String> = in_order.iter().map(|u| u.id.to_string()).collect();
        let q = format!("q={}&sort=name&limit=4", urlencode(prefix));
        assert_eq!(ids(&collect(&app, &q).await), in_order, "{q}");
        let q = format!("q={}&sort=name&order=desc&limit=3", urlencode(prefix));
        let reversed: Vec<String> = in_order.iter().rev().cloned().collect();
        assert_eq!(ids(&collect(&app, &q).await), reversed, "{q}");
    }

    // Exact look-ups go through the claims, in any case.
    let target = &users[5];
    for q in [
        format!("email={}", target.profile.email.as_str().to_uppercase()),
        format!(
            "login_id={}",
            target.profile.login_id.as_str().to_uppercase()
        ),
    ] {
        let got = ids(&collect(&app, &q).await);
        assert_eq!(got, vec![target.id.to_string()], "{q}");
    }
    let got = collect(&app, "email=nobody@example.com").await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn bad_list_parameters_are_named_in_the_problem() {
    let app = spawn_app().await;
    let resp = app
        .as_admin(
            Method::GET,
            "/users?limit=0&sort=age&order=up&status=gone&colour=red",
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, 400, "invalid_request").await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["colour", "limit", "order", "sort", "status"]);

    let resp = app
        .as_admin(Method::GET, "/users?cursor=forged.cursor")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 400, "invalid_cursor").await;
}

/// Puts a user's index keys back where they were before the listing indexes were sharded
/// (`TENANT#{tid}`, and `DELETED#{tid}` for a tombstone), as a table written before would
/// hold them.
async fn unshard(app: &TestApp, user: &User, deleted: bool) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let tenant = &app.acme.id;
    let mut update = app
        .store
        .client()
        .update_item()
        .table_name(app.store.table())
        .key(
            "pk",
            AttributeValue::S(format!("USER#{tenant}#{}", user.id)),
        )
        .key("sk", AttributeValue::S("USER".into()));
    update = if deleted {
        update
            .update_expression("SET gsi2pk = :d")
            .expression_attribute_values(":d", AttributeValue::S(format!("DELETED#{tenant}")))
    } else {
        update
            .update_expression("SET gsi1pk = :t, gsi2pk = :t")
            .expression_attribute_values(":t", AttributeValue::S(format!("TENANT#{tenant}")))
    };
    update.send().await.expect("unsharding a user");
}

/// Users in a partition of the by-created index.
async fn in_partition(app: &TestApp, partition: String) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = app
        .store
        .client()
        .query()
        .table_name(app.store.table())
        .index_name(BY_CREATED.name)
        .key_condition_expression("gsi2pk = :p")
        .expression_attribute_values(":p", AttributeValue::S(partition))
        .send()
        .await
        .expect("query");
    out.items.unwrap_or_default().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_stored_before_sharding_are_listed_and_moved_into_their_shards_once() {
    let app = spawn_app().await;
    let users = seed(&app, 120).await;
    let tenant = &app.acme.id;
    // Everyone but the admin as a table from before sharding holds them; one of them deleted.
    let gone = &users[3];
    app.store.delete_user(gone).await.expect("deleting a user");
    for u in users.iter().filter(|u| u.id != app.acme.admin.id) {
        unshard(&app, u, u.id == gone.id).await;
    }
    assert_eq!(in_partition(&app, format!("TENANT#{tenant}")).await, 119);
    assert_eq!(in_partition(&app, format!("DELETED#{tenant}")).await, 1);
    let before = ids(&collect(&app, "sort=name&limit=50").await);
    assert_eq!(before.len(), 120, "listings read the old partition too");
    let billed = app.store.billing_members(tenant).await.expect("members");
    assert_eq!(billed.members.len(), 121, "billing too, tombstone included");

    // Two runs at once, as an operator might start by mistake: each user moves once.
    let (a, b) = tokio::join!(
        app.store.move_to_listing_shards(tenant),
        app.store.move_to_listing_shards(tenant),
    );
    let (a, b) = (a.expect("run"), b.expect("run"));
    assert_eq!(a.moved + b.moved, 120, "{a:?} {b:?}");
    assert_eq!(in_partition(&app, format!("TENANT#{tenant}")).await, 0);
    assert_eq!(in_partition(&app, format!("DELETED#{tenant}")).await, 0);
    let again = app.store.move_to_listing_shards(tenant).await.expect("run");
    assert_eq!((again.moved, again.skipped), (0, 0), "nothing left to move");

    assert_eq!(ids(&collect(&app, "sort=name&limit=50").await), before);
    let billed = app.store.billing_members(tenant).await.expect("members");
    assert_eq!(billed.members.len(), 121);
    let moved = app
        .store
        .get_user(tenant, &users[7].id)
        .await
        .expect("a moved user");
    assert_eq!(
        moved.version, users[7].version,
        "moving changes nothing about a user"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}
