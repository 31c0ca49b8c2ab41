//! Key layout of the single table. Every key is built here and nowhere else.

use super::schema::LISTING_SHARDS;
use crate::domain::{InvitationId, TenantId, UserId};

/// `TENANT#{tid}`: the tenant item, its lock and its jobs; before the listing indexes were
/// sharded, also their one partition of the tenant's users (see [`legacy_live_users_pk`]).
pub fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

/// The listing shard of a user: the low bits of its id's 80 random bits (from the CSPRNG, or
/// from SHA-256 for the ids an import derives), so a tenant's users spread evenly over
/// [`LISTING_SHARDS`] and a user never moves between shards.
pub fn listing_shard(u: &UserId) -> u32 {
    (u128::from(u.ulid()) % u128::from(LISTING_SHARDS)) as u32
}

/// `TENANT#{tid}#{nn}`: shard `n` of a tenant's live users in the `by_name` and `by_created`
/// indexes.
pub fn live_users_pk(t: &TenantId, shard: u32) -> String {
    format!("TENANT#{t}#{shard:02}")
}

/// `DELETED#{tid}#{nn}`: shard `n` of a tenant's tombstones in the `by_created` index, beside
/// the live users, so billing reads the deleted with the living and listings never see them.
pub fn deleted_users_pk(t: &TenantId, shard: u32) -> String {
    format!("DELETED#{t}#{shard:02}")
}

/// `TENANT#{tid}`: the one partition of a tenant's live users before the indexes were
/// sharded. Reads still merge it in until `rollcall migrate listing-shards` has moved its
/// users (a user written since is in its shard already).
pub fn legacy_live_users_pk(t: &TenantId) -> String {
    tenant_pk(t)
}

/// `DELETED#{tid}`: the one partition of a tenant's tombstones before sharding.
pub fn legacy_deleted_users_pk(t: &TenantId) -> String {
    format!("DELETED#{t}")
}

/// Every partition holding a tenant's live users in the listing indexes: the shards, then the
/// legacy partition.
pub fn live_users_partitions(t: &TenantId) -> Vec<String> {
    (0..LISTING_SHARDS)
        .map(|n| live_users_pk(t, n))
        .chain([legacy_live_users_pk(t)])
        .collect()
}

/// Every partition holding a tenant's tombstones: the shards, then the legacy partition.
pub fn deleted_users_partitions(t: &TenantId) -> Vec<String> {
    (0..LISTING_SHARDS)
        .map(|n| deleted_users_pk(t, n))
        .chain([legacy_deleted_users_pk(t)])
        .collect()
}

/// Sort key of the tenant item.
pub const TENANT_SK: &str = "TENANT";
/// Sort key of the tenant's import lock.
pub const IMPORT_LOCK_SK: &str = "LOCK#IMPORT";
/// Sort key of a user item.
pub const USER_SK: &str = "USER";
/// Sort key of uniqueness claims.
pub const CLAIM_SK: &str = "CLAIM";
/// Sort key of idempotency records.
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
/// Partition value of the sparse tenants index.
pub const TENANTS_PARTITION: &str = "TENANTS";

/// `USER#{tid}#{uid}`: one partition per user, so a tenant's writes spread out.
pub fn user_pk(t: &TenantId, u: &UserId) -> String {
    format!("USER#{t}#{u}")
}

/// `EMAIL#{tid}#{lower-cased email}`: the claim that makes an email unique in a tenant.
pub fn email_claim_pk(t: &TenantId, email_key: &str) -> String {
    format!("EMAIL#{t}#{email_key}")
}

/// `LOGIN#{tid}#{lower-cased login id}`: the claim that makes a login id unique in a tenant.
pub fn login_claim_pk(t: &TenantId, login_key: &str) -> String {
    format!("LOGIN#{t}#{login_key}")
}

/// `INVITE#{iid}`: an invitation (outbox item) under its user's partition.
pub fn invitation_sk(i: &InvitationId) -> String {
    format!("INVITE#{i}")
}

/// `TOKEN#{sha256(token)}`: an invitation link, found by the digest of its secret.
pub fn token_pk(digest: &str) -> String {
    format!("TOKEN#{digest}")
}

/// Sort key of token items.
pub const TOKEN_SK: &str = "TOKEN";

/// `OUTBOX#{n}`: the due-index partition of an invitation, spread by its id.
pub fn outbox_pk(i: &InvitationId) -> String {
    let n = u128::from(i.ulid()) % u128::from(super::schema::OUTBOX_SHARDS);
    format!("OUTBOX#{n:02}")
}

/// `OUTBOX#{n}` for shard `n`.
pub fn outbox_shard_pk(n: u32) -> String {
    format!("OUTBOX#{n:02}")
}

/// `JOURNAL#{tid}#{jid}`: an import job's journal, one entry per committed chunk (sort key
/// [`journal_sk`]), in a partition of its own so that entries written at once by chunks in
/// flight touch no common item.
pub fn import_journal_pk(t: &TenantId, job: &crate::domain::ImportId) -> String {
    format!("JOURNAL#{t}#{job}")
}

/// `ROWS#{n}` or `INVITES#{n}` (`n` zero-padded): the journal entry of chunk `n` of a job's
/// rows or of its invitations.
pub fn journal_sk(kind: &str, n: u32) -> String {
    format!("{kind}#{n:06}")
}

/// `IDEMPOTENCY#{tid}#{sha256(key)}`: the remembered outcome of a request carrying an
/// `Idempotency-Key`.
pub fn idempotency_pk(t: &TenantId, key_digest: &str) -> String {
    format!("IDEMPOTENCY#{t}#{key_digest}")
}

/// The by-name index sort key: the name's sort form, a separator that sorts below every
/// character a name may hold (names have no control characters), then the id to break ties.
pub fn by_name_sk(name_key: &str, u: &UserId) -> String {
    format!("{name_key}\u{1}{u}")
}

/// `SIGNING_KEYS`: the partition of the deployment's token signing keys, one item per key.
pub const SIGNING_KEYS_PK: &str = "SIGNING_KEYS";

/// `KEY#{kid}`: a signing key.
pub fn signing_key_sk(kid: &str) -> String {
    format!("KEY#{kid}")
}

/// `CLIENT#{cid}`: a relying party, in its tenant's partition (so a tenant's clients list with
/// one query).
pub fn client_sk(c: &crate::oidc::ClientId) -> String {
    format!("CLIENT#{c}")
}

/// Prefix of [`client_sk`].
pub const CLIENT_SK_PREFIX: &str = "CLIENT#";

/// `CODE#{sha256(code)}`: an authorization code.
pub fn code_pk(digest: &str) -> String {
    format!("CODE#{digest}")
}

/// `SESSION#{sha256(cookie)}`: a browser's sign-in session.
pub fn session_pk(digest: &str) -> String {
    format!("SESSION#{digest}")
}

/// `FAMILY#{tid}#{fid}`: a grant (one code redeemed) and the refresh tokens rotated from it.
pub fn family_pk(t: &TenantId, grant: &str) -> String {
    format!("FAMILY#{t}#{grant}")
}

/// `REFRESH#{sha256(token)}`: a refresh token.
pub fn refresh_pk(digest: &str) -> String {
    format!("REFRESH#{digest}")
}

/// `ADDR#{address}`: failed sign-ins from one source address (an IPv6 address by its /64),
/// one item per hour (sort key `THROTTLE#{yyyy-mm-ddThh}`).
pub fn address_pk(address: &str) -> String {
    format!("ADDR#{address}")
}
