//! The password policy of the product: 8–255 characters; at least one upper-case letter,
//! lower-case letter, digit and symbol; only half-width letters, digits and the listed symbols;
//! not the login id. A tenant may relax it. Every unmet rule is reported at once.

use std::sync::Mutex;

use argon2::password_hash::{Output, PasswordHash as PhcString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Language, Localized, LoginId};

/// The symbols a password may contain.
pub const SYMBOLS: &str = "!\"#$%&'()-^\\@[;:],./=~|`{+*}<>?_";

/// A tenant's password rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    /// Fewest characters (at least 8 unless relaxed; never under 1).
    pub min_length: usize,
    /// Most characters.
    pub max_length: usize,
    /// Needs an upper-case letter A–Z.
    pub require_upper: bool,
    /// Needs a lower-case letter a–z.
    pub require_lower: bool,
    /// Needs a digit 0–9.
    pub require_digit: bool,
    /// Needs one of [`SYMBOLS`].
    pub require_symbol: bool,
    /// May not equal the login id (ignoring case).
    pub forbid_login_id: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 255,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            require_symbol: true,
            forbid_login_id: true,
        }
    }
}

/// One rule a password did not meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum PasswordRule {
    /// Shorter than the minimum.
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// Longer than the maximum.
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// No upper-case letter.
    NeedsUpper,
    /// No lower-case letter.
    NeedsLower,
    /// No digit.
    NeedsDigit,
    /// No symbol.
    NeedsSymbol,
    /// A character that is not a half-width letter, digit or listed symbol.
    DisallowedCharacter,
    /// The same as the login id.
    SameAsLoginId,
}

impl Localized for PasswordRule {
    fn code(&self) -> &'static str {
        match self {
            PasswordRule::TooShort { .. } => "password_too_short",
            PasswordRule::TooLong { .. } => "password_too_long",
            PasswordRule::NeedsUpper => "password_needs_upper",
            PasswordRule::NeedsLower => "password_needs_lower",
            PasswordRule::NeedsDigit => "password_needs_digit",
            PasswordRule::NeedsSymbol => "password_needs_symbol",
            PasswordRule::DisallowedCharacter => "password_disallowed_character",
            PasswordRule::SameAsLoginId => "password_same_as_login_id",
        }
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (PasswordRule::TooShort { min }, Language::Ja) => {
                format!("パスワードは{min}文字以上にしてください。")
            }
            (PasswordRule::TooShort { min }, Language::En) => {
                format!("The password must be at least {min} characters.")
            }
            (PasswordRule::TooLong { max }, Language::Ja) => {
                format!("パスワードは{max}文字以内にしてください。")
            }
            (PasswordRule::TooLong { max }, Language::En) => {
                format!("The password must be at most {max} characters.")
            }
            (PasswordRule::NeedsUpper, Language::Ja) => {
                "英大文字を1文字以上含めてください。".into()
            }
            (PasswordRule::NeedsUpper, Language::En) => {
                "The password needs an upper-case letter (A-Z).".into()
            }
            (PasswordRule::NeedsLower, Language::Ja) => {
                "英小文字を1文字以上含めてください。".into()
            }
            (PasswordRule::NeedsLower, Language::En) => {
                "The password needs a lower-case letter (a-z).".into()
            }
            (PasswordRule::NeedsDigit, Language::Ja) => "数字を1文字以上含めてください。".into(),
            (PasswordRule::NeedsDigit, Language::En) => "The password needs a digit (0-9).".into(),
            (PasswordRule::NeedsSymbol, Language::Ja) => {
                format!("記号（{SYMBOLS}）を1文字以上含めてください。")
            }
            (PasswordRule::NeedsSymbol, Language::En) => {
                format!("The password needs a symbol ({SYMBOLS}).")
            }
            (PasswordRule::DisallowedCharacter, Language::Ja) => {
                "パスワードに使えるのは半角英数字と記号のみです。".into()
            }
            (PasswordRule::DisallowedCharacter, Language::En) => {
                "The password may contain only half-width letters, digits and the listed symbols."
                    .into()
            }
            (PasswordRule::SameAsLoginId, Language::Ja) => {
                "ログインIDと同じパスワードは使えません。".into()
            }
            (PasswordRule::SameAsLoginId, Language::En) => {
                "The password can't be the same as the login id.".into()
            }
        }
    }
}

/// A password that met its tenant's policy. Never logged, never serialised.
#[derive(Debug)]
pub struct Password(SecretString);

