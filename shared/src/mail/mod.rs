//! The account mails rollcall sends (an invitation, a password-reset link, the code of the
//! second sign-in step), in Japanese or English, as a subject, an HTML part and a text part.
//!
//! All three share one layout per language and format (`src/mail/templates/layout.{ja,en}.
//! {html,txt}`, with `{{placeholders}}`), so they look alike and are reviewed as text; what
//! differs per mail is a handful of phrases ([`Phrases`]). Snapshot tests pin what comes out.
//! Every value is escaped for where it lands: HTML-escaped in the HTML part, and with control
//! characters (CR, LF, tabs, line and paragraph separators) turned into spaces in the subject
//! and text part, so no value can start a header or forge a line. The mail never carries a
//! password.

use chrono::{DateTime, Utc};

use crate::domain::{Language, MailKind, TimeZone};

/// What the mail asks the reader to do.
#[derive(Debug, Clone, Copy)]
pub enum MailAction<'a> {
    /// Open a link: an invitation (with who invited, when known) or a reset.
    Link {
        /// The link.
        link: &'a str,
        /// Who invited the user (invitations only).
        inviter_name: Option<&'a str>,
    },
    /// Type a code.
    Code(&'a str),
}

/// The values an account mail is made of. All of them are plain text; escaping happens here.
#[derive(Debug, Clone)]
pub struct AccountMail<'a> {
    /// Which mail.
    pub kind: MailKind,
    /// The recipient's language.
    pub language: Language,
    /// The organisation's name.
    pub tenant_name: &'a str,
    /// The recipient's display name.
    pub user_name: &'a str,
    /// The recipient's login id.
    pub login_id: &'a str,
    /// The link or the code.
    pub action: MailAction<'a>,
    /// When the link or code stops working.
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

/// What differs between the mails: trusted text with `{{tenant_name}}` and `{{inviter_name}}`
/// placeholders, which are filled with escaped values.
#[derive(Debug)]
pub struct Phrases {
    /// The subject.
    pub subject: &'static str,
    /// The first paragraph.
    pub intro: &'static str,
    /// The button (links) or the label of the code.
    pub action: &'static str,
    /// What to do when it no longer works.
    pub footer: &'static str,
}

/// The phrases of `kind` in `lang`.
pub fn phrases(kind: MailKind, lang: Language) -> &'static Phrases {
    match (kind, lang) {
        (MailKind::Invitation, Language::Ja) => &Phrases {
            subject: "【{{tenant_name}}】アカウントへの招待",
            intro: "{{inviter_name}}から {{tenant_name}} のアカウントに招待されました。次のリンクを開いて、パスワードを設定してください。",
            action: "パスワードを設定する",
            footer: "有効期限を過ぎた場合は、管理者に招待の再送を依頼してください。",
        },
        (MailKind::Invitation, Language::En) => &Phrases {
            subject: "You're invited to {{tenant_name}}",
            intro: "{{inviter_name}} invited you to the {{tenant_name}} account. Open the link below to set your password.",
            action: "Set your password",
            footer: "If the link has expired, ask your administrator to send the invitation again.",
        },
        (MailKind::Reset, Language::Ja) => &Phrases {
            subject: "【{{tenant_name}}】パスワードの再設定",
            intro: "{{tenant_name}} のアカウントのパスワード再設定を受け付けました。次のリンクを開いて、新しいパスワードを設定してください。リンクは一度だけ使えます。",
            action: "新しいパスワードを設定する",
            footer: "有効期限を過ぎた場合は、サインイン画面の「パスワードを忘れた場合」からもう一度お手続きください。",
        },
        (MailKind::Reset, Language::En) => &Phrases {
            subject: "Reset your {{tenant_name}} password",
            intro: "Someone asked to reset the password of your {{tenant_name}} account. Open the link below to choose a new password. The link works once.",
            action: "Choose a new password",
            footer: "If the link has expired, use \"Forgot your password?\" on the sign-in page again. If you did not ask for this, your password stays as it is.",
        },
        (MailKind::Code, Language::Ja) => &Phrases {
            subject: "【{{tenant_name}}】確認コード",
            intro: "{{tenant_name}} へのサインインを続けるには、次の確認コードを入力してください。",
            action: "確認コード",
            footer: "このコードは一度だけ使えます。ご自身でサインインしていない場合は、パスワードが他人に知られている可能性があります。パスワードを変更してください。",
        },
        (MailKind::Code, Language::En) => &Phrases {
            subject: "Your {{tenant_name}} sign-in code",
            intro: "To finish signing in to {{tenant_name}}, enter this code.",
            action: "Code",
            footer: "The code works once. If you are not signing in, someone may know your password: change it.",
        },
    }
}

