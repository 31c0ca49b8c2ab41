//! The sign-in items: the deployment's signing keys, each tenant's clients, authorization codes
//! and browser sessions. Every secret (code, session cookie) is found by its SHA-256; the items
//! that die carry `expires_at`, the table's TTL attribute, and are also checked against the
//! clock on read, since TTL deletes lazily.

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::tx::{Guard, Transaction};
use super::{Store, StoreError, condition_held, items, keys};
use crate::domain::{DisplayName, TenantId, TokenDigest, UserId};
use crate::oidc::{AuthMethod, Client, ClientId, CodeChallenge, GrantType, PublicJwk, RedirectUri};

fn corrupt(what: &str) -> impl Fn(serde_dynamo::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what} item: {e}"))
}

/// A signing key as stored: its public half and its private half sealed (encrypted under KMS by
/// the sign-in function; the store never sees it in the clear). Which key signs is decided by
/// age ([`crate::oidc::keys::signer_of`]), not stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The public key.
    pub public: PublicJwk,
    /// The sealed PKCS#8, base64.
    pub sealed: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct KeyItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    key: StoredKey,
}

#[derive(Serialize, Deserialize)]
struct ClientItem {
    pk: String,
    sk: String,
    entity: String,
    tenant_id: TenantId,
    client_id: ClientId,
    client_name: DisplayName,
    redirect_uris: Vec<RedirectUri>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<RedirectUri>,
    token_endpoint_auth_method: AuthMethod,
    grant_types: Vec<GrantType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_digest: Option<TokenDigest>,
    created_at: DateTime<Utc>,
}

impl ClientItem {
    fn of(c: &Client) -> ClientItem {
        ClientItem {
            pk: keys::tenant_pk(&c.tenant),
            sk: keys::client_sk(&c.id),
            entity: "client".into(),
            tenant_id: c.tenant.clone(),
            client_id: c.id,
            client_name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            token_endpoint_auth_method: c.auth_method,
            grant_types: c.grant_types.clone(),
            secret_digest: c.secret_digest.clone(),
            created_at: c.created_at,
        }
    }

    fn client(self) -> Client {
        Client {
            id: self.client_id,
            tenant: self.tenant_id,
            name: self.client_name,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            auth_method: self.token_endpoint_auth_method,
            grant_types: self.grant_types,
            secret_digest: self.secret_digest,
            created_at: self.created_at,
        }
    }
}

/// What an authorization code stands for: everything the token endpoint needs to issue tokens
/// and to check the request that redeems it (RFC 6749 §4.1.3, RFC 7636 §4.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthCode {
    /// The tenant.
    pub tenant: TenantId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who signed in.
    pub user_id: UserId,
    /// The redirect URI of the authorization request, as sent (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE challenge.
    pub code_challenge: CodeChallenge,
    /// The `nonce`, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    /// How (RFC 8176).
    pub amr: Vec<String>,
    /// The browser session it came from.
    pub sid: String,
    /// The grant the code opens: the refresh family and the access tokens issued for it carry
    /// this id, so a replayed code can revoke all of them (RFC 6749 §4.1.2).
    pub grant_id: String,
    /// The access token's audience (the resource it is for).
    pub audience: String,
    /// When the code dies (60 s after issue).
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct CodeItem {
    pk: String,
    sk: String,
    entity: String,
    /// The TTL, epoch seconds: a day after the code's expiry, so a late replay is recognised.
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<DateTime<Utc>>,
    code: AuthCode,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    /// The code was live and is now spent: issue tokens.
    Fresh(AuthCode),
    /// The code was spent before: refuse, and revoke what it issued.
    Replayed(AuthCode),
    /// No such code, or it expired.
    Unknown,
}

/// A browser's sign-in session at one tenant (the cookie holds the secret; the item its digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user_id: UserId,
    /// A public id for the session (the `sid` claim).
    pub sid: String,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    /// How (RFC 8176).
    pub amr: Vec<String>,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// Set while the session waits for the emailed code of the second step (the code mail's
    /// id): such a session signs nobody in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_code: Option<crate::domain::InvitationId>,
}