impl Password {
    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Argon2id memory cost in KiB: 19 MiB, the OWASP recommendation.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id iterations.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

/// Length of the stored hash output, in bytes.
const HASH_BYTES: usize = 32;

fn argon2(m: u32, t: u32, p: u32) -> Result<Argon2<'static>, HashError> {
    let params = Params::new(m, t, p, Some(HASH_BYTES)).map_err(|e| HashError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The one working memory of argon2 in this process, reused by every hash. Allocating 19 MiB
/// per hash and freeing it lets glibc's heap grow by that much per hash until it plateaus near
/// 160 MiB (measured; see BENCHMARKS.md), which a 256 MB Lambda can't afford. Hashes take turns.
static WORKING_MEMORY: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// Runs argon2id into `out` with the shared working memory.
fn argon2_into(
    password: &[u8],
    salt: &[u8],
    (m, t, p): (u32, u32, u32),
    out: &mut [u8],
) -> Result<(), HashError> {
    let hasher = argon2(m, t, p)?;
    let mut memory = WORKING_MEMORY
        .lock()
        .map_err(|_| HashError("argon2 working memory poisoned".into()))?;
    let blocks = usize::try_from(m).map_err(|e| HashError(e.to_string()))?;
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    hasher
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .map_err(|e| HashError(e.to_string()))
}

/// An argon2id hash of a password in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$…`).
/// The only form in which a password is ever stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Hashing failed: the system's random source or argon2 refused.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHash {
    /// Hashes `password` with argon2id (m = 19 MiB, t = 2, p = 1) and a fresh 128-bit salt.
    /// Takes tens of milliseconds of CPU on purpose: call it off the async executor.
    pub fn of(password: &Password) -> Result<PasswordHash, HashError> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| HashError("no randomness".into()))?;
        let mut out = [0u8; HASH_BYTES];
        argon2_into(
            password.expose().as_bytes(),
            &salt,
            (ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES),
            &mut out,
        )?;
        Ok(PasswordHash(format!(
            "$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}${}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out),
        )))
    }

    /// Whether `candidate` is the password this hash was made from (compared in constant time).
    pub fn verify(&self, candidate: &str) -> bool {
        let Ok(phc) = PhcString::new(&self.0) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return false;
        };
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let param = |name: &str| phc.params.get_decimal(name);
        let (Some(m), Some(t), Some(p)) = (param("m"), param("t"), param("p")) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        if argon2_into(candidate.as_bytes(), salt, (m, t, p), &mut out).is_err() {
            return false;
        }
        Output::new(&out).is_ok_and(|o| o == expected)
    }

    /// A hash read from its PHC string; `None` unless it is an argon2id PHC string with a salt
    /// and a hash.
    pub fn from_phc(s: &str) -> Option<PasswordHash> {
        let phc = PhcString::new(s).ok()?;
        (phc.algorithm.as_str() == "argon2id" && phc.salt.is_some() && phc.hash.is_some())
            .then(|| PasswordHash(s.to_owned()))
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PasswordPolicy {
    /// Checks `candidate` against every rule, returning all the rules it breaks.
    ///
    /// ```
    /// use rollcall::domain::{LoginId, PasswordPolicy, PasswordRule};
    /// let login = LoginId::parse("taro").unwrap();
    /// let broken = PasswordPolicy::default().check("abc", &login).unwrap_err();
    /// assert!(broken.contains(&PasswordRule::NeedsUpper));
    /// assert!(PasswordPolicy::default().check("Tr0ub4dor&3", &login).is_ok());
    /// ```
    pub fn check(
        &self,
        candidate: &str,
        login_id: &LoginId,
    ) -> Result<Password, Vec<PasswordRule>> {
        let mut broken = Vec::new();
        let len = candidate.chars().count();
        if len < self.min_length.max(1) {
            broken.push(PasswordRule::TooShort {
                min: self.min_length.max(1),
            });
        }
        if len > self.max_length {
            broken.push(PasswordRule::TooLong {
                max: self.max_length,
            });
        }
        if self.require_upper && !candidate.chars().any(|c| c.is_ascii_uppercase()) {
            broken.push(PasswordRule::NeedsUpper);
        }
        if self.require_lower && !candidate.chars().any(|c| c.is_ascii_lowercase()) {
            broken.push(PasswordRule::NeedsLower);
        }
        if self.require_digit && !candidate.chars().any(|c| c.is_ascii_digit()) {
            broken.push(PasswordRule::NeedsDigit);
        }
        if self.require_symbol && !candidate.chars().any(|c| SYMBOLS.contains(c)) {
            broken.push(PasswordRule::NeedsSymbol);
        }
        if !candidate
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SYMBOLS.contains(c))
        {
            broken.push(PasswordRule::DisallowedCharacter);
        }
        if self.forbid_login_id && candidate.eq_ignore_ascii_case(login_id.as_str()) {
            broken.push(PasswordRule::SameAsLoginId);
        }
        if broken.is_empty() {
            Ok(Password(SecretString::from(candidate.to_owned())))
        } else {
            Err(broken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn login() -> LoginId {
        LoginId::parse("Taro.Y-01").unwrap()
    }

    fn broken(policy: &PasswordPolicy, pw: &str) -> Vec<PasswordRule> {
        policy.check(pw, &login()).err().unwrap_or_default()
    }

    #[test]
    fn each_rule_of_the_default_policy_is_enforced_on_its_own() {
        let p = PasswordPolicy::default();
        let cases: &[(&str, &[PasswordRule])] = &[
            ("Aa1!aaaa", &[]),
            ("Aa1!aaa", &[PasswordRule::TooShort { min: 8 }]),
            ("aa1!aaaa", &[PasswordRule::NeedsUpper]),
            ("AA1!AAAA", &[PasswordRule::NeedsLower]),
            ("Aab!aaaa", &[PasswordRule::NeedsDigit]),
            ("Aa1aaaaa", &[PasswordRule::NeedsSymbol]),
            ("Aa1!aaaa あ", &[PasswordRule::DisallowedCharacter]),
            ("Aa1!aaa a", &[PasswordRule::DisallowedCharacter]),
        ];
        for (pw, expected) in cases {
            assert_eq!(broken(&p, pw), *expected, "{pw:?}");
        }
    }

    #[test]
    fn the_login_id_rule_ignores_case_and_can_be_relaxed() {
        let login = LoginId::parse("Aa1.aaaa").unwrap();
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("aA1.AAAA", &login).unwrap_err(),
            vec![PasswordRule::SameAsLoginId]
        );
        let relaxed = PasswordPolicy {
            forbid_login_id: false,
            ..PasswordPolicy::default()
        };
        assert!(relaxed.check("Aa1.aaaa", &login).is_ok());
    }

    #[test]
    fn the_length_limits_are_inclusive() {
        let p = PasswordPolicy::default();
        let at_max = format!("Aa1!{}", "a".repeat(251));
        assert!(p.check(&at_max, &login()).is_ok());
        let over = format!("{at_max}a");
        assert_eq!(broken(&p, &over), vec![PasswordRule::TooLong { max: 255 }]);
    }

    #[test]
    fn every_listed_symbol_counts_as_a_symbol() {
        let p = PasswordPolicy::default();
        for s in SYMBOLS.chars() {
            let pw = format!("Aa1aaaa{s}");
            assert!(p.check(&pw, &login()).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn every_unmet_rule_is_listed_at_once() {
        let all = broken(&PasswordPolicy::default(), "あ");
        assert_eq!(
            all,
            vec![
                PasswordRule::TooShort { min: 8 },
                PasswordRule::NeedsUpper,
                PasswordRule::NeedsLower,
                PasswordRule::NeedsDigit,
                PasswordRule::NeedsSymbol,
                PasswordRule::DisallowedCharacter,
            ]
        );
    }

    #[test]
    fn a_tenant_may_relax_the_character_classes() {
        let relaxed = PasswordPolicy {
            min_length: 12,
            require_upper: false,
            require_symbol: false,
            ..PasswordPolicy::default()
        };
        assert!(relaxed.check("correcthorse1", &login()).is_ok());
        assert_eq!(
            broken(&relaxed, "short1"),
            vec![PasswordRule::TooShort { min: 12 }]
        );
    }

    #[test]
    fn the_password_is_not_printed_by_debug() {
        let pw = PasswordPolicy::default()
            .check("Aa1!secret", &login())
            .unwrap();
        assert!(!format!("{pw:?}").contains("secret"));
        assert_eq!(pw.expose(), "Aa1!secret");
    }

    #[test]
    fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies_only_its_password() {
        let pw = PasswordPolicy::default()
            .check("Aa1!secret", &login())
            .unwrap();
        let hash = PasswordHash::of(&pw).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hash.verify("Aa1!secret"));
        assert!(!hash.verify("Aa1!secreT"));
        assert!(!format!("{hash:?}").contains("argon2"));
        let again = PasswordHash::of(&pw).unwrap();
        assert_ne!(hash, again, "every hash has its own salt");
        // The stored form is standard PHC: another argon2 implementation verifies it.
        let phc = argon2::password_hash::PasswordHash::new(hash.as_str()).unwrap();
        use argon2::PasswordVerifier;
        assert!(
            Argon2::default()
                .verify_password(b"Aa1!secret", &phc)
                .is_ok()
        );
    }

    proptest! {
        #[test]
        fn an_accepted_password_meets_every_rule(pw in "[ -~]{0,20}") {
            if let Ok(ok) = PasswordPolicy::default().check(&pw, &login()) {
                let s = ok.expose();
                prop_assert!(s.len() >= 8);
                prop_assert!(s.chars().any(|c| c.is_ascii_uppercase()));
                prop_assert!(s.chars().any(|c| c.is_ascii_lowercase()));
                prop_assert!(s.chars().any(|c| c.is_ascii_digit()));
                prop_assert!(s.chars().any(|c| SYMBOLS.contains(c)));
                prop_assert!(!s.contains(' '));
            }
        }
    }
}
