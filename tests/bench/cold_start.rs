//! Cold start and size benchmark, written into BENCHMARKS.md (between its `cold-start`
//! markers): for each function's release binary (as deployed: LTO, stripped), its size, and
//! the time from starting the process to its first request to a local Lambda Runtime API, the
//! moment Lambda counts as the end of initialisation. Median of `COLD_START_RUNS` runs
//! (default 15). Targets: at most 10 MB and 20 ms.
//!
//! Each function starts with the configuration it needs (as the template sets it) and the AWS
//! SDK pointed at a local address: initialisation builds the clients and reads no network, so
//! nothing needs to listen there.
//!
//! `make bench` (or `cargo bench -p rollcall-e2e --bench cold_start`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rollcall_e2e::runtime_api::{FUNCTIONS, RuntimeApi, release_binaries, spawn_function};
use rollcall_e2e::{machine, write_benchmark_section};

/// The variables each function refuses to start without, with local values.
fn config(function: &str) -> HashMap<&'static str, String> {
    let mut env = HashMap::from([
        ("TABLE_NAME", "rollcall".to_owned()),
        ("BUCKET_NAME", "rollcall-files".to_owned()),
    ]);
    match function {
        "users-api" => env.extend([
            (
                "JWT_HS256_SECRET",
                "a-local-signing-key-for-the-benchmark".to_owned(),
            ),
            ("JWT_ISSUER", "https://auth.example.com/".to_owned()),
            ("JWT_AUDIENCE", "rollcall".to_owned()),
            (
                "CURSOR_SECRET",
                "a-local-cursor-key-for-the-benchmark!".to_owned(),
            ),
            (
                "IMPORT_QUEUE_URL",
                "http://127.0.0.1:9/123456789012/rollcall-imports".to_owned(),
            ),
        ]),
        "auth" => env.extend([
            ("PUBLIC_BASE_URL", "https://id.example.com".to_owned()),
            (
                "SIGNING_KEY_KMS_KEY_ID",
                "alias/rollcall-signing-keys".to_owned(),
            ),
        ]),
        "send-invitations" => env.extend([
            ("APP_BASE_URL", "https://app.example.com".to_owned()),
            ("SENDER_ADDRESS", "no-reply@example.com".to_owned()),
        ]),
        _ => {}
    }
    env
}

/// An ELF file for aarch64 (`e_machine` 183), not one `make build ARCH=x86_64` left.
fn is_aarch64(elf: &[u8]) -> bool {
    elf.starts_with(b"\x7fELF") && elf.get(18..20) == Some(&183u16.to_le_bytes()[..])
}

fn main() {
    let runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let dir = release_binaries();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = String::from(
        "| function | size, x86_64 | size, arm64 (`make build`) | ≤ 10 MB | cold start, median | fastest | slowest | ≤ 20 ms |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for function in FUNCTIONS {
        let binary = dir.join(function);
        let size = std::fs::metadata(&binary)
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
            .len();
        let env = config(function);
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                runtime.block_on(async {
                    let api = RuntimeApi::start().await;
                    let started = Instant::now();
                    let process = spawn_function(&binary, &api, "http://127.0.0.1:9", &env);
                    let polled = api
                        .first_poll(Duration::from_secs(10))
                        .await
                        .unwrap_or_else(|| panic!("{function} never asked for an event"));
                    drop(process);
                    polled - started
                })
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[runs / 2];
        let mb = size as f64 / 1_048_576.0;
        let verdict = |met: bool| if met { "met" } else { "**not met**" };
        // What Lambda runs: the arm64 bootstrap `make build` leaves, when it is there.
        let lambda = dir
            .parent()
            .expect("target/")
            .join("lambda")
            .join(function)
            .join("bootstrap");
        let arm64_mb = std::fs::read(&lambda)
            .ok()
            .filter(|elf| is_aarch64(elf))
            .map(|elf| elf.len() as f64 / 1_048_576.0);
        let deployed_mb = arm64_mb.unwrap_or(mb);
        table.push_str(&format!(
            "| {function} | {mb:.1} MB | {} | {} | **{:.1} ms** | {:.1} ms | {:.1} ms | {} |\n",
            arm64_mb.map_or("(not built)".to_owned(), |m| format!("**{m:.1} MB**")),
            verdict(deployed_mb <= 10.0),
            ms(median),
            ms(times[0]),
            ms(times[runs - 1]),
            verdict(ms(median) <= 20.0),
        ));
    }
    let body = format!(
        "`cargo bench -p rollcall-e2e --bench cold_start`: each function's release binary \
         (`cargo build --release`: LTO, one codegen unit, stripped; x86_64 here, where Lambda \
         runs arm64 builds of the same code) started {runs} times against a local Lambda \
         Runtime API. The size target is judged on the arm64 `bootstrap` that `make build` \
         makes with cargo-lambda (same profile), which is what is deployed; x86_64 code is \
         larger. The time is from starting the process to its first \
         `GET /2018-06-01/runtime/invocation/next`: reading the configuration, building the \
         SDK clients and the router, which is what Lambda bills as the init phase.\n\n{table}\n\
         Machine: {}, {}.\n",
        machine(),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    println!("{body}");
    write_benchmark_section("cold-start", "Cold start and size", &body);
}
