//! Invitation benchmarks, written into BENCHMARKS.md (between its `invitations` markers):
//!
//! - argon2id at the chosen parameters (m = 19 MiB, t = 2, p = 1): time per hash on one core,
//!   and how much the process's peak resident memory grows for it;
//! - mails per second send-invitations sustains against moto when the stream delivers batches
//!   of 100 (the template's batch size), and the DynamoDB requests it makes per mail.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench invitations`).

use std::time::Instant;

use rollcall::domain::{
    DisplayName, Email, Invitation, InvitationTrigger, LoginId, PasswordHash, PasswordPolicy,
    Profile, Role, Status, User, UserId,
};
use rollcall_e2e::runtime_api::peak_rss_of;
use rollcall_e2e::{mail_to, spawn_app, unique_address, write_benchmark_section};

/// Peak resident set size of this process so far, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    peak_rss_of("/proc/self/status")
}

const USERS: usize = 500;
const HASHES: usize = 20;

#[tokio::main]
async fn main() {
    // argon2 first, while the process is still small, so the peak it adds is visible.
    let login = LoginId::parse("bench").expect("login id");
    let password = PasswordPolicy::default()
        .check("Sakura#2026", &login)
        .expect("a valid password");
    let before = peak_rss_kib();
    let mut times = Vec::new();
    for _ in 0..HASHES {
        let t = Instant::now();
        let hash = PasswordHash::of(&password).expect("hashing");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(hash.verify("Sakura#2026"));
    }
    let after = peak_rss_kib();
    times.sort_by(f64::total_cmp);
    let median = times[HASHES / 2];
    let mean = times.iter().sum::<f64>() / HASHES as f64;
    let peak_growth = match (before, after) {
        (Some(b), Some(a)) => format!("{:.1} MiB", (a.saturating_sub(b)) as f64 / 1024.0),
        _ => "not measured (no /proc)".to_owned(),
    };

    // Mails per second: USERS invitations queued, then one poll of the stream.
    let app = spawn_app().await;
    let sender = app.sender().await;
    let mut poller = app.poller().await;
    let domain = unique_address("bench");
    let now = app.store.clock().now();
    let mut addresses = Vec::new();
    for i in 0..USERS {
        let email = format!("u{i}.{domain}");
        let user = User::new(
            app.acme.id.clone(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse(&format!("u{i}")).expect("login"),
                Email::parse(&email).expect("email"),
                DisplayName::parse(&format!("User {i}")).expect("name"),
                Role::Member,
            ),
            Status::Invited,
            now,
        );
        let invitation = Invitation::new(&user, InvitationTrigger::Created, None, now);
        app.store
            .create_user(&user, Some(&invitation), None)
            .await
            .expect("creating a user");
        addresses.push(email);
    }
    let (read, records) = poller.read().await.expect("reading the stream");
    app.counter.reset();
    let t = Instant::now();
    let report = poller
        .deliver_records(&sender, records)
        .await
        .expect("delivering");
    let elapsed = t.elapsed().as_secs_f64();
    let requests = app.counter.snapshot();
    assert_eq!(report.delivered, USERS, "{report:?} of {read} records read");
    assert_eq!(mail_to(&addresses[USERS - 1]).await.len(), 1);
    let per_mail: Vec<String> = requests
        .iter()
        .map(|(op, n)| format!("{:.2} × {op}", *n as f64 / USERS as f64))
        .collect();

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let body = format!(
        "Measured by `make bench` (`cargo bench -p rollcall-e2e --bench invitations`) on a \
         {cores}-core machine, {date}.\n\n\
         | measure | result |\n|---|---|\n\
         | argon2id hash (m = 19 MiB, t = 2, p = 1), median of {HASHES} | {median:.1} ms |\n\
         | argon2id hash, mean of {HASHES} | {mean:.1} ms |\n\
         | peak resident memory added by hashing | {peak_growth} |\n\
         | mails sent, batches of {batch} from the stream | {USERS} in {elapsed:.2} s = {rate:.0} mails/s |\n\
         | DynamoDB requests per mail | {per_mail} |\n\
         | invocations for {USERS} records | {invocations} |\n\n\
         The peak memory is one working memory of m = 19 MiB, reused by every hash. With argon2's \
         own per-hash allocation, glibc's heap grew by 19 MiB per hash and plateaued near \
         158 MiB resident after 9 hashes (measured on this machine), too much for a 256 MB \
         Lambda; see docs/architecture.md.\n\n\
         moto serves one request at a time, so the mail rate here is bounded by moto, not by the \
         sender (per mail: one query of the user's partition, one transaction for the token and \
         the lease, one update to SENT, one SES call; the tenant is read once per batch by each of the mails in flight). On AWS \
         the sender keeps 4 mails in flight per batch (`SEND_CONCURRENCY`), and SES's account \
         sending rate is the real limit.",
        date = chrono::Utc::now().format("%Y-%m-%d"),
        batch = poller.settings().batch_size,
        rate = USERS as f64 / elapsed,
        per_mail = per_mail.join(", "),
        invocations = report.invocations,
    );
    println!("{body}");
    write_benchmark_section("invitations", "Invitations", &body);
}
