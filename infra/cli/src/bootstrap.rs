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

/// A random password that meets the default policy, for the local stack's demo admin.
pub fn dev_password() -> anyhow::Result<String> {
    let token = rollcall::domain::SecretToken::mint()?;
    let letters: String = token
        .expose()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    Ok(format!("Dev-{letters}-9a!"))
}

/// Gives user `login` of `tenant` the password `password` (the local stack's demo admin, who has
/// nobody to invite them).
pub async fn set_password(
    store: &Store,
    tenant: &TenantId,
    login: &str,
    password: &str,
) -> anyhow::Result<()> {
    let user = store
        .find_by_login_id(tenant, &LoginId::parse(login)?)
        .await?
        .with_context(|| format!("no user {login} in {tenant}"))?;
    let tenant_settings = store.get_tenant(tenant).await?;
    let checked = tenant_settings
        .password_policy
        .check(password, &user.profile.login_id)
        .map_err(|broken| anyhow::anyhow!("the password breaks {broken:?}"))?;
    let mut after = user.clone();
    after.password_hash = Some(rollcall::domain::PasswordHash::of(&checked)?);
    after.has_password = true;
    store.update_user(&user, after).await?;
    Ok(())
}

/// Registers the public client the CLI and the local tour sign in with: loopback redirects on
/// any port (RFC 8252 §7.3), refresh tokens allowed.
pub async fn register_cli_client(
    store: &Store,
    tenant: &TenantId,
) -> anyhow::Result<rollcall::oidc::ClientId> {
    use rollcall::oidc::{AuthMethod, Client, ClientId, GrantType, RedirectUri};
    let client = Client {
        id: ClientId::generate(),
        tenant: tenant.clone(),
        name: DisplayName::parse("rollcall CLI")?,
        redirect_uris: vec![RedirectUri::parse("http://127.0.0.1/callback")?],
        post_logout_redirect_uris: vec![],
        auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        secret_digest: None,
        created_at: store.clock().now(),
    };
    store.put_client(&client).await?;
    Ok(client.id)
}