impl Session {
    /// Whether the session has passed every step.
    pub fn is_complete(&self) -> bool {
        self.pending_code.is_none()
    }
}

#[derive(Serialize, Deserialize)]
struct SessionItem {
    pk: String,
    sk: String,
    entity: String,
    /// The TTL, epoch seconds.
    expires_at: i64,
    session: Session,
}

/// Sort key of the item naming the current signing key.
const KEYS_HEAD_SK: &str = "HEAD";
/// Sort key of code items.
const CODE_SK: &str = "CODE";
/// Sort key of session items.
const SESSION_SK: &str = "SESSION";

impl Store {
    /// The deployment's signing keys, newest first.
    #[instrument(skip_all)]
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::SIGNING_KEYS_PK.into()))
            .consistent_read(true);
        let mut out = Vec::new();
        self.query_all(query, |item| {
            if items::string_attr(&item, "sk") == Some(KEYS_HEAD_SK) {
                return Ok(());
            }
            let k: KeyItem = serde_dynamo::from_item(item).map_err(corrupt("signing key"))?;
            out.push(k.key);
            Ok(())
        })
        .await?;
        out.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(out)
    }

    /// Adds `new` as the newest key and deletes `retired`, in one transaction conditioned on
    /// the newest key being `newest` as read (the `HEAD` item), so two rotations from the same
    /// state can't both win.
    #[instrument(skip_all, fields(kid = %new.public.kid))]
    pub async fn add_signing_key(
        &self,
        new: &StoredKey,
        newest: Option<&StoredKey>,
        retired: &[&StoredKey],
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        let head = aws_sdk_dynamodb::types::Update::builder()
            .set_key(Some(items::key(keys::SIGNING_KEYS_PK.into(), KEYS_HEAD_SK)))
            .update_expression("SET newest_kid = :new")
            .expression_attribute_values(":new", AttributeValue::S(new.public.kid.clone()));
        let head = match newest {
            Some(c) => head
                .condition_expression("newest_kid = :old")
                .expression_attribute_values(":old", AttributeValue::S(c.public.kid.clone())),
            None => head.condition_expression("attribute_not_exists(newest_kid)"),
        };
        tx.update(head, Guard::SigningKeys)?;
        let item = KeyItem {
            pk: keys::SIGNING_KEYS_PK.into(),
            sk: keys::signing_key_sk(&new.public.kid),
            entity: "signing_key".into(),
            key: new.clone(),
        };
        tx.put(
            Put::builder()
                .set_item(Some(
                    serde_dynamo::to_item(item).map_err(corrupt("signing key"))?,
                ))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::SigningKeys,
        )?;
        for old in retired {
            tx.delete(
                items::key(
                    keys::SIGNING_KEYS_PK.into(),
                    &keys::signing_key_sk(&old.public.kid),
                ),
                "attribute_exists(pk)",
                Guard::SigningKeys,
            )?;
        }
        self.commit(tx).await
    }

    /// Registers a client; its tenant must exist.
    #[instrument(skip_all, fields(tenant_id = %client.tenant, client_id = %client.id))]
    pub async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        tx.put(
            Put::builder()
                .set_item(Some(
                    serde_dynamo::to_item(ClientItem::of(client)).map_err(corrupt("client"))?,
                ))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::FreshId,
        )?;
        tx.condition_check(
            ConditionCheck::builder()
                .table_name(self.table.as_ref())
                .set_key(Some(items::key(
                    keys::tenant_pk(&client.tenant),
                    keys::TENANT_SK,
                )))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(StoreError::build)?,
            Guard::TenantExists,
        );
        self.commit(tx).await
    }

    /// A tenant's client.
    #[instrument(skip_all, fields(tenant_id = %tenant, client_id = %id))]
    pub async fn get_client(
        &self,
        tenant: &TenantId,
        id: &ClientId,
    ) -> Result<Option<Client>, StoreError> {
        let item = self
            .read_item(keys::tenant_pk(tenant), &keys::client_sk(id))
            .await?;
        item.map(|i| {
            serde_dynamo::from_item::<_, ClientItem>(i)
                .map(ClientItem::client)
                .map_err(corrupt("client"))
        })
        .transpose()
    }

    /// A tenant's clients, oldest first.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn list_clients(&self, tenant: &TenantId) -> Result<Vec<Client>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::tenant_pk(tenant)))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(keys::CLIENT_SK_PREFIX.into()),
            )
            .consistent_read(true);
        let mut out = Vec::new();
        self.query_all(query, |item| {
            let c: ClientItem = serde_dynamo::from_item(item).map_err(corrupt("client"))?;
            out.push(c.client());
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Deletes a client; `NotFound` if there is none.
    #[instrument(skip_all, fields(tenant_id = %tenant, client_id = %id))]
    pub async fn delete_client(&self, tenant: &TenantId, id: &ClientId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::tenant_pk(tenant),
                &keys::client_sk(id),
            )))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Stores a fresh authorization code under its digest.
    #[instrument(skip_all, fields(tenant_id = %code.tenant, client_id = %code.client_id))]
    pub async fn put_code(&self, digest: &TokenDigest, code: &AuthCode) -> Result<(), StoreError> {
        let item = CodeItem {
            pk: keys::code_pk(digest.as_str()),
            sk: CODE_SK.into(),
            entity: "code".into(),
            expires_at: code.expires_at.timestamp() + 86_400,
            used_at: None,
            code: code.clone(),
        };
        let item = serde_dynamo::to_item(item).map_err(corrupt("code"))?;
        let result = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::Corrupt(
                "an authorization code was minted twice".into(),
            ))
        }
    }

    /// Spends a code: the first redemption wins (one conditional write); a second finds it
    /// spent (`Replayed`); an expired or unknown code is `Unknown`.
    #[instrument(skip_all)]
    pub async fn redeem_code(&self, digest: &TokenDigest) -> Result<Redeemed, StoreError> {
        let now = self.clock.now();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(keys::code_pk(digest.as_str()), CODE_SK)))
            .update_expression("SET used_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(used_at)")
            .expression_attribute_values(":now", AttributeValue::S(now.to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let code = code_from(out.attributes.unwrap_or_default())?;
                if code.expires_at <= now {
                    Ok(Redeemed::Unknown)
                } else {
                    Ok(Redeemed::Fresh(code))
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                match self
                    .read_item(keys::code_pk(digest.as_str()), CODE_SK)
                    .await?
                {
                    Some(item) => Ok(Redeemed::Replayed(code_from(item)?)),
                    None => Ok(Redeemed::Unknown),
                }
            }
            Err(e) => Err(StoreError::aws(e)),
        }
    }

    /// Stores a session under the digest of its cookie.
    #[instrument(skip_all, fields(tenant_id = %session.tenant))]
    pub async fn put_session(
        &self,
        digest: &TokenDigest,
        session: &Session,
    ) -> Result<(), StoreError> {
        let item = SessionItem {
            pk: keys::session_pk(digest.as_str()),
            sk: SESSION_SK.into(),
            entity: "session".into(),
            expires_at: session.expires_at.timestamp(),
            session: session.clone(),
        };
        let item = serde_dynamo::to_item(item).map_err(corrupt("session"))?;
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }

    /// The live session whose cookie has this digest.
    #[instrument(skip_all)]
    pub async fn session(&self, digest: &TokenDigest) -> Result<Option<Session>, StoreError> {
        let Some(item) = self
            .read_item(keys::session_pk(digest.as_str()), SESSION_SK)
            .await?
        else {
            return Ok(None);
        };
        let session = session_from(item)?;
        Ok((session.expires_at > self.clock.now()).then_some(session))
    }

    /// Ends a session.
    #[instrument(skip_all)]
    pub async fn delete_session(&self, digest: &TokenDigest) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::session_pk(digest.as_str()),
                SESSION_SK,
            )))
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }
}

