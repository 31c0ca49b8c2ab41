//! Creating a tenant and its first admin: the step before anyone can call the API.

use anyhow::Context;
use rollcall::domain::{
    DisplayName, Email, LoginId, Profile, Role, Status, Tenant, TenantId, TimeZone, User, UserId,
};
use rollcall::store::Store;

/// What a new tenant looks like.
#[derive(Debug, Clone)]
pub struct TenantSpec {
    /// Its id.
    pub id: TenantId,
    /// Its name.
    pub name: DisplayName,
    /// An optional seat limit.
    pub seat_limit: Option<u32>,
    /// Its billing time zone.
    pub time_zone: TimeZone,
}

/// Creates the tenant.
pub async fn create_tenant(store: &Store, spec: &TenantSpec) -> anyhow::Result<Tenant> {
    let mut tenant = Tenant::new(spec.id.clone(), spec.name.clone());
    tenant.seat_limit = spec.seat_limit;
    tenant.billing_time_zone = spec.time_zone;
    store
        .create_tenant(&tenant)
        .await
        .with_context(|| format!("creating tenant {}", spec.id))?;
    Ok(tenant)
}

/// Creates an active admin in the tenant (the first admin has nobody to invite them).
pub async fn create_admin(
    store: &Store,
    tenant: &TenantId,
    login_id: LoginId,
    email: Email,
    name: DisplayName,
) -> anyhow::Result<User> {
    let admin = User::new(
        tenant.clone(),
        UserId::generate(),
        Profile::minimal(login_id, email, name, Role::Admin),
        Status::Active,
        store.clock().now(),
    );
    store
        .create_user(&admin, None, None)
        .await
        .with_context(|| format!("creating the admin of tenant {tenant}"))?;
    Ok(admin)
}
