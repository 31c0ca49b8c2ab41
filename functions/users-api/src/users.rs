//! The `/users` routes: list, create, read, edit, delete, suspend and reactivate a tenant's
//! users, under the role matrix, the self-protection rule and optimistic concurrency.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rollcall::domain::{
    AppRoles, Change, DisplayName, Edited, Email, Groups, Invitation, InvitationTrigger, Language,
    Localized, LoginHours, LoginId, Notes, Phone, Profile, Role, RoleCatalogue, SetError,
    ShortText, Status, TimeZone, User, UserId, UserPatch, ValidityWindow,
};
use rollcall::store::{
    IdempotencyRecord, ListQuery, SignInState, SortBy, SortOrder, StoreError, UserInvitations,
};

use crate::AppState;
use crate::auth::Caller;
use crate::input::{
    Fields, IfMatch, JsonObject, Patch, QueryParams, etag, idempotency_key, timestamp,
};
use crate::problem::{ApiError, FieldProblem};
use crate::views::{UserPage, UserView};

/// The `{id}` of a user route. An id that is not a ULID names no user: 404.
#[derive(Debug, Clone, Copy)]
pub struct UserIdParam(pub UserId);

impl FromRequestParts<AppState> for UserIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::UserNotFound)?;
        UserId::parse(&raw)
            .map(UserIdParam)
            .map_err(|_| ApiError::UserNotFound)
    }
}

/// A single-user response: the user, their newest invitation, and the ETag.
pub(crate) fn user_response(
    state: &AppState,
    status: StatusCode,
    user: &User,
    invitation: Option<&Invitation>,
    sign_in: &SignInState,
) -> Result<Response, ApiError> {
    let now = state.store.clock().now();
    let view = UserView::with_invitation(user, invitation, now).with_sign_in(sign_in, now);
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    Ok(json_response(status, body, user.version))
}

fn json_response(status: StatusCode, body: String, version: u64) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        h.insert(header::ETAG, tag);
    }
    resp
}

/// Members may only read themselves; admins and managers read everyone.
fn ensure_can_read(caller: &Caller, target: &UserId) -> Result<(), ApiError> {
    if caller.role.can_read_others() || caller.user_id == *target {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// The role matrix for writes.
fn ensure_can_manage(caller: &Caller, target: &User) -> Result<(), ApiError> {
    if caller.role.can_manage(target.profile.role) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Nobody deletes, suspends or changes the role of their own account.
fn ensure_not_self(caller: &Caller, target: &UserId) -> Result<(), ApiError> {
    if caller.user_id == *target {
        Err(ApiError::SelfAction)
    } else {
        Ok(())
    }
}

const LIST_PARAMS: [&str; 8] = [
    "sort", "order", "status", "q", "email", "login_id", "limit", "cursor",
];

/// The default page size.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// `GET /users`
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    params: QueryParams,
) -> Result<Json<UserPage>, ApiError> {
    if !caller.role.can_read_others() {
        return Err(ApiError::Forbidden);
    }
    let mut problems = params.unknown(&LIST_PARAMS);
    let bad =
        |name: &str, ja: &str, en: &str| FieldProblem::custom(name, "invalid_parameter", ja, en);
    let sort = match params.get("sort") {
        None | Some("name") => SortBy::Name,
        Some("created") | Some("created_at") => SortBy::Created,
        Some(_) => {
            problems.push(bad(
                "sort",
                "sort は name または created です。",
                "sort is name or created.",
            ));
            SortBy::Name
        }
    };
    let order = match params.get("order") {
        None | Some("asc") => SortOrder::Asc,
        Some("desc") => SortOrder::Desc,
        Some(_) => {
            problems.push(bad(
                "order",
                "order は asc または desc です。",
                "order is asc or desc.",
            ));
            SortOrder::Asc
        }
    };
    let status = params.parse("status", str::parse::<Status>, &mut problems);
    let page_size = match params.get("limit").map(str::parse::<usize>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (ListQuery::MIN_PAGE..=ListQuery::MAX_PAGE).contains(&n) => n,
        Some(_) => {
            problems.push(bad(
                "limit",
                "limit は1〜200の整数です。",
                "limit is a whole number from 1 to 200.",
            ));
            DEFAULT_PAGE_SIZE
        }
    };
    let email = params.parse("email", Email::parse, &mut problems);
    let login = params.parse("login_id", LoginId::parse, &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems));
    }

    // Exact look-ups go through the uniqueness claims: at most one user, no paging.
    if email.is_some() || login.is_some() {
        let found = match (&email, &login) {
            (Some(e), _) => state.store.find_by_email(&caller.tenant, e).await?,
            (None, Some(l)) => state.store.find_by_login_id(&caller.tenant, l).await?,
            (None, None) => None,
        };
        let found = found.filter(|u| {
            login.as_ref().is_none_or(|l| u.profile.login_id == *l)
                && status.is_none_or(|s| u.status == s)
        });
        if found.is_none() {
            ensure_tenant(&state, &caller).await?;
        }
        return Ok(Json(UserPage {
            items: found.iter().map(UserView::from).collect(),
            next_cursor: None,
        }));
    }

    let mut query = ListQuery {
        sort,
        order,
        status,
        name_prefix: params.get("q").map(str::to_owned),
        page_size,
        after: None,
    };
    let fingerprint = query.fingerprint();
    if let Some(c) = params.get("cursor") {
        query.after = Some(
            state
                .cursors
                .open(&caller.tenant, &fingerprint, c)
                .map_err(|_| ApiError::InvalidCursor)?,
        );
    }
    let page = state.store.list_users(&caller.tenant, &query).await?;
    if page.users.is_empty() && query.after.is_none() {
        ensure_tenant(&state, &caller).await?;
    }
    Ok(Json(UserPage {
        items: page.users.iter().map(UserView::from).collect(),
        next_cursor: page
            .next
            .map(|k| state.cursors.seal(&caller.tenant, &fingerprint, &k)),
    }))
}