fn code_from(item: items::Item) -> Result<AuthCode, StoreError> {
    let c: CodeItem = serde_dynamo::from_item(item).map_err(corrupt("code"))?;
    Ok(c.code)
}

fn session_from(item: items::Item) -> Result<Session, StoreError> {
    let s: SessionItem = serde_dynamo::from_item(item).map_err(corrupt("session"))?;
    Ok(s.session)
}

impl Store {
    /// The live user who signs in with `typed`: their login id or their email address, in any
    /// case, with their sign-in record; and the failures counted this hour against the source
    /// `address` bucket. The claims and the address counter are read in one request; if the text
    /// is one user's login id and another's email, the login id wins (it is what the sign-in
    /// page asks for first).
    ///
    /// Always two requests, found or not (an unknown name reads a user key that can't exist),
    /// so the time taken says nothing about whether the account exists.
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn find_for_sign_in(
        &self,
        tenant: &TenantId,
        typed: &str,
        address: &str,
    ) -> Result<SignInLookup, StoreError> {
        use crate::domain::{Email, LoginId};
        let address_key = items::key(
            keys::address_pk(address),
            &format!(
                "THROTTLE#{}",
                crate::oidc::throttle::hour_of(self.clock.now())
            ),
        );
        let login_pk = LoginId::parse(typed)
            .ok()
            .map(|l| keys::login_claim_pk(tenant, &l.key()));
        let email_pk = Email::parse(typed)
            .ok()
            .map(|e| keys::email_claim_pk(tenant, &e.key()));
        let mut wanted: Vec<_> = login_pk
            .iter()
            .chain(email_pk.iter())
            .map(|pk| items::key(pk.clone(), keys::CLAIM_SK))
            .collect();
        wanted.push(address_key.clone());
        let claims = self.batch_get(wanted).await?;
        let address_pk = items::string_attr(&address_key, "pk").unwrap_or_default();
        let address_failures = claims
            .iter()
            .find(|c| items::string_attr(c, "pk") == Some(address_pk))
            .and_then(|c| c.get("failures"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let owner = |pk: &Option<String>| {
            pk.as_ref().and_then(|pk| {
                claims
                    .iter()
                    .find(|c| items::string_attr(c, "pk") == Some(pk.as_str()))
                    .and_then(|c| items::string_attr(c, "user_id"))
                    .and_then(|u| UserId::parse(u).ok())
            })
        };
        let user_id = owner(&login_pk).or_else(|| owner(&email_pk));
        // A user id no ULID generator produces (all zeroes): the read that makes "unknown"
        // cost what "known" costs.
        let probe = user_id.unwrap_or(UserId::from_ulid(ulid::Ulid::nil()));
        let pk = keys::user_pk(tenant, &probe);
        let mut user = None;
        let mut state = SignInState::default();
        for item in self
            .batch_get(vec![
                items::key(pk.clone(), keys::USER_SK),
                items::key(pk.clone(), SIGNIN_SK),
                items::key(pk, THROTTLE_SK),
            ])
            .await?
        {
            match items::string_attr(&item, "sk") {
                Some(keys::USER_SK) => user = items::user_from_item(item)?,
                _ => state.absorb(&item)?,
            }
        }
        Ok(SignInLookup {
            found: user_id.and(user).map(|u| (u, state)),
            address_failures,
        })
    }
}

impl Store {
    /// Revokes grant `grant_id` of `tenant`: its refresh tokens stop working, and rollcall's
    /// API refuses the access tokens issued under it. Idempotent; the marker outlives every
    /// token of the grant (refresh families live at most 30 days by default; 400 days covers
    /// any configured lifetime).
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn revoke_grant(&self, tenant: &TenantId, grant_id: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::family_pk(tenant, grant_id),
                FAMILY_SK,
            )))
            .update_expression(
                "SET entity = :e, revoked_at = if_not_exists(revoked_at, :now), expires_at = :ttl",
            )
            .expression_attribute_values(":e", AttributeValue::S("family".into()))
            .expression_attribute_values(":now", AttributeValue::S(now.to_rfc3339()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + chrono::Duration::days(400)).timestamp().to_string()),
            )
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }
}

