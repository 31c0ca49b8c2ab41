//! Using rollcall's hosted pages without a browser: a [`Visitor`] that keeps cookies and does
//! not follow redirects, and the hidden fields of a form (its CSRF token, the authorization
//! request it carries), as `rollcall demo` and the tests post them.

use std::collections::HashMap;

use anyhow::Context;

/// The cookies a response sets, by name (an empty value: the cookie is cleared).
pub fn set_cookies(resp: &reqwest::Response) -> HashMap<String, String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A page as a visitor got it.
#[derive(Debug)]
pub struct Page {
    /// The status.
    pub status: u16,
    /// The body.
    pub html: String,
    /// `Location`, on a redirect.
    pub location: Option<String>,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
}

/// A browser without scripts: cookies kept by name, redirects not followed.
#[derive(Debug)]
pub struct Visitor {
    http: reqwest::Client,
    /// Cookies by name.
    pub cookies: HashMap<String, String>,
}

impl Visitor {
    /// A visitor with no cookies.
    pub fn new() -> anyhow::Result<Visitor> {
        Ok(Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building an HTTP client")?,
            cookies: HashMap::new(),
        })
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> anyhow::Result<Page> {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header(reqwest::header::COOKIE, cookie.join("; "))
            .send()
            .await?;
        for (k, v) in set_cookies(&resp) {
            if v.is_empty() {
                self.cookies.remove(&k);
            } else {
                self.cookies.insert(k, v);
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Page {
            status,
            html: resp.text().await?,
            location,
            headers,
        })
    }

    /// Opens `url`.
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Page> {
        let req = self.http.get(url);
        self.send(req).await
    }

    /// Posts `fields` and the CSRF token of `page`'s form to `url`.
    pub async fn post(
        &mut self,
        url: &str,
        page: &Page,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<Page> {
        let csrf = hidden_value(&page.html, "csrf").context("the page has no form")?;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &csrf));
        let req = self.http.post(url).form(&form);
        self.send(req).await
    }
}

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