/// An answer with no users may come from a tenant that doesn't exist (a token naming one):
/// that is 404 `tenant_not_found`, not an empty list. Asked only when nothing was found, so a
/// listing that finds users costs no extra read.
async fn ensure_tenant(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state.store.get_tenant(&caller.tenant).await?;
    Ok(())
}

/// A `Patch` member as an edit's change: absent leaves the field, `null` clears it.
fn change<T>(p: Patch<T>) -> Change<T> {
    match p {
        Patch::Absent => Change::Leave,
        Patch::Null => Change::Clear,
        Patch::Value(v) => Change::Set(v),
    }
}

fn set<T>(
    f: &mut Fields,
    name: &str,
    parse: impl FnOnce(&[String]) -> Result<T, SetError>,
) -> Change<T> {
    match f.strings(name) {
        Patch::Absent => Change::Leave,
        Patch::Null => Change::Clear,
        Patch::Value(v) => match parse(&v) {
            Ok(s) => Change::Set(s),
            Err(e) => {
                f.problem(FieldProblem::new(name, &e));
                Change::Leave
            }
        },
    }
}

/// The members of a create or edit body, each parsed into its domain type, as an edit: a
/// member that could not be read records its problem and leaves its field.
fn read_patch(fields: &mut Fields) -> UserPatch {
    macro_rules! field {
        ($name:literal, $parse:expr) => {{
            let raw = fields.string($name);
            change(fields.parse($name, raw, $parse))
        }};
    }
    // An optional member given as "" (or only white space) means none, as a blank CSV cell
    // does: the same as null.
    macro_rules! optional_field {
        ($name:literal, $parse:expr) => {{
            let raw = match fields.string($name) {
                Patch::Value(s) if s.trim().is_empty() => Patch::Null,
                raw => raw,
            };
            change(fields.parse($name, raw, $parse))
        }};
    }
    UserPatch {
        login_id: field!("login_id", LoginId::parse),
        email: field!("email", Email::parse),
        name: field!("name", DisplayName::parse),
        role: field!("role", str::parse::<Role>),
        app_roles: set(fields, "app_roles", |v| AppRoles::parse(v)),
        groups: set(fields, "groups", |v| Groups::parse(v)),
        organization: optional_field!("organization", ShortText::parse),
        department: optional_field!("department", ShortText::parse),
        phone: optional_field!("phone", Phone::parse),
        notes: optional_field!("notes", Notes::parse),
        language: optional_field!("language", str::parse::<Language>),
        time_zone: optional_field!("time_zone", TimeZone::parse),
        login_hours: optional_field!("login_hours", LoginHours::parse_exact),
        two_step: fields.boolean("two_step"),
        valid_from: optional_field!("valid_from", timestamp),
        valid_till: optional_field!("valid_till", timestamp),
        disabled: None,
    }
}

fn required_problem(name: &str) -> FieldProblem {
    FieldProblem::custom(
        name,
        "required",
        "入力してください。",
        "This field is required.",
    )
}

/// A required member of a create body; `None` records a problem unless one is recorded already.
fn required<T>(fields: &mut Fields, name: &str, c: Change<T>) -> Option<T> {
    let value = c.into_value();
    if value.is_none() && !has_problem(fields, name) {
        fields.problem(required_problem(name));
    }
    value
}