/// Sort key of grant (family) items.
const FAMILY_SK: &str = "FAMILY";

/// A grant with refresh tokens: what every token rotated from one sign-in shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    /// The tenant.
    pub tenant: TenantId,
    /// The grant's id (the code's).
    pub grant_id: String,
    /// The user.
    pub user_id: UserId,
    /// The client.
    pub client_id: ClientId,
    /// The granted scopes.
    pub scope: String,
    /// The access tokens' audience.
    pub audience: String,
    /// When the user authenticated.
    pub auth_time: DateTime<Utc>,
    /// How.
    pub amr: Vec<String>,
    /// The browser session the grant came from.
    pub sid: String,
    /// When the family was started.
    pub created_at: DateTime<Utc>,
    /// When every token of the family dies, however recently used (absolute lifetime).
    pub absolute_expires_at: DateTime<Utc>,
    /// Set when the family was revoked (reuse, revocation, sign-out everywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One refresh token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// Its family.
    pub grant_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it dies unused (idle lifetime).
    pub idle_expires_at: DateTime<Utc>,
    /// When it was exchanged for its successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<DateTime<Utc>>,
    /// Whether its one use inside the grace period was taken.
    #[serde(default)]
    pub grace_used: bool,
}

#[derive(Serialize, Deserialize)]
struct FamilyItem {
    pk: String,
    sk: String,
    entity: String,
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<Family>,
}

