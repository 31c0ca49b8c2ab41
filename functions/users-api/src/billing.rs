//! `/billing/*`: the live billable count and seats, and the month snapshots taken by
//! billing-snapshot. Admins only.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use rollcall::domain::{BillingMonth, TimeZone, billable_at};
use rollcall::store::BillingSnapshot;
use serde::Serialize;

use crate::AppState;
use crate::auth::Caller;
use crate::input::QueryParams;
use crate::problem::{ApiError, FieldProblem};
use crate::views::rfc3339;

/// How long a link to a list of counted users works.
pub const LIST_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// The most months one `GET /billing/snapshots` covers.
pub const MAX_MONTHS: u32 = 120;

/// Seats in use and the limit.
#[derive(Debug, Serialize)]
pub struct SeatsView {
    /// Users holding a seat: active ones, and invited ones when the tenant bills them.
    pub used: u64,
    /// The limit, if the tenant has one.
    pub limit: Option<u32>,
    /// Seats left, if limited.
    pub available: Option<u64>,
}

/// `GET /billing/current`
#[derive(Debug, Serialize)]
pub struct CurrentView {
    /// The month in progress in the billing time zone.
    pub month: BillingMonth,
    /// The billing time zone.
    pub time_zone: TimeZone,
    /// When the month started and ends (the end is the snapshot's instant plus 1 ms).
    pub month_start: String,
    /// See `month_start`.
    pub month_end: String,
    /// The instant counted.
    pub as_of: String,
    /// Users billable at `as_of`, by the same rule as the month-end snapshot.
    pub billable: u64,
    /// Whether invited users count.
    pub count_invited: bool,
    /// Seats.
    pub seats: SeatsView,
}

/// One month's snapshot.
#[derive(Debug, Serialize)]
pub struct SnapshotView {
    /// The month.
    pub month: BillingMonth,
    /// The time zone whose month end was used.
    pub time_zone: TimeZone,
    /// The instant counted: the month's last millisecond, in `time_zone`.
    pub counted_at: String,
    /// Billable users at `counted_at`.
    pub count: u64,
    /// Whether invited users were counted.
    pub count_invited: bool,
    /// When it was computed.
    pub computed_at: String,
    /// A link to the list of counted users (CSV), on single-snapshot responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_url: Option<String>,
    /// When `users_url` stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_url_expires_at: Option<String>,
}

impl SnapshotView {
    fn of(s: &BillingSnapshot) -> SnapshotView {
        SnapshotView {
            month: s.month,
            time_zone: s.time_zone,
            counted_at: s.time_zone.rfc3339(s.counted_at),
            count: s.count,
            count_invited: s.count_invited,
            computed_at: rfc3339(s.computed_at),
            users_url: None,
            users_url_expires_at: None,
        }
    }
}

/// `GET /billing/snapshots`
#[derive(Debug, Serialize)]
pub struct SnapshotList {
    /// The first month asked for.
    pub from: BillingMonth,
    /// The last month asked for.
    pub to: BillingMonth,
    /// The snapshots taken in that range, oldest first.
    pub items: Vec<SnapshotView>,
}

/// `GET /billing/current`
pub async fn current(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryParams,
) -> Result<Json<CurrentView>, ApiError> {
    caller.ensure_admin()?;
    let problems = params.unknown(&[]);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let (tenant, seats) = state.store.tenant_and_seats(&caller.tenant).await?;
    let members = state.store.live_members(&caller.tenant).await?;
    let now = state.store.clock().now();
    let tz = tenant.billing_time_zone;
    let month = BillingMonth::containing(now, tz);
    let billable = members
        .members
        .iter()
        .filter(|m| billable_at(&m.history, now, tenant.billing))
        .count() as u64;
    let used = seats.used(tenant.billing);
    Ok(Json(CurrentView {
        month,
        time_zone: tz,
        month_start: tz.rfc3339(month.start(tz)),
        month_end: tz.rfc3339(month.end(tz)),
        as_of: rfc3339(now),
        billable,
        count_invited: tenant.billing.count_invited,
        seats: SeatsView {
            used,
            limit: tenant.seat_limit,
            available: tenant.seat_limit.map(|l| u64::from(l).saturating_sub(used)),
        },
    }))
}

/// `GET /billing/snapshots?from=yyyy-mm&to=yyyy-mm`: by default the twelve months up to the
/// last closed one.
pub async fn list_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryParams,
) -> Result<Json<SnapshotList>, ApiError> {
    caller.ensure_admin()?;
    let mut problems = params.unknown(&["from", "to"]);
    let from = params.parse("from", BillingMonth::parse, &mut problems);
    let to = params.parse("to", BillingMonth::parse, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }
    let to_given = to.is_some();
    let to = match to {
        Some(to) => to,
        // The last closed month depends on the tenant's billing time zone.
        None => {
            let tenant = state.store.get_tenant(&caller.tenant).await?;
            BillingMonth::last_closed(state.store.clock().now(), tenant.billing_time_zone)
        }
    };
    let from = from.unwrap_or_else(|| to.minus(11));
    if from > to {
        return Err(ApiError::BadRequest(vec![FieldProblem::custom(
            "from",
            "range_invalid",
            "from は to 以前の月にしてください。",
            "from must not be after to.",
        )]));
    }
    if from.months_until(to) >= MAX_MONTHS {
        return Err(ApiError::BadRequest(vec![FieldProblem::custom(
            "from",
            "range_too_long",
            "一度に取得できるのは120か月までです。",
            "At most 120 months can be asked for at once.",
        )]));
    }
    let items: Vec<SnapshotView> = state
        .store
        .snapshots(&caller.tenant, from, to)
        .await?
        .iter()
        .map(SnapshotView::of)
        .collect();
    if items.is_empty() && to_given {
        // No snapshots may mean no tenant (a token naming one): 404, not an empty list.
        state.store.get_tenant(&caller.tenant).await?;
    }
    Ok(Json(SnapshotList { from, to, items }))
}

/// The `{month}` of a snapshot route.
pub struct MonthParam(pub BillingMonth);

impl FromRequestParts<AppState> for MonthParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::RouteNotFound)?;
        BillingMonth::parse(&raw)
            .map(MonthParam)
            .map_err(|e| ApiError::BadRequest(vec![FieldProblem::new("month", &e)]))
    }
}

/// `GET /billing/snapshots/{month}`: the snapshot and a link to its list of counted users.
pub async fn get_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    MonthParam(month): MonthParam,
) -> Result<Json<SnapshotView>, ApiError> {
    caller.ensure_admin()?;
    let snapshot = state
        .store
        .snapshot(&caller.tenant, month)
        .await?
        .ok_or(ApiError::SnapshotNotFound)?;
    let filename = format!("{}-{}.csv", snapshot.tenant_id, snapshot.month);
    let url = state
        .bucket
        .presigned_get(&snapshot.users_key, &filename, LIST_LINK_TTL)
        .await
        .map_err(ApiError::internal)?;
    let expires = state.store.clock().now()
        + chrono::Duration::from_std(LIST_LINK_TTL).map_err(ApiError::internal)?;
    let mut view = SnapshotView::of(&snapshot);
    view.users_url = Some(url);
    view.users_url_expires_at = Some(rfc3339(expires));
    Ok(Json(view))
}
