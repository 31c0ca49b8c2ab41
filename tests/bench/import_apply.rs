//! Import apply benchmark, written into BENCHMARKS.md (between its `import-apply` markers): one
//! bulk-import job on a 100,000-row file of NEW rows (about 10 MB) against moto, through the
//! handler's entry path, in this process.
//!
//! - DynamoDB requests by operation, write requests per created user (target ≤ 0.25) and
//!   items written per user;
//! - the peak RSS of the whole handler (target ≤ 128 MB): a second job on the same kind of
//!   file, run by the bulk-import release binary itself, as Lambda runs it, against a local
//!   Lambda Runtime API; its `VmHWM` once it has answered;
//! - the wall time against moto, with the arithmetic for the same job on AWS.
//!
//! `IMPORT_BENCH_ROWS` (default 100,000) changes the size. `make bench` (or
//! `cargo bench -p rollcall-e2e --bench import_apply`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bulk_import::{
    ImportConfig, Importer, MAX_ROWS_CEILING, SqsBatchResponse as BatchResponse, SqsEvent,
};
use lambda_runtime::{Context, LambdaEvent};
use rollcall::csv::CsvWriter;
use rollcall::csv::encoding::EncodingChoice;
use rollcall::import::{ImportJob, ImportMode, ImportStatus};
use rollcall_e2e::runtime_api::{Outcome, RuntimeApi, release_binaries, spawn_function};
use rollcall_e2e::{TestApp, machine, moto, spawn_app, write_benchmark_section};
use serde_json::json;

/// The allocator the bulk-import function runs with (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FAMILY: [&str; 8] = [
    "山田", "佐藤", "髙橋", "鈴木", "田中", "渡辺", "伊藤", "中村",
];
const DEPARTMENTS: [&str; 5] = ["営業部", "開発部", "総務部", "経理部", "人事部"];

fn file(rows: usize) -> Vec<u8> {
    let mut w = CsvWriter::new();
    w.row([
        "operation",
        "login_id",
        "name",
        "email",
        "department",
        "groups",
        "phone",
        "role",
    ]);
    for n in 0..rows {
        let login = format!("u{n:06}");
        w.row([
            "NEW",
            &login,
            &format!("{} 太郎 {n}", FAMILY[n % 8]),
            &format!("{login}@example.co.jp"),
            DEPARTMENTS[n % 5],
            &format!("{}|東京", DEPARTMENTS[n % 5]),
            "03-1234-5678",
            "member",
        ]);
    }
    w.finish().into_bytes()
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

fn main() {
    let rows: usize = std::env::var("IMPORT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_ROWS_CEILING);
    let binaries = release_binaries();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(rows, &binaries.join("bulk-import")));
}

/// A job in `app`'s tenant `acme`, its file uploaded, and the SQS message of its upload.
async fn uploaded_job(app: &TestApp, rows: usize) -> (ImportJob, usize, serde_json::Value) {
    let job = ImportJob::new(
        app.acme.id.clone(),
        app.acme.admin.id,
        ImportMode::Apply,
        EncodingChoice::Auto,
        app.store.clock().now(),
    );
    app.store.create_import(&job).await.expect("job");
    let bytes = file(rows);
    let size = bytes.len();
    app.bucket
        .put(&job.upload_key(), "text/csv", bytes)
        .await
        .expect("upload");
    let body = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": app.bucket.name()},
        "object": {"key": job.upload_key()}
    }}]});
    let message = json!({"messageId": "bench", "body": body.to_string()});
    (job, size, message)
}

/// The job as stored, which must have applied.
async fn applied(app: &TestApp, job: &ImportJob) -> ImportJob {
    let done = app
        .store
        .get_import(&job.tenant, &job.id)
        .await
        .expect("job");
    assert_eq!(done.status, ImportStatus::Applied, "{:?}", done.error);
    done
}

/// Runs one job with the release binary against a local Runtime API; returns its peak RSS in
/// KiB once it has answered.
async fn peak_rss_of_binary(binary: &std::path::Path, rows: usize) -> u64 {
    let app = spawn_app().await;
    let (job, _, message) = uploaded_job(&app, rows).await;
    let api = RuntimeApi::start().await;
    let env = HashMap::from([
        ("TABLE_NAME", app.store.table().to_owned()),
        ("BUCKET_NAME", app.bucket.name().to_owned()),
        ("IMPORT_MAX_ROWS", rows.to_string()),
    ]);
    let process = spawn_function(binary, &api, &moto().endpoint(), &env);
    api.push(json!({ "Records": [message] }));
    let outcome = api
        .outcome(Duration::from_secs(3_600))
        .await
        .expect("the function answered");
    let peak = process.peak_rss_kib();
    drop(process);
    assert!(
        matches!(&outcome, Outcome::Response(_, r) if r == &json!({"batchItemFailures": []})),
        "{outcome:?}"
    );
    applied(&app, &job).await;
    peak
}