#[derive(Serialize, Deserialize)]
struct RefreshItem {
    pk: String,
    sk: String,
    entity: String,
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    grace_used: bool,
    refresh: RefreshRecord,
}

/// Sort key of refresh token items.
const REFRESH_SK: &str = "REFRESH";

/// How a refresh token's item should change when it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// A live token: it becomes rotated now (it must still be unrotated).
    Rotate,
    /// A token rotated at the time read, inside its grace period: its one grace use is taken
    /// (it must still be untaken).
    Grace,
}

impl Store {
    /// Starts a refresh family with its first token: one transaction. A family whose grant was
    /// revoked already (its code replayed in between) can't start.
    #[instrument(skip_all, fields(tenant_id = %family.tenant))]
    pub async fn start_family(
        &self,
        family: &Family,
        digest: &TokenDigest,
        first: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let mut tx = Transaction::new(&self.table);
        let item = FamilyItem {
            pk: keys::family_pk(&family.tenant, &family.grant_id),
            sk: FAMILY_SK.into(),
            entity: "family".into(),
            // A day past the absolute expiry: a late reuse still finds the family.
            expires_at: family.absolute_expires_at.timestamp() + 86_400,
            revoked_at: None,
            family: Some(family.clone()),
        };
        tx.put(
            Put::builder()
                .set_item(Some(
                    serde_dynamo::to_item(item).map_err(corrupt("family"))?,
                ))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::GrantLive,
        )?;
        tx.put(
            Put::builder()
                .set_item(Some(refresh_item(digest, first)?))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::FreshId,
        )?;
        self.commit(tx).await
    }

    /// A refresh token and its family, if both exist.
    #[instrument(skip_all)]
    pub async fn refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(RefreshRecord, Family)>, StoreError> {
        let Some(item) = self
            .read_item(keys::refresh_pk(digest.as_str()), REFRESH_SK)
            .await?
        else {
            return Ok(None);
        };
        let r: RefreshItem = serde_dynamo::from_item(item).map_err(corrupt("refresh token"))?;
        let mut record = r.refresh;
        record.rotated_at = r.rotated_at;
        record.grace_used = r.grace_used;
        let Some(family) = self.family(&record.tenant, &record.grant_id).await? else {
            return Ok(None);
        };
        Ok(Some((record, family)))
    }

