//! How domain values are laid out as DynamoDB items, and back. Reading an item that does not
//! make a valid domain value is a [`StoreError::Corrupt`], never a panic.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoreError, keys, schema};
use crate::domain::{
    AppRoles, BillingPolicy, DisplayName, Email, Groups, Language, LoginHours, LoginId, Notes,
    PageSettings, PasswordHash, PasswordPolicy, Phone, Profile, Role, RoleCatalogue, SeatUsage,
    ShortText, SignInPolicy, StateChange, Status, Tenant, TenantId, TimeZone, User, UserId,
    UserState, ValidityWindow,
};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// How long a deleted user's tombstone stays for billing history: 13 months and a margin.
pub const TOMBSTONE_RETENTION_DAYS: i64 = 400;

#[derive(Debug, Serialize, Deserialize)]
struct TenantItem {
    pk: String,
    sk: String,
    entity: String,
    gsi3pk: String,
    gsi3sk: String,
    tenant_id: TenantId,
    name: DisplayName,
    billing_time_zone: TimeZone,
    language: Language,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seat_limit: Option<u32>,
    #[serde(default)]
    role_catalogue: RoleCatalogue,
    #[serde(default)]
    password_policy: PasswordPolicy,
    #[serde(default)]
    billing: BillingPolicy,
    #[serde(default)]
    sign_in: SignInPolicy,
    #[serde(default)]
    pages: PageSettings,
    #[serde(default)]
    active_admins: u64,
    #[serde(default)]
    users_active: u64,
    #[serde(default)]
    users_active_or_invited: u64,
}

pub(crate) fn tenant_to_item(t: &Tenant) -> Result<Item, StoreError> {
    let item = TenantItem {
        pk: keys::tenant_pk(&t.id),
        sk: keys::TENANT_SK.into(),
        entity: "tenant".into(),
        gsi3pk: keys::TENANTS_PARTITION.into(),
        gsi3sk: t.id.to_string(),
        tenant_id: t.id.clone(),
        name: t.name.clone(),
        billing_time_zone: t.billing_time_zone,
        language: t.language,
        seat_limit: t.seat_limit,
        role_catalogue: t.role_catalogue.clone(),
        password_policy: t.password_policy.clone(),
        billing: t.billing,
        sign_in: t.sign_in,
        pages: t.pages.clone(),
        active_admins: 0,
        users_active: 0,
        users_active_or_invited: 0,
    };
    serde_dynamo::to_item(item).map_err(|e| StoreError::Corrupt(format!("tenant item: {e}")))
}

