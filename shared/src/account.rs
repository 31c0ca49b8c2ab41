//! What a person does to their own account with a mailed link: look a link up without using it,
//! and set a password through it. Shared by the JSON routes (users-api) and the hosted pages
//! (auth), so both apply the same rules.

use chrono::{DateTime, Utc};

use crate::domain::{
    Invitation, MailKind, PasswordHash, PasswordPolicy, PasswordRule, SecretToken, Status, Tenant,
    TokenDigest, TokenState, User,
};
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