    /// A family (with `revoked_at` as stored).
    pub async fn family(
        &self,
        tenant: &TenantId,
        grant_id: &str,
    ) -> Result<Option<Family>, StoreError> {
        let Some(item) = self
            .read_item(keys::family_pk(tenant, grant_id), FAMILY_SK)
            .await?
        else {
            return Ok(None);
        };
        let f: FamilyItem = serde_dynamo::from_item(item).map_err(corrupt("family"))?;
        Ok(f.family.map(|mut family| {
            family.revoked_at = f.revoked_at;
            family
        }))
    }

    /// Spends refresh token `old` (read as `read`) and stores its successor `new`, while the
    /// family is unrevoked: one transaction. `TokenUsed` if another request spent it first;
    /// `GrantRevoked` if the family was revoked.
    #[instrument(skip_all)]
    pub async fn rotate_refresh(
        &self,
        old: &TokenDigest,
        read: &RefreshRecord,
        spend: Spend,
        new_digest: &TokenDigest,
        new: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = Transaction::new(&self.table);
        let update = aws_sdk_dynamodb::types::Update::builder()
            .set_key(Some(items::key(keys::refresh_pk(old.as_str()), REFRESH_SK)));
        let update = match (spend, read.rotated_at) {
            (Spend::Rotate, _) => update
                .update_expression("SET rotated_at = :now")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(rotated_at)")
                .expression_attribute_values(":now", AttributeValue::S(now.to_rfc3339())),
            (Spend::Grace, Some(at)) => update
                .update_expression("SET grace_used = :t")
                .condition_expression("rotated_at = :at AND grace_used = :f")
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .expression_attribute_values(":f", AttributeValue::Bool(false))
                .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339())),
            (Spend::Grace, None) => return Err(StoreError::TokenUsed),
        };
        tx.update(update, Guard::TokenUnused)?;
        tx.put(
            Put::builder()
                .set_item(Some(refresh_item(new_digest, new)?))
                .condition_expression("attribute_not_exists(pk)"),
            Guard::FreshId,
        )?;
        tx.condition_check(
            ConditionCheck::builder()
                .table_name(self.table.as_ref())
                .set_key(Some(items::key(
                    keys::family_pk(&read.tenant, &read.grant_id),
                    FAMILY_SK,
                )))
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
                .build()
                .map_err(StoreError::build)?,
            Guard::GrantLive,
        );
        self.commit(tx).await
    }
}

fn refresh_item(digest: &TokenDigest, r: &RefreshRecord) -> Result<items::Item, StoreError> {
    let item = RefreshItem {
        pk: keys::refresh_pk(digest.as_str()),
        sk: REFRESH_SK.into(),
        entity: "refresh".into(),
        // A day past its idle expiry, so a late reuse is still recognised as one.
        expires_at: r.idle_expires_at.timestamp() + 86_400,
        rotated_at: None,
        grace_used: false,
        refresh: RefreshRecord {
            rotated_at: None,
            grace_used: false,
            ..r.clone()
        },
    };
    serde_dynamo::to_item(item).map_err(corrupt("refresh token"))
}

/// What a sign-in attempt reads before checking the password.
#[derive(Debug, Clone)]
pub struct SignInLookup {
    /// The live user named, with their sign-in record.
    pub found: Option<(crate::domain::User, SignInState)>,
    /// Failures counted against the source address this hour.
    pub address_failures: u32,
}

/// A user's sign-in record, kept beside the user item in its partition (sort keys `SIGNIN`
/// and `THROTTLE`), never on it: signing in, failing and signing out everywhere don't move the
/// user's version (ETag). The user partition's one query (`GET /users/{id}`) reads them too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInState {
    /// The last successful sign-in.
    pub last_signed_in_at: Option<DateTime<Utc>>,
    /// Sessions, refresh families and access tokens from before this instant are void ("sign
    /// out everywhere", a password change).
    pub revoked_before: Option<DateTime<Utc>>,
    /// Failed attempts since the last success (the `THROTTLE` item, which expires).
    pub failures: u32,
    /// No attempt is checked before this instant.
    pub locked_until: Option<DateTime<Utc>>,
}

