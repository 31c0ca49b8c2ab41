//! Checking what a person typed on the sign-in page.
//!
//! A refusal never says why (ASVS 5.0 §6.3.8): an unknown name, a wrong password, a locked
//! account, an address over its bound and an account that may not sign in (invited,
//! suspended, outside its validity window) all get the same answer after the same work. Every
//! attempt makes the same requests and runs argon2id once: an unknown name or a refused
//! attempt is checked against a dummy hash of the same cost, and where a known account's
//! attempt is counted with a conditional write, an unknown one makes the same write to a key
//! that can't exist (it fails its condition, as a write costs).
//!
//! Brute force (ASVS 5.0 §6.3.1): [`rollcall::oidc::throttle`] holds the schedule.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use rollcall::domain::{PasswordHash, Tenant, User, UserId};
use rollcall::oidc::throttle::{ADDRESS_FAILURES_PER_HOUR, address_bucket, lock_after};
use rollcall::store::{Store, StoreError};

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

/// The request's source address: API Gateway's `sourceIp` on Lambda, the peer address when
/// served directly, else unknown. Never a header a client can write.
#[derive(Debug, Clone)]
pub struct SourceAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        if let Some(RequestContext::ApiGatewayV2(ctx)) = parts.extensions.get::<RequestContext>() {
            return Ok(SourceAddress(ctx.http.source_ip.clone()));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(SourceAddress(peer))
    }
}

/// Checks `login` (a login id or an email, any case) and `password` at `tenant`, from
/// `source`.
pub async fn authenticate(
    store: &Store,
    tenant: &Tenant,
    login: &str,
    password: &str,
    source: &SourceAddress,
) -> Result<User, SignInError> {
    let address = address_bucket(source.0.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall::domain::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB};

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::from_phc(DUMMY_HASH).expect("an argon2id PHC string");
        let params = format!("m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}");
        assert!(dummy.as_str().contains(&params), "{params}");
        let real = PasswordHash::of(
            &rollcall::domain::PasswordPolicy::default()
                .check(
                    "Tr0ub4dor&3",
                    &rollcall::domain::LoginId::parse("taro").unwrap(),
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
