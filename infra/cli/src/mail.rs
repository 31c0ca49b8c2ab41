//! Mail the local stack sent, read back from moto (`GET /moto-api/data.json`), with the links
//! found in each message: what `rollcall mail` prints and what the tests open.

use anyhow::Context;
use serde::Deserialize;

/// One message moto accepted for sending. moto keeps the HTML part only.
#[derive(Debug, Clone, Deserialize)]
pub struct SentMail {
    /// SES's message id.
    pub id: String,
    /// The From address.
    pub source: String,
    /// Recipients by kind (`ToAddresses`, …).
    pub destinations: std::collections::BTreeMap<String, Vec<String>>,
    /// The subject.
    pub subject: String,
    /// The HTML part.
    pub body: String,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    ses: Ses,
}

#[derive(Default, Deserialize)]
struct Ses {
    #[serde(rename = "Message", default)]
    message: Vec<SentMail>,
}

impl SentMail {
    /// Every recipient.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.destinations.values().flatten().map(String::as_str)
    }

    /// Whether `address` is a recipient (ignoring case).
    pub fn is_to(&self, address: &str) -> bool {
        self.recipients().any(|r| r.eq_ignore_ascii_case(address))
    }

    /// The `href` targets of the HTML part, unescaped, each once, in order.
    pub fn links(&self) -> Vec<String> {
        let mut links: Vec<String> = Vec::new();
        for part in self.body.split("href=\"").skip(1) {
            if let Some(end) = part.find('"') {
                let link = part[..end]
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">");
                if !links.contains(&link) {
                    links.push(link);
                }
            }
        }
        links
    }

    /// The code in a sign-in code mail: the first run of six digits in a `<strong>`.
    pub fn code(&self) -> Option<String> {
        self.body.split("<strong>").skip(1).find_map(|part| {
            let digits = &part[..part.find('<')?];
            (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.to_owned())
        })
    }
}

/// The JSON route of an invitation page's link: `{base}/t/{tenant}/invitations/{token}` is
/// answered as JSON at `{base}/invitations/{token}` (for teams that build their own pages).
pub fn invitation_api_url(page_link: &str) -> String {
    match (page_link.find("/t/"), page_link.rfind("/invitations/")) {
        (Some(t), Some(i)) if t < i => format!("{}{}", &page_link[..t], &page_link[i..]),
        _ => page_link.to_owned(),
    }
}

/// Every message moto at `endpoint` has accepted, oldest first.
pub async fn sent_mail(endpoint: &str) -> anyhow::Result<Vec<SentMail>> {
    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    let data: Data = reqwest::get(&url)
        .await
        .with_context(|| format!("asking moto at {endpoint} for sent mail"))?
        .error_for_status()?
        .json()
        .await
        .context("reading moto's data")?;
    Ok(data.ses.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_read_from_the_html_part_unescaped_and_once() {
        let m = SentMail {
            id: "1".into(),
            source: "no-reply@example.com".into(),
            destinations: [("ToAddresses".to_owned(), vec!["A@Example.com".to_owned()])].into(),
            subject: "s".into(),
            body: r#"<a href="https://x.example/i/abc?a=1&amp;b=2">x</a> <a href="https://x.example/i/abc?a=1&amp;b=2">y</a>"#.into(),
        };
        assert_eq!(m.links(), vec!["https://x.example/i/abc?a=1&b=2"]);
        assert_eq!(
            invitation_api_url("https://id.example/t/acme/invitations/abc"),
            "https://id.example/invitations/abc"
        );
        assert!(m.is_to("a@example.com"));
    }
}
