//! The provider's cookies: the sign-in session (one per tenant) and the CSRF token of the
//! sign-in form.
//!
//! On `https` both carry the `__Host-` prefix (RFC 6265bis §4.1.3.2: `Secure`, `Path=/`, no
//! `Domain`), so no other host, not even a sibling subdomain, can plant one. The form's token
//! must equal the cookie's (double submit); since a foreign page can neither read nor set a
//! `__Host-` cookie, it can't forge the pair. Locally, on plain `http://127.0.0.1`, the prefix
//! and `Secure` are left off: browsers refuse them without TLS.

use axum::http::{HeaderMap, HeaderValue, header};
use rollcall::domain::{SecretToken, TenantId};

/// A cookie's name for this deployment.
fn name(secure: bool, base: &str) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// The session cookie's name at `tenant`.
pub fn session_cookie(secure: bool, tenant: &TenantId) -> String {
    name(secure, &format!("rollcall_session_{tenant}"))
}

/// The cookie of a sign-in waiting for its second step at `tenant`.
pub fn pending_cookie(secure: bool, tenant: &TenantId) -> String {
    name(secure, &format!("rollcall_pending_{tenant}"))
}

/// The CSRF cookie's name.
pub fn csrf_cookie(secure: bool) -> String {
    name(secure, "rollcall_csrf")
}

/// The value of cookie `name` in the request, if it is there once.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    // Two cookies of one name: one was planted; trust neither.
                    return None;
                }
                found = Some(v.to_owned());
            }
        }
    }
    found
}

/// A secret token read from cookie `name`.
pub fn read_token(headers: &HeaderMap, name: &str) -> Option<SecretToken> {
    read(headers, name).and_then(|v| SecretToken::parse(&v).ok())
}

/// `Set-Cookie` for `name=value`: `HttpOnly`, `Path=/`, `SameSite` as given, `Secure` on
/// https, and `Max-Age` when given (a session cookie otherwise).
pub fn set(
    headers: &mut HeaderMap,
    secure: bool,
    name: &str,
    value: &str,
    same_site: &str,
    max_age: Option<u64>,
) {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// `Set-Cookie` that removes cookie `name`.
pub fn clear(headers: &mut HeaderMap, secure: bool, name: &str) {
    set(headers, secure, name, "", "Lax", Some(0));
}

/// The request's CSRF token (the cookie's, when it holds one), else a fresh one to set with
/// [`set_csrf`].
pub fn csrf_for(headers: &HeaderMap, secure: bool) -> Result<String, rollcall::domain::TokenError> {
    match read(headers, &csrf_cookie(secure)) {
        Some(c) if SecretToken::parse(&c).is_ok() => Ok(c),
        _ => SecretToken::mint().map(|t| t.expose().to_owned()),
    }
}

/// Sets the CSRF cookie to `csrf` on `resp`.
pub fn set_csrf(resp: &mut axum::response::Response, secure: bool, csrf: &str) {
    set(
        resp.headers_mut(),
        secure,
        &csrf_cookie(secure),
        csrf,
        "Strict",
        None,
    );
}

/// Whether the form's CSRF token is the cookie's (compared in constant time).
pub fn csrf_matches(cookie: Option<&str>, form: Option<&str>) -> bool {
    match (cookie, form) {
        (Some(c), Some(f)) if !c.is_empty() && c.len() == f.len() => {
            c.bytes()
                .zip(f.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_read_by_exact_name_and_a_doubled_one_is_distrusted() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; rollcall_csrf=xyz; rollcall_csrf_x=2"),
        );
        assert_eq!(read(&h, "rollcall_csrf").as_deref(), Some("xyz"));
        assert_eq!(read(&h, "missing"), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("rollcall_csrf=planted"),
        );
        assert_eq!(read(&h, "rollcall_csrf"), None);
    }

    #[test]
    fn csrf_needs_both_halves_equal() {
        assert!(csrf_matches(Some("abc"), Some("abc")));
        assert!(!csrf_matches(Some("abc"), Some("abd")));
        assert!(!csrf_matches(None, Some("abc")));
        assert!(!csrf_matches(Some(""), Some("")));
        assert!(!csrf_matches(Some("abc"), None));
    }

    #[test]
    fn https_cookies_carry_the_host_prefix_and_secure() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(session_cookie(true, &t), "__Host-rollcall_session_acme");
        assert_eq!(session_cookie(false, &t), "rollcall_session_acme");
        let mut h = HeaderMap::new();
        set(&mut h, true, "__Host-x", "v", "Strict", None);
        assert_eq!(
            h.get(header::SET_COOKIE).unwrap(),
            "__Host-x=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