async fn run(rows: usize, binary: &std::path::Path) {
    let peak = peak_rss_of_binary(binary, rows).await;
    let app = spawn_app().await;
    let importer = Importer::new(
        app.store.clone(),
        app.bucket.clone(),
        ImportConfig {
            max_rows: rows,
            ..ImportConfig::default()
        },
    );
    let (job, size, message) = uploaded_job(&app, rows).await;
    let event: SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": [message] })).expect("an event");
    app.counter.reset();
    let started = Instant::now();
    let response = importer
        .function_handler(LambdaEvent::new(event, Context::default()))
        .await
        .expect("handler");
    let elapsed = started.elapsed();
    assert_eq!(response, BatchResponse::default());
    let done = applied(&app, &job).await;
    let created = done.counts.expect("counts").created;
    assert_eq!(created as usize, rows);

    let requests = app.counter.snapshot();
    let writes: u64 = ["TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem"]
        .iter()
        .map(|op| requests.get(*op).copied().unwrap_or(0))
        .sum();
    let per_user = writes as f64 / created as f64;
    let journal = done.journal;
    let chunks = u64::from(journal.chunks);
    let invitation_chunks = u64::from(journal.invitation_chunks);
    // Items each transaction writes or checks: per user its item and two claims, then its
    // invitation; per row chunk the journal, the lock check and the tenant's counters; per
    // invitation chunk the journal and the lock check.
    let items = 3 * created + created + 3 * chunks + 2 * invitation_chunks;
    let items_per_user = items as f64 / created as f64;
    let table: String = requests
        .iter()
        .map(|(op, n)| format!("| {op} | {n} |\n"))
        .collect();
    let transactions = chunks + invitation_chunks;
    let body = format!(
        "`cargo bench -p rollcall-e2e --bench import_apply`: one job, {rows} NEW rows \
         ({size_mb:.1} MB, UTF-8 with BOM), through `function_handler` against moto, for the \
         requests and the time; and the same job run by the bulk-import release binary against \
         a local Lambda Runtime API, for the peak resident set of the whole handler (runtime, \
         SDK clients, the job). Measured {date} on {machine}.\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | DynamoDB write requests per created user | **{per_user:.4}** ({writes} for {created}) | ≤ 0.25 {requests_verdict} |\n\
         | items written (or condition-checked) per user | {items_per_user:.3} ({items}) | |\n\
         | peak RSS of the function process (`VmHWM`) | **{peak_mb:.1} MB** | ≤ 128 MB {rss_verdict} |\n\
         | wall time against moto | {secs:.1} s | |\n\n\
         Requests by operation:\n\n| operation | requests |\n|---|---|\n{table}\n\
         The job wrote {chunks} chunks of rows (up to 97 items each: 32 users × 3 items, \
         with the journal, the lock check and the tenant's counters) and {invitation_chunks} \
         chunks of invitations (98 each). The other writes are the job's own steps and the \
         lock.\n\n\
         **On AWS**, the same job: every item is a transactional write, 2 WCU per KB, so about \
         {wcu} WCU for the rows and invitations (users are under 1 KB), plus one write per \
         index entry (by_name, by_created for users; by_due for invitations). The users, claims \
         and invitations each have their own partition key, so the writes spread over the \
         table's partitions; the one key every transaction touches is the tenant's \
         (`TENANT#{{tid}}`: job, lock, counters: 6 WCU per transaction), far below a \
         partition's 1,000 WCU/s at the rate one job writes. The {transactions} transactions run \
         one after another: at 30–60 ms each that is {low:.0}–{high:.0} s, plus about \
         {reads} BatchGetItem requests of 100 keys to read the claims; the function's 900 s \
         timeout holds it, and a job cut short resumes from its journal. An on-demand table \
         starts able to take 4,000 write units a second, which one job's rate (100 items per \
         transaction, about 20 transactions a second: ~4,000 WCU/s) reaches; a tenant \
         importing 100,000 rows on a fresh table may see throttling, which the SDK retries \
         and the journal makes safe.\n",
        size_mb = size as f64 / 1_048_576.0,
        date = chrono::Utc::now().format("%Y-%m-%d"),
        machine = machine(),
        peak_mb = peak as f64 / 1024.0,
        requests_verdict = verdict(per_user <= 0.25),
        rss_verdict = verdict(peak as f64 / 1024.0 <= 128.0),
        secs = elapsed.as_secs_f64(),
        wcu = 2 * items,
        low = transactions as f64 * 0.03,
        high = transactions as f64 * 0.06,
        reads = (2 * rows).div_ceil(100),
    );
    println!("{body}");
    write_benchmark_section("import-apply", "Import: applying a file", &body);
}
