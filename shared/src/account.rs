//! What a person does to their own account with a mailed link: look a link up without using it,
//! and set a password through it. Shared by the JSON routes (users-api) and the hosted pages
//! (auth), so both apply the same rules.

use chrono::{DateTime, Utc};

use crate::domain::{
    Invitation, MailKind, PasswordHash, PasswordPolicy, PasswordRule, SecretToken, Status, Tenant,
    TokenDigest, TokenState, User, UserId,
};
use crate::oidc::throttle::{ADDRESS_FAILURES_PER_HOUR, address_bucket, lock_after};
use crate::store::{Store, StoreError, TokenRecord, UserInvitations};

/// A link looked up: its token item, the user's partition, the tenant, and what it can do.
#[derive(Debug)]
pub struct Link {
    /// The digest the link is stored under.
    pub digest: TokenDigest,
    /// The token item.
    pub token: TokenRecord,
    /// The user's partition (user, invitations, sign-in record).
    pub found: UserInvitations,
    /// The tenant.
    pub tenant: Tenant,
    /// What the link can do now.
    pub state: TokenState,
    /// An invitation's or a reset's link.
    pub kind: MailKind,
}

impl Link {
    /// Looks `token` up (three reads: the token, the user's partition, the tenant). `None`: no
    /// such link, or its tenant is gone.
    pub async fn resolve(store: &Store, token: &SecretToken) -> Result<Option<Link>, StoreError> {
        let digest = token.digest();
        let Some(record) = store.token(&digest).await? else {
            return Ok(None);
        };
        let found = store.user_invitations(&record.tenant, &record.user).await?;
        let tenant = match store.get_tenant(&record.tenant).await {
            Ok(t) => t,
            Err(StoreError::TenantNotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let item = found.find(&record.invitation);
        let kind = item.map_or(MailKind::Invitation, Invitation::kind);
        let state = TokenState::of(
            record.used,
            record.link_expires_at,
            item,
            found.user.as_ref(),
            found.sign_in.revoked_before,
            store.clock().now(),
        );
        Ok(Some(Link {
            digest,
            token: record,
            found,
            tenant,
            state,
            kind,
        }))
    }

    /// The user, while the link is valid.
    pub fn user(&self) -> Option<&User> {
        self.found
            .user
            .as_ref()
            .filter(|_| self.state == TokenState::Valid)
    }

    /// When the link stops working.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.token.link_expires_at
    }
}

/// An argon2id hash (rollcall's parameters) of a random password nobody knows: what an unknown
/// name's password is checked against. Not a secret.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2lnbmluLWR1bW15LXNhbHQ$1WbO3xFo9dCMLY2Kv8i7xYyQ+u0oW9T2ZLkQmJ2rSg4";

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Refused: the one answer to every reason (see the module's documentation).
    #[error("sign-in refused")]
    Refused,
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The password could not be checked (the blocking pool is gone).
    #[error("the password check could not run")]
    Hash(#[source] tokio::task::JoinError),
}

/// Checks `login` (a login id or an email, any case) and `password` at `tenant`, from
/// `source` (an IP address, when known). Used by the sign-in page, the account page and the
/// API's password change, so each is bounded the same way.
///
/// A refusal never says why (ASVS 5.0 §6.3.8): an unknown name, a wrong password, a locked
/// account, an address over its bound and an account that may not sign in (invited,
/// suspended, outside its validity window or login hours) all get the same answer after the
/// same work. Every attempt makes the same requests and runs argon2id once: an unknown name is
/// checked against a dummy hash of the same cost, and where a known account's attempt is
/// counted with a conditional write, an unknown one makes the same write to a key that can't
/// exist. Brute force (ASVS 5.0 §6.3.1): [`crate::oidc::throttle`] holds the schedule.
pub async fn authenticate(
    store: &Store,
    tenant: &Tenant,
    login: &str,
    password: &str,
    source: Option<&str>,
) -> Result<User, SignInError> {
    let address = address_bucket(source);
    // A concurrent attempt on the same account may move its counter between read and claim:
    // read again, once.
    for round in 0..2 {
        let lookup = store
            .find_for_sign_in(&tenant.id, login.trim(), &address)
            .await?;
        let now = store.clock().now();
        let address_open = lookup.address_failures < ADDRESS_FAILURES_PER_HOUR;
        let (user, state) = match lookup.found {
            Some((u, s)) => (Some(u), s),
            None => (None, Default::default()),
        };
        let open = address_open && state.locked_until.is_none_or(|l| now >= l);
        // The attempt is counted before the password is checked, so a burst of parallel
        // guesses is counted one by one.
        let counted = match (&user, open) {
            (Some(u), true) => {
                store
                    .claim_attempt(
                        &tenant.id,
                        &u.id,
                        state.failures,
                        lock_after(state.failures + 1, now),
                    )
                    .await?
            }
            _ => {
                let nobody = UserId::from_ulid(ulid::Ulid::nil());
                store.claim_attempt(&tenant.id, &nobody, 1, None).await?;
                false
            }
        };
        if user.is_some() && open && !counted && round == 0 {
            continue;
        }
        let hash = user
            .as_ref()
            .filter(|_| counted)
            .and_then(|u| u.password_hash.clone())
            .or_else(|| PasswordHash::from_phc(DUMMY_HASH));
        let candidate = password.to_owned();
        // argon2id takes tens of milliseconds of CPU: off the async executor.
        let matches =
            tokio::task::spawn_blocking(move || hash.is_some_and(|h| h.verify(&candidate)))
                .await
                .map_err(SignInError::Hash)?;
        if let Some(user) = user
            && counted
            && matches
        {
            match user.may_sign_in(now, tenant.billing_time_zone) {
                Ok(()) => {
                    store.record_sign_in(&tenant.id, &user.id, now).await?;
                    return Ok(user);
                }
                Err(why) => {
                    tracing::info!(user_id = %user.id, reason = ?why, "sign-in refused: the account may not sign in now");
                }
            }
        }
        store.count_address_failure(&address).await?;
        return Err(SignInError::Refused);
    }
    Err(SignInError::Refused)
}

/// Reset mails one account may be sent in any hour, whoever asks.
pub const RESETS_PER_ACCOUNT_HOUR: usize = 5;

/// What asking for a reset mail did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetQueued {
    /// A mail is on its way; older reset links are revoked.
    Queued,
    /// Only an active user can reset a password (an invited one uses the invitation).
    NotActive,
    /// The account had [`RESETS_PER_ACCOUNT_HOUR`] reset mails in the last hour; the next may
    /// go this many seconds from now.
    TooMany(i64),
}

/// Queues a reset mail for `user` (asked for by `trigger`, by `by` when an admin did), if the
/// user is active and within [`RESETS_PER_ACCOUNT_HOUR`].
pub async fn queue_reset(
    store: &Store,
    user: &User,
    trigger: crate::domain::InvitationTrigger,
    by: Option<UserId>,
) -> Result<ResetQueued, StoreError> {
    if user.status != Status::Active {
        return Ok(ResetQueued::NotActive);
    }
    let found = store.user_invitations(&user.tenant, &user.id).await?;
    let now = store.clock().now();
    let hour_ago = now - chrono::Duration::hours(1);
    if found.count_since(MailKind::Reset, hour_ago) >= RESETS_PER_ACCOUNT_HOUR {
        let free_at = found
            .invitations
            .iter()
            .filter(|i| i.kind() == MailKind::Reset && i.created_at > hour_ago)
            .map(|i| i.created_at + chrono::Duration::hours(1))
            .min()
            .unwrap_or(now);
        return Ok(ResetQueued::TooMany(
            ((free_at - now).num_milliseconds() + 999) / 1000,
        ));
    }
    let item = Invitation::new(user, trigger, by, now);
    match store
        .queue_account_mail(user, &found.unsuperseded_of(MailKind::Reset), &item)
        .await
    {
        // A concurrent request won the race: its mail is the one.
        Ok(()) | Err(StoreError::InvitationChanged | StoreError::VersionConflict) => {
            tracing::info!(tenant_id = %user.tenant, user_id = %user.id, "reset mail queued");
            Ok(ResetQueued::Queued)
        }
        Err(e) => Err(e),
    }
}

/// Why a signed-in user's password was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The new password breaks these rules of the tenant's policy (checked first: a new
    /// password that can't be used costs no attempt).
    #[error("the new password breaks {} rule(s)", .0.len())]
    Rejected(Vec<PasswordRule>),
    /// The current password was not right, or the account can't sign in now (one answer).
    #[error("the current password was not accepted")]
    CurrentRefused,
    /// The user changed meanwhile, or an import holds the tenant: try again.
    #[error("the account changed meanwhile")]
    Busy,
    /// The store failed.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// A password could not be checked or hashed.
    #[error("the password could not be checked or hashed")]
    Hash(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ChangePasswordError {
    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChangePasswordError::Busy | ChangePasswordError::Hash(_) => true,
            ChangePasswordError::Store(e) => e.is_retryable(),
            ChangePasswordError::Rejected(_) | ChangePasswordError::CurrentRefused => false,
        }
    }
}