impl SignInState {
    /// Whether something issued at `at` was revoked since: issued at or before the revocation
    /// (an access token's `iat` is in whole seconds, so one issued in the same second as the
    /// revocation counts as before it).
    pub fn revokes(&self, at: DateTime<Utc>) -> bool {
        self.revoked_before.is_some_and(|r| at <= r)
    }

    /// Reads the `SIGNIN` or `THROTTLE` item into this state; other items are not its.
    pub(crate) fn absorb(&mut self, item: &items::Item) -> Result<(), StoreError> {
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            items::string_attr(item, name)
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|e| StoreError::Corrupt(format!("sign-in {name}: {e}")))
                })
                .transpose()
        };
        match items::string_attr(item, "sk") {
            Some(SIGNIN_SK) => {
                self.last_signed_in_at = time("last_signed_in_at")?;
                self.revoked_before = time("revoked_before")?;
            }
            Some(THROTTLE_SK) => {
                self.failures = item
                    .get("failures")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                self.locked_until = time("locked_until")?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sort key of a user's sign-in record.
pub(crate) const SIGNIN_SK: &str = "SIGNIN";
/// Sort key of a user's failure counter.
pub(crate) const THROTTLE_SK: &str = "THROTTLE";

/// What rollcall's API needs to know about a caller holding a rollcall token: one read.
#[derive(Debug, Clone)]
pub struct CallerState {
    /// The live user, if any.
    pub user: Option<crate::domain::User>,
    /// Their tenant, if it exists (its time zone is the user's default one).
    pub tenant: Option<crate::domain::Tenant>,
    /// Their sign-in record.
    pub sign_in: SignInState,
    /// Whether the token's grant was revoked.
    pub grant_revoked: bool,
}

impl Store {
    /// The user, their tenant, their sign-in record and whether `grant_id` was revoked: one
    /// `BatchGetItem`.
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn caller_state(
        &self,
        tenant: &TenantId,
        user: &UserId,
        grant_id: Option<&str>,
    ) -> Result<CallerState, StoreError> {
        let pk = keys::user_pk(tenant, user);
        let mut wanted = vec![
            items::key(pk.clone(), keys::USER_SK),
            items::key(pk.clone(), SIGNIN_SK),
            items::key(keys::tenant_pk(tenant), keys::TENANT_SK),
        ];
        if let Some(g) = grant_id {
            wanted.push(items::key(keys::family_pk(tenant, g), FAMILY_SK));
        }
        let mut state = CallerState {
            user: None,
            tenant: None,
            sign_in: SignInState::default(),
            grant_revoked: false,
        };
        for item in self.batch_get(wanted).await? {
            match items::string_attr(&item, "sk") {
                Some(keys::USER_SK) => state.user = items::user_from_item(item)?,
                Some(keys::TENANT_SK) => state.tenant = Some(items::tenant_from_item(item)?.0),
                Some(FAMILY_SK) => state.grant_revoked = item.contains_key("revoked_at"),
                _ => state.sign_in.absorb(&item)?,
            }
        }
        Ok(state)
    }

    /// Records a successful sign-in at `at`, and clears the failure counter (the two writes
    /// at once: they touch different items).
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn record_sign_in(
        &self,
        tenant: &TenantId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        tokio::try_join!(
            self.stamp_sign_in(tenant, user, "last_signed_in_at", at),
            self.delete_at(keys::user_pk(tenant, user), THROTTLE_SK),
        )?;
        Ok(())
    }

    /// Voids every session, refresh family and access token of the user issued before `at`.
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn revoke_sessions(
        &self,
        tenant: &TenantId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.stamp_sign_in(tenant, user, "revoked_before", at).await
    }

    /// Sets one instant of the user's sign-in record.
    async fn stamp_sign_in(
        &self,
        tenant: &TenantId,
        user: &UserId,
        attribute: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(keys::user_pk(tenant, user), SIGNIN_SK)))
            .update_expression("SET entity = :e, #at = :at")
            .expression_attribute_names("#at", attribute)
            .expression_attribute_values(":e", AttributeValue::S("sign_in".into()))
            .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339()))
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }
}

