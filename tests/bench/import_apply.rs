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
    DEFAULT_CONCURRENCY, ImportConfig, Importer, MAX_ROWS_CEILING,
    SqsBatchResponse as BatchResponse, SqsEvent,
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
    // Items each transaction writes: per user its item and two claims, then its invitation;
    // per chunk of either kind its journal entry.
    let items = 3 * created + created + chunks + invitation_chunks;
    let items_per_user = items as f64 / created as f64;
    let table: String = requests
        .iter()
        .map(|(op, n)| format!("| {op} | {n} |\n"))
        .collect();

    // What the items weigh, as DynamoDB sizes them, read back from the table.
    let sizes = ItemSizes::read(&app, &done).await;
    let wcu = |bytes: usize| bytes.div_ceil(1024) as u64;
    // Transactional writes cost two write units per KB of each item; the index entries are
    // ordinary writes of the projected item (all attributes) into each index.
    let base = created * 2 * (wcu(sizes.user) + 2 * wcu(sizes.claim) + wcu(sizes.invitation))
        + (chunks + invitation_chunks) * 2 * wcu(sizes.journal);
    let by_name = created * wcu(sizes.user);
    let by_created = created * wcu(sizes.user);
    let by_due = created * wcu(sizes.invitation);
    let per_user_wcu = base as f64 / created as f64;
    let warm = 40_000.0;
    let fresh = 4_000.0;
    let index_most = by_name.max(by_created).max(by_due) as f64;
    let paper_warm = (base as f64 / warm).max(index_most / warm);
    let paper_fresh = (base as f64 / fresh).max(index_most / fresh);
    let summed_warm = (base + by_name + by_created + by_due) as f64 / warm;
    // The chain of requests that wait for one another: with `concurrency` chunks in flight,
    // the rows take ceil(chunks / concurrency) rounds, then the invitations likewise.
    let concurrency = DEFAULT_CONCURRENCY as u64;
    let rounds = chunks.div_ceil(concurrency) + invitation_chunks.div_ceil(concurrency);
    let reads = (2 * rows).div_ceil(100) as u64;
    let read_rounds = reads.div_ceil(16);
    // Fixed steps: the job read, the lock, the job to validating, the tenant read, the
    // uploader read, the step to applying (with the reservation), the journal read, the job
    // to applied, the lock released.
    let fixed = 9;
    let chain = fixed + read_rounds + rounds;
    let latency_low = rounds as f64 * 0.03;
    let latency_high = rounds as f64 * 0.06;
    let read_units = 2 * rows as u64;
    let read_time = read_units as f64 / warm;
    let verdict_30 = verdict(paper_warm.max(latency_high) <= 30.0);

    // Listing the 100,000-user tenant a page at a time across the shards.
    let listing = listing_requests(&app).await;

    let body = format!(
        "`cargo bench -p rollcall-e2e --bench import_apply`: one job, {rows} NEW rows \
         ({size_mb:.1} MB, UTF-8 with BOM), through `function_handler` against moto with \
         {concurrency} chunks in flight (`IMPORT_CONCURRENCY`'s default), for the requests, the \
         items and the time; and the same job run by the bulk-import release binary against a \
         local Lambda Runtime API, for the peak resident set of the whole handler (runtime, SDK \
         clients, the job). Measured {date} on {machine}.\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | DynamoDB write requests per created user | **{per_user:.4}** ({writes} for {created}) | ≤ 0.25 {requests_verdict} |\n\
         | items written per user (user, 2 claims, invitation, journal share) | {items_per_user:.3} ({items}) | |\n\
         | base-table write units per user (item sizes below) | {per_user_wcu:.2} | |\n\
         | dependent request chain (DynamoDB) | {chain} requests: {fixed} job steps, {read_rounds} rounds of reads, {rounds} rounds of chunks | |\n\
         | **paper time of the apply on a warmed table** | **{paper_warm:.1} s** | ≤ 30 s {verdict_30} |\n\
         | paper time on a new on-demand table | {paper_fresh:.0} s | |\n\
         | peak RSS of the function process (`VmHWM`) | **{peak_mb:.1} MB** | ≤ 128 MB {rss_verdict} |\n\
         | wall time against moto | {secs:.1} s (before the chunks ran in parallel: 272.9 s) | |\n\n\
         Requests by operation:\n\n| operation | requests |\n|---|---|\n{table}\n\
         The job wrote {chunks} chunks of rows (33 users × 3 items and the chunk's journal entry, \
         99 items) and {invitation_chunks} chunks of invitations (99 and the journal entry), \
         {concurrency} at a time, each chunk waiting only for earlier chunks that touch one of \
         its claims (none in this file).\n\n\
         **Item sizes** (DynamoDB's rules: names and values in UTF-8 bytes, numbers about one \
         byte per two digits, lists and maps 3 bytes and 1 per element): user {user} B, \
         claim {claim} B, invitation {invitation} B, journal entry {journal_b} B. Each is under \
         1 KB, so one write unit, two in a transaction ([read and write operations]\
         (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html), \
         [transactions: capacity](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html)).\n\n\
         **The paper time.** The base table takes {base} write units for the job \
         ({per_user_wcu:.2} a user: user, claims and invitation in transactions, and the journal \
         entries); the indexes take {by_name} (`by_name`), {by_created} (`by_created`) and \
         {by_due} (`by_due`), each index having its own partitions and throughput. An on-demand \
         table may take 40,000 write units a second by default (the per-table quota, [maximum \
         throughput for on-demand tables]\
         (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html)) \
         once it is warm; a new on-demand table starts at 4,000 ([warm throughput]\
         (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html), \
         which also says how to pre-warm one). So the writes need {paper_warm:.1} s on a warm \
         table and {paper_fresh:.0} s on a new one (the pace backs off on throttling meanwhile). \
         Counting the index writes against the same 40,000 too, the most pessimistic reading, \
         gives {summed_warm:.1} s. The chain of requests does not bind: {rounds} rounds of \
         transactions at 30–60 ms are {latency_low:.1}–{latency_high:.1} s, under the \
         throughput time. Checking the file first reads {reads} batches of 100 claims and \
         users, strongly consistent ({read_units} read units: {read_time:.1} s at the table's \
         40,000 read units a second, 16 batches in flight), before the apply.\n\n\
         **The tenant's ceiling.** No item is written by every chunk any more: the tenant's \
         counters move once for the whole plan, the lock is renewed between chunks, and each \
         chunk's journal entry is an item of its own in the job's journal partition (2 write \
         units a chunk of 33 users, so that partition's 1,000 write units a second allow 16,500 \
         users a second). Users and claims each have their own partition. The listing indexes \
         hold a tenant in 32 shards: a new user is one write unit in one shard of each index, a \
         rename two in `by_name`, so the shards take 32,000 new users (16,000 renames) a second \
         before one of them reaches a partition's 1,000 write units a second ([partition \
         limits](https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html)). \
         A tenant's own ceiling is therefore **16,500 users a second**, set by its import's \
         journal partition; the table's quota (40,000 write units a second by default, \
         {quota_users:.0} new users a second at {per_user_wcu:.2} units each) is the deployment's \
         to raise.\n\n\
         **Against moto** the job took {secs:.1} s. moto answers one request at a time, so \
         chunks in flight overlap only the client's side (building, signing, parsing) and the \
         network with moto's work: the time is moto's, proportional to the items written, and \
         says nothing of DynamoDB's pace, which the paper time above derives.\n\n\
         **Listing the tenant's {listed} users** (32 shards and the pre-shard partition), a page \
         of 50: each page reads every shard from the page key on, all at once, and reads on only \
         a shard that runs out before the page is full.\n\n| pages | Query requests per page |\n|---|---|\n{listing}\n",
        size_mb = size as f64 / 1_048_576.0,
        date = chrono::Utc::now().format("%Y-%m-%d"),
        machine = machine(),
        peak_mb = peak as f64 / 1024.0,
        requests_verdict = verdict(per_user <= 0.25),
        rss_verdict = verdict(peak as f64 / 1024.0 <= 128.0),
        secs = elapsed.as_secs_f64(),
        user = sizes.user,
        claim = sizes.claim,
        invitation = sizes.invitation,
        journal_b = sizes.journal,
        quota_users = warm / per_user_wcu,
        listed = created + 1,
    );
    println!("{body}");
    write_benchmark_section("import-apply", "Import: applying a file", &body);
}

