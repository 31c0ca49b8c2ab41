//! `rollcall import <file>`: the whole import flow through the API, as an admin's script would
//! run it: create the job, upload the file to the presigned URL, wait for bulk-import, print
//! the report.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What to run.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The API's base URL.
    pub api: String,
    /// An admin's bearer token.
    pub token: String,
    /// Only validate; change nothing.
    pub validate: bool,
    /// `auto`, `utf-8` or `shift_jis`.
    pub encoding: String,
    /// How long to wait for the job.
    pub timeout: Duration,
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The job's id.
    pub id: String,
    /// Its final status.
    pub status: String,
    /// The report, as printed.
    pub report: String,
}

impl ImportOutcome {
    /// Whether the file went through (validated or applied).
    pub fn succeeded(&self) -> bool {
        matches!(self.status.as_str(), "validated" | "applied")
    }
}

async fn json_of(resp: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{what}: the answer is not JSON"))?;
    if !status.is_success() {
        let detail = body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or("");
        bail!(
            "{what}: {status} {} {detail}",
            body["code"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

/// The line that shows how far an applying job got: a bar of `width` cells, the rows
/// committed of the rows to write (created, updated and deleted), and the rate. `None` for a
/// job that is not applying or says nothing of its rows yet.
pub fn progress_line(job: &Value, width: usize) -> Option<String> {
    if job["status"] != "applying" {
        return None;
    }
    let counts = &job["counts"];
    let total: u64 = ["created", "updated", "deleted"]
        .iter()
        .map(|k| counts[*k].as_u64().unwrap_or(0))
        .sum();
    if total == 0 {
        return None;
    }
    let done = job["progress"]["applied_rows"]
        .as_u64()
        .unwrap_or(0)
        .min(total);
    let filled = usize::try_from(done * width as u64 / total).unwrap_or(width);
    let rate = job["progress"]["rows_per_second"]
        .as_u64()
        .map(|r| format!(", {r} rows/s"))
        .unwrap_or_default();
    Some(format!(
        "applying [{}{}] {done}/{total} rows ({}%){rate}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        done * 100 / total,
    ))
}

/// The progress bar on a terminal's standard error, redrawn in place; nothing when standard
/// error is not a terminal (a script's log stays clean).
struct ProgressBar {
    terminal: bool,
    drawn: bool,
}

impl ProgressBar {
    fn on_stderr() -> ProgressBar {
        use std::io::IsTerminal as _;
        ProgressBar {
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn show(&mut self, job: &Value) {
        if let (true, Some(line)) = (self.terminal, progress_line(job, 30)) {
            eprint!("\r{line}\x1b[K");
            self.drawn = true;
        }
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// Runs the flow for `file` and returns the outcome with its printed report.
pub async fn run(file: &Path, opts: &ImportOptions) -> anyhow::Result<ImportOutcome> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let http = reqwest::Client::new();
    let api = opts.api.trim_end_matches('/');
    let mode = if opts.validate { "validate" } else { "apply" };
    let created = json_of(
        http.post(format!("{api}/imports"))
            .bearer_auth(&opts.token)
            .json(&json!({"mode": mode, "encoding": opts.encoding}))
            .send()
            .await
            .context("POST /imports")?,
        "POST /imports",
    )
    .await?;
    let id = created["id"]
        .as_str()
        .context("a job without an id")?
        .to_owned();
    let url = created["upload"]["url"]
        .as_str()
        .context("a job without an upload URL")?;
    let put = http
        .put(url)
        .body(bytes)
        .send()
        .await
        .context("uploading")?;
    if !put.status().is_success() {
        bail!("uploading the file: {}", put.status());
    }

    let started = Instant::now();
    let mut bar = ProgressBar::on_stderr();
    let job = loop {
        let job = json_of(
            http.get(format!("{api}/imports/{id}"))
                .bearer_auth(&opts.token)
                .send()
                .await
                .context("GET /imports/{id}")?,
            "GET /imports/{id}",
        )
        .await?;
        let status = job["status"].as_str().unwrap_or_default();
        bar.show(&job);
        if matches!(status, "invalid" | "validated" | "applied" | "failed") {
            bar.finish();
            break job;
        }
        if started.elapsed() > opts.timeout {
            bail!("job {id} is still {status} after {:?}", opts.timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let status = job["status"].as_str().unwrap_or_default().to_owned();
    let mut report = format!("import {id}: {status}\n");
    if let Some(rows) = job["rows"].as_u64() {
        report.push_str(&format!(
            "rows {rows}, invalid {}, problems {}\n",
            job["rows_invalid"].as_u64().unwrap_or(0),
            job["problems"].as_u64().unwrap_or(0)
        ));
    }
    if let Some(counts) = job["counts"].as_object() {
        let n = |k: &str| counts.get(k).and_then(Value::as_u64).unwrap_or(0);
        let verb = if status == "applied" { "" } else { "would be " };
        report.push_str(&format!(
            "{verb}created {}, updated {}, deleted {}, unchanged {}\n",
            n("created"),
            n("updated"),
            n("deleted"),
            n("unchanged")
        ));
    }
    if let Some(error) = job["error"].as_object() {
        report.push_str(&format!(
            "error {}: {}\n",
            error.get("code").and_then(Value::as_str).unwrap_or(""),
            error.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    if let Some(link) = job["reports"]["validation_json"].as_str() {
        let validation: Value = http
            .get(link)
            .send()
            .await
            .context("downloading the validation report")?
            .json()
            .await
            .context("the validation report is not JSON")?;
        for row in validation["row_results"].as_array().into_iter().flatten() {
            for p in row["problems"].as_array().into_iter().flatten() {
                report.push_str(&format!(
                    "line {} {}: {} ({})\n",
                    row["line"],
                    p["column"].as_str().unwrap_or("-"),
                    p["message_en"].as_str().unwrap_or(""),
                    p["code"].as_str().unwrap_or("")
                ));
            }
        }
    }
    for (name, key) in [
        ("validation report", "validation_csv"),
        ("result report", "result_csv"),
    ] {
        if let Some(link) = job["reports"][key].as_str() {
            report.push_str(&format!("{name}: {link}\n"));
        }
    }
    Ok(ImportOutcome { id, status, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_the_rows_committed_of_the_rows_to_write_and_the_rate() {
        let job = json!({
            "status": "applying",
            "counts": {"created": 600, "updated": 300, "deleted": 100, "unchanged": 50},
            "progress": {"applied_rows": 250, "rows_per_second": 4120}
        });
        assert_eq!(
            progress_line(&job, 20).as_deref(),
            Some("applying [#####...............] 250/1000 rows (25%), 4120 rows/s")
        );
        let done = json!({
            "status": "applying",
            "counts": {"created": 10},
            "progress": {"applied_rows": 10}
        });
        assert_eq!(
            progress_line(&done, 4).as_deref(),
            Some("applying [####] 10/10 rows (100%)")
        );
        assert_eq!(progress_line(&json!({"status": "validating"}), 20), None);
        assert_eq!(
            progress_line(&json!({"status": "applying", "counts": {}}), 20),
            None
        );
    }
}
