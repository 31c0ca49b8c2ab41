//! `rollcall billing run`: fires billing-snapshot's handler with the event the schedule (or a
//! re-drive) sends, against the stack named by the environment, and prints what it did.

use std::fmt::Write as _;

use billing_snapshot::{Outcome, RunReport, SnapshotRequest, Snapshotter};
use lambda_runtime::{Context, LambdaEvent};
use rollcall::domain::{BillingMonth, TenantId};

/// The event payload for a run: `{}` as the schedule sends it, or naming a month and tenants.
pub fn event(
    month: Option<BillingMonth>,
    tenants: Vec<TenantId>,
) -> serde_json::Result<serde_json::Value> {
    serde_json::to_value(SnapshotRequest { month, tenants })
}

/// Runs the handler on `payload` (JSON, as Lambda would deliver it).
pub async fn run(
    snapshotter: &Snapshotter,
    payload: serde_json::Value,
) -> anyhow::Result<RunReport> {
    let request: SnapshotRequest = serde_json::from_value(payload)?;
    let report = snapshotter
        .function_handler(LambdaEvent::new(request, Context::default()))
        .await?;
    Ok(report)
}

/// The report as a table, one line per tenant.
pub fn render(report: &RunReport, bucket: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<14} {:>7}  list",
        "tenant", "month", "outcome", "count"
    );
    for r in &report.runs {
        let count = match (r.count, r.computed) {
            (Some(c), Some(computed)) => format!("{c} (re-count: {computed})"),
            (Some(c), None) => c.to_string(),
            _ => "-".into(),
        };
        let list = r
            .users_key
            .as_ref()
            .map(|k| format!("s3://{bucket}/{k}"))
            .unwrap_or_default();
        let month = r.month.map(|m| m.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<14} {:>7}  {list}",
            r.tenant.as_str(),
            month,
            r.outcome.as_str(),
            count
        );
        if r.outcome == Outcome::NotClosed {
            let _ = writeln!(
                out,
                "    the month has not ended in the tenant's time zone yet"
            );
        }
    }
    let _ = writeln!(
        out,
        "{} tenants; {} user items read in {} queries",
        report.runs.len(),
        report.items_read,
        report.queries
    );
    out
}
