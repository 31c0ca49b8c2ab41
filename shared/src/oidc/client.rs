//! Relying parties ("clients", RFC 6749 §2) registered by a tenant's admins, with RFC 7591's
//! metadata names. A redirect URI is matched exactly (RFC 6749 §3.1.2.3, OAuth 2.0 Security BCP
//! RFC 9700 §4.1.3), except that a loopback URI's port may differ (RFC 8252 §7.3): a native app
//! listens on whatever port it got.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::domain::{DisplayName, Language, Localized, TenantId, TokenDigest};

/// The longest redirect URI accepted.
pub const MAX_URI_LEN: usize = 2000;
/// The most redirect URIs (and post-logout redirect URIs) one client may register.
pub const MAX_URIS: usize = 20;

/// Why client metadata or a request naming a client was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Not a client id.
    #[error("not a client id")]
    Id,
    /// A redirect URI is not an absolute `https` URI (or `http` on a loopback address), or has
    /// a fragment or user info.
    #[error("{0}")]
    RedirectUri(&'static str),
    /// An auth method rollcall does not support.
    #[error("token_endpoint_auth_method must be none or client_secret_basic")]
    AuthMethod,
    /// A grant type rollcall does not support.
    #[error("grant_types may hold authorization_code and refresh_token")]
    GrantType,
}

impl Localized for ClientError {
    fn code(&self) -> &'static str {
        match self {
            ClientError::Id => "client_id_invalid",
            ClientError::RedirectUri(_) => "redirect_uri_invalid",
            ClientError::AuthMethod => "token_endpoint_auth_method_invalid",
            ClientError::GrantType => "grant_type_invalid",
        }
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (ClientError::Id, Language::Ja) => "クライアントIDの形式が正しくありません。".into(),
            (ClientError::Id, Language::En) => "The client id is not valid.".into(),
            (ClientError::RedirectUri(why), Language::Ja) => format!(
                "リダイレクトURIは https の絶対URI(ループバックアドレスのみ http 可)で、フラグメントを含められません({why})。"
            ),
            (ClientError::RedirectUri(why), Language::En) => format!(
                "A redirect URI must be an absolute https URI (http only on a loopback address) without a fragment: {why}."
            ),
            (ClientError::AuthMethod, Language::Ja) => {
                "token_endpoint_auth_method は none か client_secret_basic です。".into()
            }
            (ClientError::AuthMethod, Language::En) => {
                "token_endpoint_auth_method must be none or client_secret_basic.".into()
            }
            (ClientError::GrantType, Language::Ja) => {
                "grant_types には authorization_code と refresh_token を指定できます。".into()
            }
            (ClientError::GrantType, Language::En) => {
                "grant_types may hold authorization_code and refresh_token.".into()
            }
        }
    }
}

/// A client's id: a ULID, chosen by rollcall at registration (RFC 7591 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(Ulid);

impl ClientId {
    /// A new id.
    pub fn generate() -> ClientId {
        ClientId(Ulid::new())
    }

