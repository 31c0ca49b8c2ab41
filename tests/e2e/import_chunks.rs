//! The import's chunks against moto through the store: the whole plan's counters reserved
//! once, each chunk committed once with its own journal entry (a replay finds it written), a
//! failed apply giving back exactly what its unwritten chunks held, and the lock's fence.

use rollcall::domain::{DisplayName, Email, LoginId, Profile, Role, Status, User, UserId};
use rollcall::import::{ImportJob, ImportMode, ImportStatus, JobError, PlanChunks, Planned};
use rollcall::store::{SeatCap, StoreError, TenantDelta, Written};
use rollcall_e2e::spawn_app;

fn creates(app: &rollcall_e2e::TestApp, n: usize) -> Vec<Planned> {
    (0..n)
        .map(|i| {
            let login = format!("chunked{i:03}");
            Planned::Create {
                line: i + 2,
                user: Box::new(User::new(
                    app.acme.id.clone(),
                    UserId::generate(),
                    Profile::minimal(
                        LoginId::parse(&login).unwrap(),
                        Email::parse(&format!("{login}@acme.example")).unwrap(),
                        DisplayName::parse(&format!("分割 {i}")).unwrap(),
                        Role::Member,
                    ),
                    Status::Invited,
                    app.store.clock().now(),
                )),
            }
        })
        .collect()
}

/// A job of `acme`'s admin, as `POST /imports` creates it.
async fn new_job(app: &rollcall_e2e::TestApp) -> ImportJob {
    let job = ImportJob::new(
        app.acme.id.clone(),
        app.acme.admin.id,
        ImportMode::Apply,
        rollcall::csv::encoding::EncodingChoice::Auto,
        app.store.clock().now(),
    );
    app.store.create_import(&job).await.expect("job");
    job
}

#[tokio::test]
async fn chunks_commit_once_and_a_failed_apply_gives_back_what_its_unwritten_chunks_reserved() {
    let app = spawn_app().await;
    let store = &app.store;
    let tenant = &app.acme.id;
    let (_, before) = store.tenant_and_seats(tenant).await.expect("tenant");
    let mut job = new_job(&app).await;
    let fence = store
        .acquire_import_lock(tenant, &job.id, std::time::Duration::from_secs(60))
        .await
        .expect("lock");

    let plan = creates(&app, 100);
    let mut delta = TenantDelta::default();
    for change in &plan {
        delta += TenantDelta::of_change(change);
    }
    let (tenant_now, _) = store.tenant_and_seats(tenant).await.expect("tenant");
    let cap = SeatCap {
        limit: tenant_now.seat_limit,
        policy: tenant_now.billing,
    };
    store
        .begin_import_apply(&mut job, delta, cap)
        .await
        .expect("begin");
    assert_eq!(job.status, ImportStatus::Applying);
    let (_, reserved) = store.tenant_and_seats(tenant).await.expect("tenant");
    assert_eq!(
        reserved.active_or_invited,
        before.active_or_invited + 100,
        "the whole plan's seats are reserved before the first chunk"
    );

    let chunks: Vec<_> = PlanChunks::new(plan.into_iter().map(Ok))
        .collect::<Result<_, _>>()
        .expect("chunks");
    assert_eq!(chunks.len(), 4, "33 creates per chunk");
    let at = store.clock().now();
    // Two chunks at once: they share no item, so neither cancels the other.
    let (first, second) = tokio::join!(
        store.apply_import_chunk(&job, &chunks[0], at, fence),
        store.apply_import_chunk(&job, &chunks[2], at, fence),
    );
    assert_eq!(first.expect("chunk 0"), Written::Now { rows: 33 });
    assert_eq!(second.expect("chunk 2"), Written::Now { rows: 33 });
    assert_eq!(
        store
            .apply_import_chunk(&job, &chunks[0], at, fence)
            .await
            .expect("a replay"),
        Written::Before,
        "a chunk written before is found in the journal, not written twice"
    );
    let journal = store.import_journal(&job).await.expect("journal");
    assert_eq!(journal.rows_done, vec![0, 2]);
    assert_eq!(journal.applied_rows, 66);
    assert_eq!(journal.written.active_or_invited, 66);

    job.error = Some(JobError {
        code: "apply_failed".into(),
        line: None,
        byte_offset: None,
        message_ja: "テスト".into(),
        message_en: "test".into(),
    });
    store.fail_applying_import(&mut job).await.expect("failed");
    let stored = store.get_import(tenant, &job.id).await.expect("job");
    assert_eq!(stored.status, ImportStatus::Failed);
    assert_eq!(
        (stored.journal.chunks_done, stored.journal.applied_rows),
        (2, 66)
    );
    let (_, after) = store.tenant_and_seats(tenant).await.expect("tenant");
    assert_eq!(
        after.active_or_invited,
        before.active_or_invited + 66,
        "the counters count exactly the users written"
    );
    let members = store.live_members(tenant).await.expect("members");
    assert_eq!(members.members.len() as u64, after.active_or_invited);
}