/// Changes `user`'s password from `current` to `new` at `tenant`, the request coming from
/// `source`: the policy first, then the current password through [`authenticate`] (the same
/// lockout and address bound as signing in), then the new hash with every session, refresh
/// family and access token from before `at` void. Returns the user as saved.
pub async fn change_password(
    store: &Store,
    tenant: &Tenant,
    user: &User,
    current: &str,
    new: &str,
    source: Option<&str>,
    at: DateTime<Utc>,
) -> Result<User, ChangePasswordError> {
    tenant
        .password_policy
        .check(new, &user.profile.login_id)
        .map_err(ChangePasswordError::Rejected)?;
    let user = match authenticate(
        store,
        tenant,
        user.profile.login_id.as_str(),
        current,
        source,
    )
    .await
    {
        Ok(u) if u.id == user.id => u,
        Ok(_) | Err(SignInError::Refused) => return Err(ChangePasswordError::CurrentRefused),
        Err(SignInError::Store(e)) => return Err(ChangePasswordError::Store(e)),
        Err(SignInError::Hash(e)) => return Err(ChangePasswordError::Hash(Box::new(e))),
    };
    let hash = hash_new_password(&tenant.password_policy, &user, new)
        .await
        .map_err(|e| match e {
            SetPasswordError::Rejected(broken) => ChangePasswordError::Rejected(broken),
            other => ChangePasswordError::Hash(Box::new(other)),
        })?;
    let mut after = user.clone();
    after.password_hash = Some(hash);
    after.has_password = true;
    match store.change_password(&user, after, at).await {
        Ok(saved) => {
            tracing::info!(tenant_id = %tenant.id, user_id = %saved.id, "password changed");
            Ok(saved)
        }
        Err(StoreError::VersionConflict | StoreError::ImportInProgress) => {
            Err(ChangePasswordError::Busy)
        }
        Err(e) => Err(ChangePasswordError::Store(e)),
    }
}