fn has_problem(fields: &Fields, name: &str) -> bool {
    fields.problems.iter().any(|p| p.field == name)
}

fn new_user_from(body: JsonObject) -> Result<Profile, ApiError> {
    let mut fields = Fields::new(body.map);
    let c = read_patch(&mut fields);
    let login_id = required(&mut fields, "login_id", c.login_id);
    let email = required(&mut fields, "email", c.email);
    let name = required(&mut fields, "name", c.name);
    let role = c.role.into_value().unwrap_or(Role::Member);
    let validity = match ValidityWindow::new(c.valid_from.into_value(), c.valid_till.into_value()) {
        Ok(w) => w,
        Err(e) => {
            fields.problem(FieldProblem::new("valid_till", &e));
            ValidityWindow::unbounded()
        }
    };
    let problems = fields.finish();
    match (login_id, email, name) {
        (Some(login_id), Some(email), Some(name)) if problems.is_empty() => Ok(Profile {
            login_id,
            email,
            name,
            role,
            app_roles: c.app_roles.into_value().unwrap_or_default(),
            groups: c.groups.into_value().unwrap_or_default(),
            organization: c.organization.into_value(),
            department: c.department.into_value(),
            phone: c.phone.into_value(),
            notes: c.notes.into_value(),
            language: c.language.into_value(),
            time_zone: c.time_zone.into_value(),
            validity,
            login_hours: c.login_hours.into_value(),
            two_step: c.two_step.unwrap_or(false),
        }),
        _ => Err(ApiError::Validation(problems)),
    }
}

/// `current` edited by a `PATCH` body: the body read into a [`UserPatch`], applied by
/// [`User::apply`] (the tenant's catalogue read only when app roles change), every problem of
/// both reported at once.
async fn edited_user(
    state: &AppState,
    caller: &Caller,
    current: &User,
    body: JsonObject,
) -> Result<Edited, ApiError> {
    let mut fields = Fields::new(body.map);
    let patch = read_patch(&mut fields);
    let mut problems = fields.finish();
    let catalogue = if patch.checks_app_roles(current) {
        state.store.get_tenant(&caller.tenant).await?.role_catalogue
    } else {
        RoleCatalogue::default()
    };
    match current.apply(&patch, &catalogue) {
        Ok(edited) if problems.is_empty() => Ok(edited),
        Ok(_) => Err(ApiError::Validation(problems)),
        Err(refused) => {
            problems.extend(refused.into_iter().map(FieldProblem::from));
            Err(ApiError::Validation(problems))
        }
    }
}

/// Checks app roles against the tenant's catalogue (one read, only when there are any).
async fn check_app_roles(
    state: &AppState,
    caller: &Caller,
    roles: &AppRoles,
) -> Result<(), ApiError> {
    if roles.is_empty() {
        return Ok(());
    }
    let tenant = state.store.get_tenant(&caller.tenant).await?;
    tenant.role_catalogue.check(roles).map_err(|e| {
        ApiError::Validation(vec![FieldProblem::new("app_roles", &e as &dyn Localized)])
    })
}