#[tokio::test]
async fn a_delivery_taken_over_loses_its_fence_and_can_no_longer_renew() {
    let app = spawn_app().await;
    let store = &app.store;
    let job = rollcall::domain::ImportId::generate();
    let lease = std::time::Duration::from_secs(60);
    let first = store
        .acquire_import_lock(&app.acme.id, &job, lease)
        .await
        .expect("lock");
    store
        .renew_import_lock(&app.acme.id, &job, first, lease)
        .await
        .expect("the holder renews");
    // A redelivery of the same job takes the lock over.
    let second = store
        .acquire_import_lock(&app.acme.id, &job, lease)
        .await
        .expect("taken over");
    assert!(second > first);
    assert!(matches!(
        store
            .renew_import_lock(&app.acme.id, &job, first, lease)
            .await,
        Err(StoreError::ImportLockLost)
    ));
    store
        .renew_import_lock(&app.acme.id, &job, second, lease)
        .await
        .expect("the new holder renews");
    let other = rollcall::domain::ImportId::generate();
    assert!(matches!(
        store.acquire_import_lock(&app.acme.id, &other, lease).await,
        Err(StoreError::ImportInProgress)
    ));
}

#[tokio::test]
async fn a_seat_taken_after_the_check_stops_the_apply_before_anything_is_written() {
    let app = spawn_app().await;
    let store = &app.store;
    let tenant = &app.acme.id;
    let (settings, before) = store.tenant_and_seats(tenant).await.expect("tenant");
    // The check saw room for 10 more; by the step to applying, one seat went elsewhere.
    let limit = u32::try_from(before.active_or_invited).unwrap() + 10;
    let mut policy = settings.billing;
    policy.count_invited = true;
    store
        .set_billing_settings(tenant, Some(limit - 1), policy)
        .await
        .expect("limit");
    let mut job = new_job(&app).await;
    let mut delta = TenantDelta::default();
    for change in &creates(&app, 10) {
        delta += TenantDelta::of_change(change);
    }
    let cap = SeatCap {
        limit: Some(limit - 1),
        policy,
    };
    let refused = store.begin_import_apply(&mut job, delta, cap).await;
    assert!(
        matches!(refused, Err(StoreError::SeatLimitReached { limit: l }) if l == limit - 1),
        "{refused:?}"
    );
    let stored = store.get_import(tenant, &job.id).await.expect("job");
    assert_eq!(stored.status, ImportStatus::Waiting, "the job did not move");
    assert_eq!(stored.reserved, None);
    let (_, after) = store.tenant_and_seats(tenant).await.expect("tenant");
    assert_eq!(after, before, "nothing reserved");
    // With the seat back, the same plan is reserved whole.
    store
        .set_billing_settings(tenant, Some(limit), policy)
        .await
        .expect("limit");
    let cap = SeatCap {
        limit: Some(limit),
        policy,
    };
    store
        .begin_import_apply(&mut job, delta, cap)
        .await
        .expect("reserved");
    let (_, after) = store.tenant_and_seats(tenant).await.expect("tenant");
    assert_eq!(after.active_or_invited, u64::from(limit));
}

#[tokio::test]
async fn a_job_left_applying_by_the_version_before_ends_clearly_and_frees_the_tenant() {
    let app = spawn_app().await;
    let mut job = new_job(&app).await;
    // As the version before left it: applying, a chunk done, no reservation, no journal
    // entries.
    job.status = ImportStatus::Applying;
    job.applied_at = Some(app.store.clock().now());
    job.journal.chunks = 3;
    job.journal.chunks_done = 1;
    app.store.save_import(&mut job).await.expect("job");
    let (_, before) = app
        .store
        .tenant_and_seats(&app.acme.id)
        .await
        .expect("seats");

    let body = serde_json::json!({"apply": {"tenant": app.acme.id, "job": job.id}});
    app.importer()
        .handle_message(&body.to_string())
        .await
        .expect("handled, not delivered again");
    let ended = app
        .store
        .get_import(&app.acme.id, &job.id)
        .await
        .expect("job");
    assert_eq!(ended.status, ImportStatus::Failed);
    let error = ended.error.expect("an error");
    assert_eq!(error.code, "import_interrupted_by_upgrade");
    assert!(
        error.message_en.contains("import the rest again"),
        "{error:?}"
    );
    let (_, after) = app
        .store
        .tenant_and_seats(&app.acme.id)
        .await
        .expect("seats");
    assert_eq!(
        after, before,
        "the counters stay as the version before left them"
    );
    // The tenant is free for the next import.
    app.store
        .acquire_import_lock(
            &app.acme.id,
            &rollcall::domain::ImportId::generate(),
            std::time::Duration::from_secs(60),
        )
        .await
        .expect("the lock is free");
}