struct Layout {
    html: &'static str,
    text: &'static str,
}

fn layout(lang: Language) -> Layout {
    match lang {
        Language::Ja => Layout {
            html: include_str!("templates/layout.ja.html"),
            text: include_str!("templates/layout.ja.txt"),
        },
        Language::En => Layout {
            html: include_str!("templates/layout.en.html"),
            text: include_str!("templates/layout.en.txt"),
        },
    }
}

/// The placeholders the layouts may use.
pub const PLACEHOLDERS: [&str; 10] = [
    "subject",
    "intro",
    "footer",
    "tenant_name",
    "user_name",
    "login_id",
    "expires_at",
    "action_html",
    "action_label",
    "action_value",
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

impl AccountMail<'_> {
    fn expiry_text(&self) -> String {
        let local = self.expires_at.with_timezone(&self.time_zone.tz());
        match self.language {
            Language::Ja => local.format("%Y年%-m月%-d日 %H:%M (%Z)").to_string(),
            Language::En => local.format("%-d %B %Y, %H:%M (%Z)").to_string(),
        }
    }

    fn inviter_text(&self) -> String {
        let inviter = match self.action {
            MailAction::Link { inviter_name, .. } => inviter_name,
            MailAction::Code(_) => None,
        };
        match (inviter, self.language) {
            (Some(name), Language::Ja) => format!("{name} さん"),
            (Some(name), Language::En) => name.to_owned(),
            (None, Language::Ja) => "管理者".into(),
            (None, Language::En) => "Your administrator".into(),
        }
    }

    /// A phrase with its values filled, each escaped by `escape`.
    fn phrase(&self, text: &str, escape: &dyn Fn(&str) -> String) -> String {
        fill(text, |n| match n {
            "tenant_name" => Some(escape(self.tenant_name)),
            "inviter_name" => Some(escape(&self.inviter_text())),
            _ => None,
        })
    }

    /// The subject, HTML and text of the mail in the recipient's language.
    pub fn render(&self) -> RenderedMail {
        let p = phrases(self.kind, self.language);
        let l = layout(self.language);
        let subject = single_line(&self.phrase(p.subject, &single_line))
            .trim()
            .to_owned();
        let expires = self.expiry_text();
        let action_html = match self.action {
            MailAction::Link { link, .. } => {
                let (fallback, link) = (
                    match self.language {
                        Language::Ja => {
                            "ボタンが開けない場合は、次のURLをブラウザに貼り付けてください。"
                        }
                        Language::En => {
                            "If the button does not work, paste this address into your browser:"
                        }
                    },
                    escape_html(link),
                );
                format!(
                    "<p><a href=\"{link}\" style=\"display: inline-block; padding: 0.6em 1.2em; \
                     background: #1a56db; color: #fff; text-decoration: none; border-radius: 4px;\">\
                     {}</a></p>\n<p style=\"font-size: 0.9em;\">{fallback}<br>{link}</p>",
                    escape_html(p.action)
                )
            }
            MailAction::Code(code) => format!(
                "<p>{}</p>\n<p style=\"font-size: 2em; font-family: monospace; letter-spacing: \
                 0.3em; margin: 0.5em 0;\"><strong>{}</strong></p>",
                escape_html(p.action),
                escape_html(code)
            ),
        };
        let (action_label, action_value) = match (self.action, self.language) {
            (MailAction::Link { link, .. }, Language::Ja) => ("リンク", link),
            (MailAction::Link { link, .. }, Language::En) => ("Link", link),
            (MailAction::Code(code), _) => (p.action, code),
        };
        let html_intro = self.phrase(p.intro, &escape_html);
        let text_intro = self.phrase(p.intro, &single_line);
        let value = |n: &str, html: bool| -> Option<String> {
            let esc = |v: &str| {
                if html { escape_html(v) } else { single_line(v) }
            };
            Some(match n {
                "subject" => esc(&subject),
                "intro" if html => html_intro.clone(),
                "intro" => text_intro.clone(),
                "footer" => esc(p.footer),
                "tenant_name" => esc(self.tenant_name),
                "user_name" => esc(self.user_name),
                "login_id" => esc(self.login_id),
                "expires_at" => esc(&expires),
                "action_html" if html => action_html.clone(),
                "action_label" => esc(action_label),
                "action_value" => esc(action_value),
                _ => return None,
            })
        };
        RenderedMail {
            html: fill(l.html, |n| value(n, true)),
            text: fill(l.text, |n| value(n, false)),
            subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    const LINK: &str =
        "https://app.example.com/t/acme/invitations/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";

    fn mail(language: Language) -> AccountMail<'static> {
        AccountMail {
            kind: MailKind::Invitation,
            language,
            tenant_name: "株式会社サンプル",
            user_name: "佐藤 太郎",
            login_id: "sato.taro",
            action: MailAction::Link {
                link: LINK,
                inviter_name: Some("山田 花子"),
            },
            expires_at: Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap(),
            time_zone: TimeZone::TOKYO,
        }
    }

    fn reset(language: Language) -> AccountMail<'static> {
        AccountMail {
            kind: MailKind::Reset,
            action: MailAction::Link {
                link: LINK,
                inviter_name: None,
            },
            ..mail(language)
        }
    }

    fn code(language: Language) -> AccountMail<'static> {
        AccountMail {
            kind: MailKind::Code,
            action: MailAction::Code("042917"),
            ..mail(language)
        }
    }

    fn every_mail() -> Vec<AccountMail<'static>> {
        [Language::Ja, Language::En]
            .into_iter()
            .flat_map(|l| [mail(l), reset(l), code(l)])
            .collect()
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
        let m = AccountMail {
            time_zone: TimeZone::parse("America/New_York").unwrap(),
            ..mail(Language::En)
        }
        .render();
        insta::assert_snapshot!("invitation_en_subject", m.subject);
        insta::assert_snapshot!("invitation_en_html", m.html);
        insta::assert_snapshot!("invitation_en_text", m.text);
    }

    #[test]
    fn the_reset_and_code_mails_match_their_snapshots() {
        for lang in [Language::Ja, Language::En] {
            let r = reset(lang).render();
            let c = code(lang).render();
            let l = lang.as_str();
            insta::assert_snapshot!(format!("reset_{l}_subject"), r.subject);
            insta::assert_snapshot!(format!("reset_{l}_text"), r.text);
            insta::assert_snapshot!(format!("code_{l}_subject"), c.subject);
            insta::assert_snapshot!(format!("code_{l}_text"), c.text);
            insta::assert_snapshot!(format!("code_{l}_html"), c.html);
        }
    }

    #[test]
    fn templates_use_only_known_placeholders_and_all_of_them_are_filled() {
        for lang in [Language::Ja, Language::En] {
            let l = layout(lang);
            for part in [l.html, l.text] {
                let mut rest = part;
                while let Some(at) = rest.find("{{") {
                    let name = &rest[at + 2..at + 2 + rest[at + 2..].find("}}").unwrap()];
                    assert!(PLACEHOLDERS.contains(&name), "{name}");
                    rest = &rest[at + 2..];
                }
            }
        }
        for m in every_mail() {
            let r = m.render();
            for part in [&r.subject, &r.html, &r.text] {
                assert!(!part.contains("{{"), "{:?}: {part}", m.kind);
            }
            assert!(r.html.contains("sato.taro") && r.text.contains("sato.taro"));
            match m.action {
                MailAction::Link { link, .. } => {
                    assert!(r.html.contains(link) && r.text.contains(link));
                }
                MailAction::Code(c) => {
                    assert!(r.html.contains(c) && r.text.contains(c));
                    assert!(!r.html.contains("href"), "a code mail has no link");
                }
            }
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
        let en = AccountMail {
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
        for m in every_mail() {
            let r = AccountMail {
                user_name: "<script>alert('x')</script>",
                tenant_name: "A&B \"Co\"",
                ..m
            }
            .render();
            assert!(!r.html.contains("<script>"));
            assert!(
                r.html
                    .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
            );
            assert!(r.html.contains("A&amp;B &quot;Co&quot;"));
            assert!(!r.html.contains("A&B"));
            // The text part is not HTML: the name shows as typed.
            assert!(r.text.contains("<script>alert('x')</script>"));
        }
    }

    #[test]
    fn line_breaks_in_a_value_never_reach_the_subject_or_add_lines() {
        let evil = "Evil\r\nBcc: victim@example.com\u{2028}X";
        for m in every_mail() {
            let r = AccountMail {
                tenant_name: evil,
                user_name: evil,
                ..m
            }
            .render();
            assert!(!r.subject.contains('\r') && !r.subject.contains('\n'));
            assert!(
                r.subject.contains("Evil  Bcc: victim@example.com X"),
                "{}",
                r.subject
            );
            assert!(!r.text.lines().any(|l| l.starts_with("Bcc:")));
            assert!(!r.html.lines().any(|l| l.starts_with("Bcc:")));
        }
    }

    #[test]
    fn without_an_inviter_the_mail_names_the_administrator() {
        let m = AccountMail {
            action: MailAction::Link {
                link: LINK,
                inviter_name: None,
            },
            ..mail(Language::Ja)
        }
        .render();
        assert!(m.text.contains("管理者から"), "{}", m.text);
    }
}