    /// Parses an id as shown.
    pub fn parse(s: &str) -> Result<ClientId, ClientError> {
        Ulid::from_string(s)
            .map(ClientId)
            .map_err(|_| ClientError::Id)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for ClientId {
    type Error = ClientError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ClientId::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(c: ClientId) -> String {
        c.to_string()
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client (a browser or native app): no secret, PKCE only.
    None,
    /// A confidential client: HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
}

impl AuthMethod {
    /// Parses the RFC 7591 name.
    pub fn parse(s: &str) -> Result<AuthMethod, ClientError> {
        match s {
            "none" => Ok(AuthMethod::None),
            "client_secret_basic" => Ok(AuthMethod::ClientSecretBasic),
            _ => Err(ClientError::AuthMethod),
        }
    }

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// A grant a client may use (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// The authorization code grant (RFC 6749 §4.1).
    AuthorizationCode,
    /// Refreshing (RFC 6749 §6).
    RefreshToken,
}

impl GrantType {
    /// Parses the RFC 7591 name.
    pub fn parse(s: &str) -> Result<GrantType, ClientError> {
        match s {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "refresh_token" => Ok(GrantType::RefreshToken),
            _ => Err(ClientError::GrantType),
        }
    }

    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
        }
    }
}

/// A registered redirect (or post-logout redirect) URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Accepts an absolute `https` URI on a DNS name, or an `http` one on a loopback address
    /// (`127.0.0.1`, `[::1]`: RFC 8252 §7.3; `localhost` is refused as §8.3 advises), without
    /// a fragment (RFC 6749 §3.1.2) or user info, in the plain form the OpenAPI document's
    /// pattern states: a lower-case host whose last label starts with a letter, a port of
    /// 1–65535 without leading zeros, then a path and query of URI characters other than `%`
    /// and `#`.
    pub fn parse(s: &str) -> Result<RedirectUri, ClientError> {
        if s.len() > MAX_URI_LEN {
            return Err(ClientError::RedirectUri("longer than 2000 characters"));
        }
        let (secure, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else if s.contains("://") || s.starts_with("javascript:") || s.contains(':') {
            return Err(ClientError::RedirectUri("not https"));
        } else {
            return Err(ClientError::RedirectUri("not an absolute URI"));
        };
        if s.contains('#') {
            return Err(ClientError::RedirectUri("has a fragment"));
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(ClientError::RedirectUri("has user info"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (!h.starts_with('[') || h.ends_with(']')) => {
                (h, Some(p))
            }
            _ => (authority, None),
        };
        let loopback = host == "127.0.0.1" || host == "[::1]";
        match (secure, loopback) {
            (false, false) => {
                return Err(ClientError::RedirectUri(
                    "http on a host that is not loopback",
                ));
            }
            (true, _) if !is_dns_name(host) => {
                return Err(ClientError::RedirectUri("not a lower-case DNS name"));
            }
            _ => {}
        }
        if let Some(p) = port {
            let ok = !p.is_empty()
                && !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
            if !ok {
                return Err(ClientError::RedirectUri("not a port"));
            }
        }
        let uri_char = |c: char| c.is_ascii_alphanumeric() || "._~!$&'()*+,;=:@/-".contains(c);
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        if !path.chars().all(uri_char)
            || !query.unwrap_or("").chars().all(|c| uri_char(c) || c == '?')
        {
            return Err(ClientError::RedirectUri(
                "has a character outside the plain URI set",
            ));
        }
        if url::Url::parse(s).is_err() {
            return Err(ClientError::RedirectUri("not an absolute URI"));
        }
        // Kept as written: matching is by exact string (RFC 6749 §3.1.2.3).
        Ok(RedirectUri(s.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `requested` is this URI: the same string, or for a loopback URI the same but for
    /// the port (RFC 8252 §7.3).
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        let (Ok(mine), Ok(theirs)) = (url::Url::parse(&self.0), url::Url::parse(requested)) else {
            return false;
        };
        if !is_loopback(&mine) || mine.scheme() != "http" {
            return false;
        }
        let mut theirs_on_my_port = theirs.clone();
        if theirs_on_my_port.set_port(mine.port()).is_err() {
            return false;
        }
        // Compared as serialised by the same parser, and the request must itself be written in
        // that form, so no two spellings of one URI both match.
        theirs_on_my_port.as_str() == mine.as_str()
            && theirs.as_str() == requested
            && mine.as_str() == self.0
    }
}

/// Lower-case labels of letters, digits and inner hyphens, the last starting with a letter.
fn is_dns_name(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(|l| label_ok(l))
        && labels
            .last()
            .is_some_and(|l| l.bytes().next().is_some_and(|b| b.is_ascii_lowercase()))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        _ => false,
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = ClientError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RedirectUri::parse(&s)
    }
}

impl From<RedirectUri> for String {
    fn from(u: RedirectUri) -> String {
        u.0
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// The tenant that registered it: it signs in that tenant's users only.
    pub tenant: TenantId,
    /// Shown on the sign-in page.
    pub name: DisplayName,
    /// Where codes may be sent.
    pub redirect_uris: Vec<RedirectUri>,
    /// Where RP-initiated logout may return.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// How it authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// The grants it may use.
    pub grant_types: Vec<GrantType>,
    /// The SHA-256 of its secret, for `client_secret_basic`.
    pub secret_digest: Option<TokenDigest>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// The registered redirect URI that `requested` names, if any.
    pub fn redirect_uri(&self, requested: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|u| u.matches(requested))
    }

    /// The registered post-logout redirect URI that `requested` names, if any.
    pub fn post_logout_redirect_uri(&self, requested: &str) -> Option<&RedirectUri> {
        self.post_logout_redirect_uris
            .iter()
            .find(|u| u.matches(requested))
    }

    /// Whether it may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_redirects_are_accepted() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:53111/",
            "https://b?x=./)",
            "https://app.example.com:8443",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_redirects_are_refused_with_the_reason() {
        for (bad, why) in [
            ("/callback", "not an absolute URI"),
            ("https://app.example.com/cb#x", "has a fragment"),
            ("https://u:p@app.example.com/cb", "has user info"),
            (
                "http://app.example.com/cb",
                "http on a host that is not loopback",
            ),
            (
                "http://localhost:8080/cb",
                "http on a host that is not loopback",
            ),
            ("javascript:alert(1)", "not https"),
            ("ftp://example.com/", "not https"),
            ("https://APP.example.com/cb", "not a lower-case DNS name"),
            ("https://203.0.113.1/cb", "not a lower-case DNS name"),
            ("https://t.v.4:5440/", "not a lower-case DNS name"),
            ("https://app.example.com:0443/cb", "not a port"),
            ("https://app.example.com:70000/cb", "not a port"),
            (
                "https://app.example.com/c%20b",
                "has a character outside the plain URI set",
            ),
        ] {
            assert_eq!(
                RedirectUri::parse(bad),
                Err(ClientError::RedirectUri(why)),
                "{bad}"
            );
        }
    }

    #[test]
    fn matching_is_exact_except_a_loopback_port() {
        let web = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(web.matches("https://app.example.com/cb"));
        for other in [
            "https://app.example.com/cb/",
            "https://app.example.com/cb?x=1",
            "https://APP.example.com/cb",
            "https://app.example.com:443/cb",
            "https://app.example.com/CB",
            "https://evil.example.com/cb",
        ] {
            assert!(!web.matches(other), "{other}");
        }
        let native = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        assert!(native.matches("http://127.0.0.1:53111/cb"));
        assert!(native.matches("http://127.0.0.1/cb"));
        assert!(!native.matches("http://127.0.0.1:53111/other"));
        assert!(!native.matches("http://[::1]:53111/cb"));
        assert!(!native.matches("https://127.0.0.1:53111/cb"));
        assert!(!native.matches("http://127.0.0.1:53111/cb?x"));
    }
}
