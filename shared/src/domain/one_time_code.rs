//! The emailed code of the second sign-in step (ASVS 5.0 §6.6): six decimal digits from the
//! operating system's CSPRNG, drawn without bias.
//!
//! Only a digest is stored, salted with the id of the mail it went out in, so equal codes of
//! two people never share a digest. Six digits can't resist a search of a stolen digest the
//! way a 256-bit token does; what protects a code is its life (10 minutes), its single use and
//! its five tries, all enforced by the store, and that it is only ever the *second* step.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::{InvitationId, TokenDigest, TokenError};

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// A code as mailed or as typed. Never logged.
pub struct OneTimeCode(SecretString);

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(..)")
    }
}

impl OneTimeCode {
    /// A fresh code, uniform over 000000–999999 (rejection sampling: 2^32 is not a multiple
    /// of 10^6, so values past the last whole multiple are drawn again).
    pub fn mint() -> Result<OneTimeCode, TokenError> {
        const RANGE: u32 = 1_000_000;
        let limit = u32::MAX - u32::MAX % RANGE;
        loop {
            let mut bytes = [0u8; 4];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::NoRandomness)?;
            let n = u32::from_le_bytes(bytes);
            if n < limit {
                return Ok(OneTimeCode(SecretString::from(format!("{:06}", n % RANGE))));
            }
        }
    }

    /// Reads what a person typed: six digits, ASCII or full-width (as a Japanese input method
    /// gives them), with spaces and hyphens between them ignored.
    pub fn parse(typed: &str) -> Result<OneTimeCode, TokenError> {
        let mut digits = String::with_capacity(CODE_DIGITS);
        for c in typed.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '０'..='９' => {
                    let d = u32::from(c) - u32::from('０');
                    digits.push(char::from_digit(d, 10).ok_or(TokenError::Malformed)?);
                }
                ' ' | '\u{3000}' | '-' | 'ー' | '－' => {}
                _ => return Err(TokenError::Malformed),
            }
        }
        if digits.len() == CODE_DIGITS {
            Ok(OneTimeCode(SecretString::from(digits)))
        } else {
            Err(TokenError::Malformed)
        }
    }

    /// The digits, for the mail.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The digest stored for this code mailed in `mail`.
    pub fn digest(&self, mail: &InvitationId) -> TokenDigest {
        TokenDigest::of_text(&format!("code:{mail}:{}", self.expose()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_codes_are_six_digits_and_spread_over_every_position() {
        let codes: Vec<String> = (0..2000)
            .map(|_| OneTimeCode::mint().unwrap().expose().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        for pos in 0..6 {
            let mut seen = [0u32; 10];
            for c in &codes {
                seen[usize::from(c.as_bytes()[pos] - b'0')] += 1;
            }
            // 2,000 draws: each digit about 200 times at each position; a stuck or skewed
            // position would leave some digit far off.
            assert!(
                seen.iter().all(|n| (100..=300).contains(n)),
                "{pos}: {seen:?}"
            );
        }
    }

    #[test]
    fn typed_codes_may_be_full_width_or_spaced_but_are_six_digits() {
        let id = InvitationId::generate();
        let want = OneTimeCode::parse("123456").unwrap().digest(&id);
        for typed in [
            "123456",
            "１２３４５６",
            "123 456",
            "123-456",
            "１２３　４５６",
        ] {
            assert_eq!(
                OneTimeCode::parse(typed).unwrap().digest(&id),
                want,
                "{typed}"
            );
        }
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(OneTimeCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_same_code_in_two_mails_has_two_digests() {
        let code = OneTimeCode::parse("000000").unwrap();
        assert_ne!(
            code.digest(&InvitationId::generate()),
            code.digest(&InvitationId::generate())
        );
        assert!(!format!("{code:?}").contains("000000"));
    }
}