/// The sizes, as DynamoDB counts them, of one item of each kind the job wrote.
struct ItemSizes {
    user: usize,
    claim: usize,
    invitation: usize,
    journal: usize,
}

impl ItemSizes {
    async fn read(app: &TestApp, job: &ImportJob) -> ItemSizes {
        use aws_sdk_dynamodb::types::AttributeValue;
        let client = app.store.client();
        let query = |pk: String| {
            client
                .query()
                .table_name(app.store.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk))
        };
        let tenant = &job.tenant;
        let login = query(format!("LOGIN#{tenant}#u000000"))
            .send()
            .await
            .expect("claim")
            .items
            .unwrap_or_default()
            .remove(0);
        let uid = login["user_id"].as_s().expect("user id").clone();
        let user_partition = query(format!("USER#{tenant}#{uid}"))
            .send()
            .await
            .expect("user")
            .items
            .unwrap_or_default();
        let size_of = |sk_prefix: &str| {
            user_partition
                .iter()
                .find(|i| i["sk"].as_s().is_ok_and(|s| s.starts_with(sk_prefix)))
                .map(item_size)
                .expect("an item of the kind")
        };
        let journal = query(format!("JOURNAL#{tenant}#{}", job.id))
            .limit(1)
            .send()
            .await
            .expect("journal")
            .items
            .unwrap_or_default();
        ItemSizes {
            user: size_of("USER"),
            claim: item_size(&login),
            invitation: size_of("INVITE#"),
            journal: journal.first().map(item_size).expect("a journal entry"),
        }
    }
}