pub(crate) fn tenant_from_item(item: Item) -> Result<(Tenant, SeatUsage), StoreError> {
    let t: TenantItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("tenant item: {e}")))?;
    let usage = SeatUsage {
        active: t.users_active,
        active_or_invited: t.users_active_or_invited,
    };
    let tenant = Tenant {
        id: t.tenant_id,
        name: t.name,
        billing_time_zone: t.billing_time_zone,
        language: t.language,
        seat_limit: t.seat_limit,
        role_catalogue: t.role_catalogue,
        password_policy: t.password_policy,
        billing: t.billing,
        sign_in: t.sign_in,
        pages: t.pages,
    };
    Ok((tenant, usage))
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UserItem {
    pk: String,
    sk: String,
    entity: String,
    tenant_id: TenantId,
    user_id: UserId,
    login_id: LoginId,
    email: Email,
    name: DisplayName,
    name_key: String,
    role: Role,
    #[serde(default)]
    app_roles: AppRoles,
    #[serde(default)]
    groups: Groups,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization: Option<ShortText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    department: Option<ShortText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notes: Option<Notes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    language: Option<Language>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_zone: Option<TimeZone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_till: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_hours: Option<LoginHours>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    two_step: bool,
    state: UserState,
    #[serde(default)]
    has_password: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<PasswordHash>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    history: Vec<StateChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

pub(crate) fn user_item(
    u: &User,
    state: UserState,
    listed: bool,
    expires_at: Option<i64>,
) -> UserItem {
    let name_key = u.profile.name.sort_key();
    let shard = keys::listing_shard(&u.id);
    let tenant_pk = keys::live_users_pk(&u.tenant, shard);
    // Live users are listed by name and by creation; tombstones only in their own partitions of
    // the by-created index, where billing finds them.
    let created_pk = if listed {
        tenant_pk.clone()
    } else {
        keys::deleted_users_pk(&u.tenant, shard)
    };
    UserItem {
        pk: keys::user_pk(&u.tenant, &u.id),
        sk: keys::USER_SK.into(),
        entity: "user".into(),
        tenant_id: u.tenant.clone(),
        user_id: u.id,
        login_id: u.profile.login_id.clone(),
        email: u.profile.email.clone(),
        name: u.profile.name.clone(),
        gsi1sk: listed.then(|| keys::by_name_sk(&name_key, &u.id)),
        name_key,
        role: u.profile.role,
        app_roles: u.profile.app_roles.clone(),
        groups: u.profile.groups.clone(),
        organization: u.profile.organization.clone(),
        department: u.profile.department.clone(),
        phone: u.profile.phone.clone(),
        notes: u.profile.notes.clone(),
        language: u.profile.language,
        time_zone: u.profile.time_zone,
        valid_from: u.profile.validity.from(),
        valid_till: u.profile.validity.till(),
        login_hours: u.profile.login_hours,
        two_step: u.profile.two_step,
        state,
        has_password: u.has_password,
        password_hash: u.password_hash.clone(),
        created_at: u.created_at,
        updated_at: u.updated_at,
        version: u.version,
        history: u.history.clone(),
        gsi1pk: listed.then_some(tenant_pk),
        gsi2pk: Some(created_pk),
        gsi2sk: Some(u.id.to_string()),
        expires_at,
    }
}

/// A live user's item: listed in the tenant indexes.
pub(crate) fn user_to_item(u: &User) -> Result<Item, StoreError> {
    serde_dynamo::to_item(user_item(u, u.status.into(), true, None))
        .map_err(|e| StoreError::Corrupt(format!("user item: {e}")))
}

/// A deleted user's tombstone: out of the listings, kept for billing history until TTL.
pub(crate) fn tombstone_to_item(u: &User, deleted_at: DateTime<Utc>) -> Result<Item, StoreError> {
    let mut u = u.clone();
    u.updated_at = deleted_at;
    // A deleted account keeps its history for billing, not its credentials.
    u.password_hash = None;
    u.history.push(StateChange {
        at: deleted_at,
        state: UserState::Deleted,
        valid_from: u.profile.validity.from(),
        valid_till: u.profile.validity.till(),
    });
    let expires = deleted_at + chrono::Duration::days(TOMBSTONE_RETENTION_DAYS);
    serde_dynamo::to_item(user_item(
        &u,
        UserState::Deleted,
        false,
        Some(expires.timestamp()),
    ))
    .map_err(|e| StoreError::Corrupt(format!("tombstone item: {e}")))
}

/// Reads a user item; `None` for a tombstone.
pub(crate) fn user_from_item(item: Item) -> Result<Option<User>, StoreError> {
    let u: UserItem = serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("user item: {e}")))?;
    user_from_user_item(u)
}

/// The user an item holds; `None` for a tombstone.
pub(crate) fn user_from_user_item(u: UserItem) -> Result<Option<User>, StoreError> {
    let status = match u.state {
        UserState::Invited => Status::Invited,
        UserState::Active => Status::Active,
        UserState::Suspended => Status::Suspended,
        UserState::Deleted => return Ok(None),
    };
    let validity = ValidityWindow::new(u.valid_from, u.valid_till)
        .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", u.user_id)))?;
    Ok(Some(User {
        id: u.user_id,
        tenant: u.tenant_id,
        profile: Profile {
            login_id: u.login_id,
            email: u.email,
            name: u.name,
            role: u.role,
            app_roles: u.app_roles,
            groups: u.groups,
            organization: u.organization,
            department: u.department,
            phone: u.phone,
            notes: u.notes,
            language: u.language,
            time_zone: u.time_zone,
            validity,
            login_hours: u.login_hours,
            two_step: u.two_step,
        },
        status,
        has_password: u.has_password,
        password_hash: u.password_hash,
        created_at: u.created_at,
        updated_at: u.updated_at,
        version: u.version,
        history: u.history,
    }))
}

/// A uniqueness claim pointing at its user.
pub(crate) fn claim_item(pk: String, tenant: &TenantId, user: &UserId) -> Item {
    HashMap::from([
        (schema::PK.into(), AttributeValue::S(pk)),
        (schema::SK.into(), AttributeValue::S(keys::CLAIM_SK.into())),
        ("entity".into(), AttributeValue::S("claim".into())),
        ("tenant_id".into(), AttributeValue::S(tenant.to_string())),
        ("user_id".into(), AttributeValue::S(user.to_string())),
    ])
}

/// The key of an item.
pub(crate) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([
        (schema::PK.into(), AttributeValue::S(pk)),
        (schema::SK.into(), AttributeValue::S(sk.to_owned())),
    ])
}

/// A string attribute of an item.
pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
