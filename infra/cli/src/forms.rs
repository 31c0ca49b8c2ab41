//! Reading rollcall's hosted pages without a browser: the hidden fields of a form (its CSRF
//! token, the authorization request it carries), as `rollcall demo` and the tests post them.

/// Every hidden input of the page that carries the authorization request
/// ([`auth::authorize::CARRIED`]) or the CSRF token, with its value.
pub fn hidden_fields(html: &str) -> Vec<(&'static str, String)> {
    auth::authorize::CARRIED
        .iter()
        .chain(&["csrf"])
        .filter_map(|n| {
            let marker = format!("type=\"hidden\" name=\"{n}\" value=\"");
            html.contains(&marker)
                .then(|| hidden_value(html, n).map(|v| (*n, v)))
                .flatten()
        })
        .collect()
}

/// The value of the input `name="{field}"` in a page, as a browser would submit it (askama
/// writes `&` as `&#38;`; the values rollcall puts in forms hold no other escaped character).
pub fn hidden_value(html: &str, field: &str) -> Option<String> {
    let marker = format!("name=\"{field}\" value=\"");
    let at = html.find(&marker)? + marker.len();
    let len = html[at..].find('"')?;
    Some(
        html[at..at + len]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    )
}

/// The text of the page's first `<h1>`.
pub fn heading(html: &str) -> Option<&str> {
    let at = html.find("<h1>")? + 4;
    Some(&html[at..at + html[at..].find("</h1>")?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_read_in_order_and_unescaped() {
        let html = r#"<h1>Sign in</h1><input type="hidden" name="state" value="a&#38;b"><input type="hidden" name="csrf" value="t">"#;
        assert_eq!(
            hidden_fields(html),
            vec![("state", "a&b".to_owned()), ("csrf", "t".to_owned())]
        );
        assert_eq!(hidden_value(html, "nonce"), None);
        assert_eq!(heading(html), Some("Sign in"));
    }
}