/// Why a password was not set through a link.
#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    /// The link can't set a password (expired, used, revoked).
    #[error("the link is {}", .0.as_str())]
    Link(TokenState),
    /// The password breaks these rules of the tenant's policy.
    #[error("the password breaks {} rule(s)", .0.len())]
    Rejected(Vec<PasswordRule>),
    /// Something changed between the read and the write, and the link is still valid: try
    /// again.
    #[error("the account changed meanwhile")]
    Busy,
    /// The store failed.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// The password could not be hashed.
    #[error("the password could not be hashed")]
    Hash(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SetPasswordError {
    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            SetPasswordError::Busy => true,
            SetPasswordError::Store(e) => e.is_retryable(),
            SetPasswordError::Hash(_) => true,
            SetPasswordError::Link(_) | SetPasswordError::Rejected(_) => false,
        }
    }
}

/// Checks `candidate` against `policy` for `user` and hashes it (argon2id, off the async
/// workers: it takes tens of milliseconds of CPU and 19 MiB).
pub async fn hash_new_password(
    policy: &PasswordPolicy,
    user: &User,
    candidate: &str,
) -> Result<PasswordHash, SetPasswordError> {
    let password = policy
        .check(candidate, &user.profile.login_id)
        .map_err(SetPasswordError::Rejected)?;
    tokio::task::spawn_blocking(move || PasswordHash::of(&password))
        .await
        .map_err(|e| SetPasswordError::Hash(Box::new(e)))?
        .map_err(|e| SetPasswordError::Hash(Box::new(e)))
}