/// `POST /users`
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    if !caller.role.can_read_others() {
        return Err(ApiError::Forbidden);
    }
    let key = idempotency_key(&headers)?;
    let request_hash = body.canonical_hash.clone();
    let new = new_user_from(body)?;
    if !caller.role.can_assign(new.role) {
        return Err(ApiError::Forbidden);
    }
    check_app_roles(&state, &caller, &new.app_roles).await?;

    let now = state.store.clock().now();
    let user = User::new(
        caller.tenant.clone(),
        UserId::generate(),
        new,
        Status::Invited,
        now,
    );
    let invitation = Invitation::new(&user, InvitationTrigger::Created, Some(caller.user_id), now);
    let view = UserView::with_invitation(&user, Some(&invitation), now);
    let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
    let record = IdempotencyRecord {
        request_hash: request_hash.clone(),
        status: StatusCode::CREATED.as_u16(),
        body: body.clone(),
    };
    let result = state
        .store
        .create_user(
            &user,
            Some(&invitation),
            key.as_deref().map(|k| (k, &record)),
        )
        .await;
    match result {
        Ok(()) => {
            tracing::info!(tenant_id = %caller.tenant, user_id = %user.id, "user created");
            let mut resp = json_response(StatusCode::CREATED, body, user.version);
            if let Ok(loc) = HeaderValue::from_str(&format!("/users/{}", user.id)) {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            Ok(resp)
        }
        Err(StoreError::IdempotencyKeyUsed) => {
            let key = key.unwrap_or_default();
            match state.store.idempotency_record(&caller.tenant, &key).await? {
                Some(first) if first.request_hash == request_hash => {
                    let status = StatusCode::from_u16(first.status).map_err(ApiError::internal)?;
                    let version = serde_json::from_str::<serde_json::Value>(&first.body)
                        .ok()
                        .and_then(|v| v["version"].as_u64())
                        .unwrap_or(1);
                    let mut resp = json_response(status, first.body, version);
                    resp.headers_mut()
                        .insert("idempotent-replayed", HeaderValue::from_static("true"));
                    Ok(resp)
                }
                Some(_) => Err(ApiError::IdempotencyKeyReused),
                // Expired between the two reads: the caller may simply retry.
                None => Err(ApiError::Busy),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /users/{id}`
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
) -> Result<Response, ApiError> {
    ensure_can_read(&caller, &id)?;
    let found = state.store.user_invitations(&caller.tenant, &id).await?;
    let user = found.user.as_ref().ok_or(ApiError::UserNotFound)?;
    user_response(&state, StatusCode::OK, user, found.latest(), &found.sign_in)
}

/// Reads the user a write is aimed at, with their invitations (one query), checking that the
/// caller may see and change them and that `If-Match`, if given, names their current version.
pub(crate) async fn target_for_write(
    state: &AppState,
    caller: &Caller,
    id: &UserId,
    headers: &HeaderMap,
) -> Result<(User, UserInvitations), ApiError> {
    ensure_can_read(caller, id)?;
    let found = state.store.user_invitations(&caller.tenant, id).await?;
    let current = found.user.clone().ok_or(ApiError::UserNotFound)?;
    ensure_can_manage(caller, &current)?;
    IfMatch::from_headers(headers).check(current.version)?;
    Ok((current, found))
}

/// `PATCH /users/{id}`
pub async fn patch_user(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let (current, found) = target_for_write(&state, &caller, &id, &headers).await?;
    let Edited {
        user: edited,
        reinvite,
    } = edited_user(&state, &caller, &current, body).await?;
    if edited.profile.role != current.profile.role {
        ensure_not_self(&caller, &id)?;
        if !caller.role.can_assign(edited.profile.role) {
            return Err(ApiError::Forbidden);
        }
    }
    if !reinvite {
        let saved = state.store.update_user(&current, edited).await?;
        return user_response(
            &state,
            StatusCode::OK,
            &saved,
            found.latest(),
            &found.sign_in,
        );
    }
    // A new address gets a new invitation; every earlier link is revoked with the same write.
    let now = state.store.clock().now();
    let invitation = Invitation::new(
        &edited,
        InvitationTrigger::EmailChanged,
        Some(caller.user_id),
        now,
    );
    let saved = state
        .store
        .update_user_and_reinvite(&current, edited, &found.unsuperseded(), &invitation)
        .await?;
    tracing::info!(tenant_id = %caller.tenant, user_id = %id, invitation_id = %invitation.id, "email changed; invitation queued");
    user_response(
        &state,
        StatusCode::OK,
        &saved,
        Some(&invitation),
        &found.sign_in,
    )
}

/// `DELETE /users/{id}`
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    ensure_not_self(&caller, &id)?;
    let (current, _) = target_for_write(&state, &caller, &id, &headers).await?;
    state.store.delete_user(&current).await?;
    tracing::info!(tenant_id = %caller.tenant, user_id = %id, "user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /users/{id}/suspend`
pub async fn suspend_user(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    change_status(state, caller, id, headers, |u| u.status.suspend()).await
}

/// `POST /users/{id}/reactivate`
pub async fn reactivate_user(
    State(state): State<AppState>,
    caller: Caller,
    UserIdParam(id): UserIdParam,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    change_status(state, caller, id, headers, |u| {
        u.status.reactivate(u.has_password)
    })
    .await
}

async fn change_status(
    state: AppState,
    caller: Caller,
    id: UserId,
    headers: HeaderMap,
    transition: impl FnOnce(&User) -> Result<Status, rollcall::domain::TransitionError>,
) -> Result<Response, ApiError> {
    ensure_not_self(&caller, &id)?;
    let (current, found) = target_for_write(&state, &caller, &id, &headers).await?;
    let mut next = current.clone();
    next.status = transition(&current)?;
    let saved = state.store.update_user(&current, next).await?;
    tracing::info!(tenant_id = %caller.tenant, user_id = %id, status = %saved.status, "status changed");
    user_response(
        &state,
        StatusCode::OK,
        &saved,
        found.latest(),
        &found.sign_in,
    )
}