impl Store {
    /// Takes one attempt at the user's password: the failure counter moves from `read` (as
    /// read) to `read + 1` and the lock to what that failure would earn, in one conditional
    /// write, so concurrent attempts are counted one by one and none slips past a lock. A
    /// success then clears the counter ([`Store::record_sign_in`]). `Ok(false)`: another
    /// attempt moved the counter first.
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn claim_attempt(
        &self,
        tenant: &TenantId,
        user: &UserId,
        read: u32,
        lock: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let req = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(keys::user_pk(tenant, user), THROTTLE_SK)))
            .expression_attribute_values(":e", AttributeValue::S("throttle".into()))
            .expression_attribute_values(":next", AttributeValue::N((read + 1).to_string()))
            // The counter forgets a day after the last attempt.
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + chrono::Duration::days(1)).timestamp().to_string()),
            );
        let req = if read == 0 {
            req.condition_expression("attribute_not_exists(failures)")
        } else {
            req.condition_expression("failures = :read")
                .expression_attribute_values(":read", AttributeValue::N(read.to_string()))
        };
        let req = match lock {
            Some(until) => req
                .update_expression(
                    "SET entity = :e, failures = :next, expires_at = :ttl, locked_until = :lock",
                )
                .expression_attribute_values(":lock", AttributeValue::S(until.to_rfc3339())),
            None => req.update_expression(
                "SET entity = :e, failures = :next, expires_at = :ttl REMOVE locked_until",
            ),
        };
        condition_held(req.send().await)
    }

    /// Counts a failed sign-in against the source address bucket for this hour.
    #[instrument(skip_all)]
    pub async fn count_address_failure(&self, address: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(
                keys::address_pk(address),
                &format!("THROTTLE#{}", crate::oidc::throttle::hour_of(now)),
            )))
            .update_expression("SET entity = :e, expires_at = :ttl ADD failures :one")
            .expression_attribute_values(":e", AttributeValue::S("address_throttle".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + chrono::Duration::hours(2)).timestamp().to_string()),
            )
            .send()
            .await
            .map_err(StoreError::aws)?;
        Ok(())
    }

    /// Clears a user's failure counter and lock (an admin's unlock).
    #[instrument(skip_all, fields(tenant_id = %tenant, user_id = %user))]
    pub async fn clear_lock(&self, tenant: &TenantId, user: &UserId) -> Result<(), StoreError> {
        self.delete_at(keys::user_pk(tenant, user), THROTTLE_SK)
            .await
    }
}

impl Store {
    /// Replaces a tenant's sign-in policy (checked by the caller against
    /// [`crate::domain::SignInPolicy::check`]).
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn set_sign_in_policy(
        &self,
        tenant: &TenantId,
        policy: crate::domain::SignInPolicy,
    ) -> Result<(), StoreError> {
        let value = serde_dynamo::to_attribute_value(policy)
            .map_err(|e| StoreError::Corrupt(format!("sign-in policy: {e}")))?;
        self.set_tenant_setting(tenant, "sign_in", value).await
    }

    /// Replaces a tenant's page settings (checked by the caller against
    /// [`crate::domain::PageSettings::check`]).
    #[instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn set_page_settings(
        &self,
        tenant: &TenantId,
        pages: &crate::domain::PageSettings,
    ) -> Result<(), StoreError> {
        let value = serde_dynamo::to_attribute_value(pages)
            .map_err(|e| StoreError::Corrupt(format!("page settings: {e}")))?;
        self.set_tenant_setting(tenant, "pages", value).await
    }

    async fn set_tenant_setting(
        &self,
        tenant: &TenantId,
        attribute: &str,
        value: AttributeValue,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(items::key(keys::tenant_pk(tenant), keys::TENANT_SK)))
            .update_expression("SET #a = :p")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":p", value)
            .send()
            .await;
        if condition_held(result)? {
            Ok(())
        } else {
            Err(StoreError::TenantNotFound)
        }
    }
}