/// Sets the password through `link` (looked up by [`Link::resolve`] with `token`): checks the
/// policy, activates an invited user, burns the link; a reset also voids every session from
/// before. Returns the user as saved.
pub async fn set_password(
    store: &Store,
    token: &SecretToken,
    link: &Link,
    candidate: &str,
) -> Result<User, SetPasswordError> {
    if link.state != TokenState::Valid {
        return Err(SetPasswordError::Link(link.state));
    }
    let (Some(user), Some(item)) = (
        link.found.user.clone(),
        link.found.find(&link.token.invitation).cloned(),
    ) else {
        return Err(SetPasswordError::Link(TokenState::Revoked));
    };
    let hash = hash_new_password(&link.tenant.password_policy, &user, candidate).await?;
    let mut after = user.clone();
    if after.status == Status::Invited {
        after.status = after
            .status
            .activate()
            .map_err(|_| SetPasswordError::Link(TokenState::Revoked))?;
    }
    after.has_password = true;
    after.password_hash = Some(hash);
    let reset = link.kind == MailKind::Reset;
    match store
        .set_password_by_link(&user, after, &item, &link.digest, reset)
        .await
    {
        Ok(saved) => {
            tracing::info!(tenant_id = %saved.tenant, user_id = %saved.id, kind = link.kind.as_str(), "password set through a link");
            Ok(saved)
        }
        // Something moved between the read and the write: say what the link can do now.
        Err(
            StoreError::InvitationChanged | StoreError::VersionConflict | StoreError::TokenUsed,
        ) => {
            match Link::resolve(store, token)
                .await
                .map_err(SetPasswordError::Store)?
            {
                Some(now) if now.state != TokenState::Valid => {
                    Err(SetPasswordError::Link(now.state))
                }
                None => Err(SetPasswordError::Link(TokenState::Revoked)),
                Some(_) => Err(SetPasswordError::Busy),
            }
        }
        Err(e) => Err(SetPasswordError::Store(e)),
    }
}

/// The rules `policy` enforces, in the order a page lists them.
pub fn policy_rules(policy: &PasswordPolicy) -> Vec<PasswordRule> {
    let mut rules = vec![
        PasswordRule::TooShort {
            min: policy.min_length.max(1),
        },
        PasswordRule::TooLong {
            max: policy.max_length,
        },
    ];
    for (on, rule) in [
        (policy.require_upper, PasswordRule::NeedsUpper),
        (policy.require_lower, PasswordRule::NeedsLower),
        (policy.require_digit, PasswordRule::NeedsDigit),
        (policy.require_symbol, PasswordRule::NeedsSymbol),
        (true, PasswordRule::DisallowedCharacter),
        (policy.forbid_login_id, PasswordRule::SameAsLoginId),
    ] {
        if on {
            rules.push(rule);
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB};

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::from_phc(DUMMY_HASH).expect("an argon2id PHC string");
        let params = format!("m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}");
        assert!(dummy.as_str().contains(&params), "{params}");
        let real = PasswordHash::of(
            &crate::domain::PasswordPolicy::default()
                .check(
                    "Tr0ub4dor&3",
                    &crate::domain::LoginId::parse("taro").unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        let output = |h: &str| h.rsplit('$').next().unwrap().len();
        assert_eq!(
            output(dummy.as_str()),
            output(real.as_str()),
            "same output length"
        );
        assert!(!dummy.verify(""));
    }
}
