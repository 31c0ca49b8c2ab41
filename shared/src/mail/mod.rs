//! The mail rollcall sends: an invitation with a set-password link, in Japanese or English,
//! as a subject, an HTML part and a text part.
//!
//! The wording lives in files under `src/mail/templates/` (`invitation.{ja,en}.{subject.txt,
//! html,txt}`) with `{{placeholders}}`, so it can be reviewed as text; snapshot tests pin what
//! comes out. Every value is escaped for where it lands: HTML-escaped in the HTML part, and
//! with control characters (CR, LF, tabs, line and paragraph separators) turned into spaces in
//! the subject and text part, so no value can start a header or forge a line. The mail never
//! carries a password.

use chrono::{DateTime, Utc};

use crate::domain::{Language, TimeZone};

/// The values an invitation mail is made of. All of them are plain text; escaping happens here.
#[derive(Debug, Clone)]
pub struct InvitationMail<'a> {
    /// The recipient's language.
    pub language: Language,
    /// The organisation's name.
    pub tenant_name: &'a str,
    /// Who invited the user, when known.
    pub inviter_name: Option<&'a str>,
    /// The recipient's display name.
    pub user_name: &'a str,
    /// The recipient's login id.
    pub login_id: &'a str,
    /// The set-password link.
    pub link: &'a str,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// The recipient's time zone, for showing `expires_at`.
    pub time_zone: TimeZone,
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line, no control characters.
    pub subject: String,
    /// The HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
}

struct Templates {
    subject: &'static str,
    html: &'static str,
    text: &'static str,
}

