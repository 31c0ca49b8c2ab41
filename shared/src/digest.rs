//! SHA-256 in lower-case hex: how request bodies, idempotency keys and invitation tokens are
//! fingerprinted, so that only the digest of a secret is ever stored.

use sha2::{Digest, Sha256};

/// SHA-256 of `data`, 64 lower-case hex characters.
///
/// ```
/// assert_eq!(
///     rollcall::digest::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
