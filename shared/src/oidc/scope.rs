//! Scopes (RFC 6749 §3.3; OIDC Core §5.4). rollcall grants `openid`, `profile`, `email`,
//! `offline_access` (a refresh token, OIDC Core §11) and `rollcall` (an access token for
//! rollcall's own API; see [`crate::oidc::tokens`]). Other values are ignored, as OIDC Core §3.1.2.1
//! says, and the granted set is returned in the token response.

use std::fmt;

/// A granted set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    /// `openid`: this is an OpenID Connect request; an ID token is issued.
    pub openid: bool,
    /// `profile`: `name`, `preferred_username`, `locale`, `zoneinfo`.
    pub profile: bool,
    /// `email`: `email`, `email_verified`.
    pub email: bool,
    /// `offline_access`: a refresh token.
    pub offline_access: bool,
    /// `rollcall`: the access token's audience is rollcall's API.
    pub rollcall: bool,
}

impl Scopes {
    /// Reads a space-separated `scope` parameter, keeping the values rollcall knows.
    pub fn parse(s: &str) -> Scopes {
        let mut out = Scopes::default();
        for v in s.split(' ') {
            match v {
                "openid" => out.openid = true,
                "profile" => out.profile = true,
                "email" => out.email = true,
                "offline_access" => out.offline_access = true,
                "rollcall" => out.rollcall = true,
                _ => {}
            }
        }
        out
    }

    /// Every scope rollcall supports, for the discovery document.
    pub const SUPPORTED: [&'static str; 5] =
        ["openid", "profile", "email", "offline_access", "rollcall"];
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.openid, "openid"),
            (self.profile, "profile"),
            (self.email, "email"),
            (self.offline_access, "offline_access"),
            (self.rollcall, "rollcall"),
        ];
        let mut first = true;
        for (on, name) in names {
            if on {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scopes_are_kept_in_order_and_others_ignored() {
        let s = Scopes::parse("email openid unknown  offline_access");
        assert!(s.openid && s.email && s.offline_access && !s.profile && !s.rollcall);
        assert_eq!(s.to_string(), "openid email offline_access");
        assert_eq!(Scopes::parse("").to_string(), "");
    }
}