fn templates(lang: Language) -> Templates {
    match lang {
        Language::Ja => Templates {
            subject: include_str!("templates/invitation.ja.subject.txt"),
            html: include_str!("templates/invitation.ja.html"),
            text: include_str!("templates/invitation.ja.txt"),
        },
        Language::En => Templates {
            subject: include_str!("templates/invitation.en.subject.txt"),
            html: include_str!("templates/invitation.en.html"),
            text: include_str!("templates/invitation.en.txt"),
        },
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 6] = [
    "tenant_name",
    "inviter_name",
    "user_name",
    "login_id",
    "link",
    "expires_at",
];

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_line_breaking(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn is_line_breaking(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Makes a value safe for one line of text: every control character becomes a space.
pub fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| if is_line_breaking(c) { ' ' } else { c })
        .collect()
}

/// Replaces each `{{name}}` with `value(name)`; an unknown name is left as it is (a test checks
/// that templates use only [`PLACEHOLDERS`]).
fn fill(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                match value(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str("{{");
                        out.push_str(name);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl InvitationMail<'_> {
    fn expiry_text(&self) -> String {
        let local = self.expires_at.with_timezone(&self.time_zone.tz());
        match self.language {
            Language::Ja => local.format("%Y年%-m月%-d日 %H:%M (%Z)").to_string(),
            Language::En => local.format("%-d %B %Y, %H:%M (%Z)").to_string(),
        }
    }

    fn inviter_text(&self) -> String {
        match (self.inviter_name, self.language) {
            (Some(name), Language::Ja) => format!("{name} さん"),
            (Some(name), Language::En) => name.to_owned(),
            (None, Language::Ja) => "管理者".into(),
            (None, Language::En) => "Your administrator".into(),
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        Some(match name {
            "tenant_name" => self.tenant_name.to_owned(),
            "inviter_name" => self.inviter_text(),
            "user_name" => self.user_name.to_owned(),
            "login_id" => self.login_id.to_owned(),
            "link" => self.link.to_owned(),
            "expires_at" => self.expiry_text(),
            _ => return None,
        })
    }

    /// The subject, HTML and text of the mail in the recipient's language.
    pub fn render(&self) -> RenderedMail {
        let t = templates(self.language);
        let subject = fill(t.subject.trim_end(), |n| {
            self.raw(n).map(|v| single_line(&v))
        });
        RenderedMail {
            subject: single_line(&subject).trim().to_owned(),
            html: fill(t.html, |n| self.raw(n).map(|v| escape_html(&v))),
            text: fill(t.text, |n| self.raw(n).map(|v| single_line(&v))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn mail(language: Language) -> InvitationMail<'static> {
        InvitationMail {
            language,
            tenant_name: "株式会社サンプル",
            inviter_name: Some("山田 花子"),
            user_name: "佐藤 太郎",
            login_id: "sato.taro",
            link: "https://app.example.com/invitations/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd",
            expires_at: Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap(),
            time_zone: TimeZone::TOKYO,
        }
    }

    #[test]
    fn the_japanese_mail_matches_its_snapshot() {
        let m = mail(Language::Ja).render();
        insta::assert_snapshot!("invitation_ja_subject", m.subject);
        insta::assert_snapshot!("invitation_ja_html", m.html);
        insta::assert_snapshot!("invitation_ja_text", m.text);
    }

    #[test]
    fn the_english_mail_matches_its_snapshot() {
        let m = InvitationMail {
            time_zone: TimeZone::parse("America/New_York").unwrap(),
            ..mail(Language::En)
        }
        .render();
        insta::assert_snapshot!("invitation_en_subject", m.subject);
        insta::assert_snapshot!("invitation_en_html", m.html);
        insta::assert_snapshot!("invitation_en_text", m.text);
    }

    #[test]
    fn templates_use_only_known_placeholders_and_all_of_them_are_filled() {
        for lang in [Language::Ja, Language::En] {
            let m = mail(lang).render();
            for part in [&m.subject, &m.html, &m.text] {
                assert!(!part.contains("{{"), "{lang:?}: {part}");
            }
            assert!(m.html.contains("sato.taro") && m.text.contains("sato.taro"));
            assert!(m.html.contains(mail(lang).link) && m.text.contains(mail(lang).link));
        }
    }

    #[test]
    fn the_expiry_is_shown_in_the_recipients_time_zone() {
        // 01:00 UTC is 10:00 in Tokyo and 20:00 the day before in New York (EST).
        let ja = mail(Language::Ja).render();
        assert!(
            ja.text.contains("2026年11月24日 10:00 (JST)"),
            "{}",
            ja.text
        );
        let en = InvitationMail {
            time_zone: TimeZone::parse("America/New_York").unwrap(),
            ..mail(Language::En)
        }
        .render();
        assert!(
            en.text.contains("23 November 2026, 20:00 (EST)"),
            "{}",
            en.text
        );
    }

    #[test]
    fn markup_in_a_value_is_escaped_in_the_html_part() {
        let m = InvitationMail {
            user_name: "<script>alert('x')</script>",
            tenant_name: "A&B \"Co\"",
            ..mail(Language::En)
        }
        .render();
        assert!(!m.html.contains("<script>"));
        assert!(
            m.html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
        );
        assert!(m.html.contains("A&amp;B &quot;Co&quot;"));
        // The text part is not HTML: the name shows as typed.
        assert!(m.text.contains("<script>alert('x')</script>"));
    }

    #[test]
    fn line_breaks_in_a_value_never_reach_the_subject_or_add_lines() {
        let evil = "Evil\r\nBcc: victim@example.com\u{2028}X";
        let m = InvitationMail {
            tenant_name: evil,
            user_name: evil,
            ..mail(Language::En)
        }
        .render();
        assert!(!m.subject.contains('\r') && !m.subject.contains('\n'));
        assert!(m.subject.contains("Evil  Bcc: victim@example.com X"));
        assert!(!m.text.lines().any(|l| l.starts_with("Bcc:")));
        assert!(!m.html.lines().any(|l| l.starts_with("Bcc:")));
    }

    #[test]
    fn without_an_inviter_the_mail_names_the_administrator() {
        let m = InvitationMail {
            inviter_name: None,
            ..mail(Language::Ja)
        }
        .render();
        assert!(m.text.contains("管理者から"), "{}", m.text);
    }
}