/// An item's size by DynamoDB's rules: each attribute's name and value; strings and binary by
/// their bytes, numbers about one byte per two significant digits and one more, booleans and
/// nulls one byte, lists and maps three bytes and one per element besides their elements.
fn item_size(item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match v {
        V::S(s) => s.len(),
        V::N(n) => n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1,
        V::B(b) => b.as_ref().len(),
        V::Bool(_) | V::Null(_) => 1,
        V::L(items) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
        V::M(map) => {
            3 + map
                .iter()
                .map(|(k, i)| 1 + k.len() + value_size(i))
                .sum::<usize>()
        }
        V::Ss(set) => set.iter().map(String::len).sum(),
        V::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

/// Query requests and items read for one page of 50 in a few orders, over the shards.
async fn listing_requests(app: &TestApp) -> String {
    use rollcall::store::{ListQuery, SortBy, SortOrder};
    let mut out = String::new();
    for (label, sort, order, prefix) in [
        (
            "by name, A→Z, first page",
            SortBy::Name,
            SortOrder::Asc,
            None,
        ),
        ("by name, Z→A", SortBy::Name, SortOrder::Desc, None),
        (
            "by creation, newest first",
            SortBy::Created,
            SortOrder::Desc,
            None,
        ),
        (
            "name prefix 髙橋",
            SortBy::Name,
            SortOrder::Asc,
            Some("髙橋"),
        ),
    ] {
        let mut q = ListQuery {
            sort,
            order,
            status: None,
            name_prefix: prefix.map(str::to_owned),
            page_size: 50,
            after: None,
        };
        let mut pages = Vec::new();
        for _ in 0..3 {
            app.counter.reset();
            let page = app
                .store
                .list_users(&app.acme.id, &q)
                .await
                .expect("a page");
            assert_eq!(page.users.len(), 50, "{label}");
            pages.push(app.counter.snapshot().get("Query").copied().unwrap_or(0));
            q.after = page.next;
        }
        out.push_str(&format!(
            "| {label}, three pages in a row | {} |\n",
            pages
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}
