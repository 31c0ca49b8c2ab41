//! How a tenant's hosted pages look and where they lead: the default application a person is
//! sent to after setting a password, a logo and an accent colour.
//!
//! The accent colour paints the buttons (white text on it) and the links (on white), so it
//! must keep WCAG 2.2's contrast of 4.5:1 against white (SC 1.4.3); a colour that doesn't is
//! refused when it is set, with the ratio it has, rather than making the pages unreadable.

use serde::{Deserialize, Serialize};

/// A tenant's page settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PageSettings {
    /// Where a person goes after setting a password (an `https` URL; `http` only on loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_url: Option<String>,
    /// The tenant's logo (an `https` URL; `http` only on loopback), shown above the page title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accent_colour: Option<String>,
}

/// A page setting that can't be used: which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PageSettingsError {
    /// `app_url`, `logo_url` or `accent_colour`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

/// WCAG 2.2 SC 1.4.3's least contrast for normal text.
pub const MIN_CONTRAST: f64 = 4.5;

impl PageSettings {
    /// Checks every setting; the first unusable one is named.
    pub fn check(self) -> Result<PageSettings, PageSettingsError> {
        for (field, url) in [("app_url", &self.app_url), ("logo_url", &self.logo_url)] {
            if let Some(u) = url {
                check_url(u).map_err(|reason| PageSettingsError { field, reason })?;
            }
        }
        if let Some(c) = &self.accent_colour {
            let rgb = parse_colour(c).ok_or_else(|| PageSettingsError {
                field: "accent_colour",
                reason: "must be #rrggbb".into(),
            })?;
            let ratio = contrast_with_white(rgb);
            if ratio < MIN_CONTRAST {
                return Err(PageSettingsError {
                    field: "accent_colour",
                    reason: format!(
                        "{c} has a contrast of {ratio:.2}:1 against white; at least {MIN_CONTRAST}:1 is needed for text on it (WCAG 2.2 SC 1.4.3)"
                    ),
                });
            }
        }
        Ok(self)
    }

    /// The origin of the logo (for the pages' `img-src`), when there is one.
    pub fn logo_origin(&self) -> Option<String> {
        let url = url::Url::parse(self.logo_url.as_deref()?).ok()?;
        Some(url.origin().ascii_serialization())
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let url = url::Url::parse(u).map_err(|e| format!("not an absolute URL ({e})"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("may not carry a user name or password".into());
    }
    if u.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    Ok(())
}

fn parse_colour(c: &str) -> Option<[u8; 3]> {
    let hex = c.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The contrast ratio of `rgb` against white (WCAG 2.2, "contrast ratio" and "relative
/// luminance").
pub fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    let channel = |v: u8| {
        let c = f64::from(v) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]);
    1.05 / (l + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut PageSettings)) -> Result<PageSettings, PageSettingsError> {
        let mut p = PageSettings::default();
        f(&mut p);
        p.check()
    }

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast_with_white([0, 0, 0]) - 21.0).abs() < 0.01);
        assert!((contrast_with_white([255, 255, 255]) - 1.0).abs() < 0.01);
        // #767676 is the well-known lightest grey that passes 4.5:1 on white.
        assert!(contrast_with_white([0x76, 0x76, 0x76]) >= 4.5);
        assert!(contrast_with_white([0x77, 0x77, 0x77]) < 4.5);
    }

    #[test]
    fn a_colour_too_light_for_white_text_is_refused_with_its_ratio() {
        assert!(with(|p| p.accent_colour = Some("#1f5fbf".into())).is_ok());
        let e = with(|p| p.accent_colour = Some("#ffcc00".into())).unwrap_err();
        assert_eq!(e.field, "accent_colour");
        assert!(e.reason.contains(":1 against white"), "{}", e.reason);
        for bad in ["red", "#12345", "#1234567", "#gggggg", "1f5fbf"] {
            let e = with(|p| p.accent_colour = Some(bad.into())).unwrap_err();
            assert_eq!(e.reason, "must be #rrggbb", "{bad}");
        }
    }

    #[test]
    fn urls_must_be_https_except_on_loopback() {
        assert!(with(|p| p.app_url = Some("https://app.example.com/home".into())).is_ok());
        assert!(with(|p| p.app_url = Some("http://127.0.0.1:8080/".into())).is_ok());
        for bad in [
            "http://app.example.com",
            "javascript:alert(1)",
            "/relative",
            "https://user:pw@app.example.com",
        ] {
            let e = with(|p| p.logo_url = Some(bad.into())).unwrap_err();
            assert_eq!(e.field, "logo_url", "{bad}");
        }
        let p = with(|p| p.logo_url = Some("https://cdn.example.com/a/logo.png".into())).unwrap();
        assert_eq!(p.logo_origin().as_deref(), Some("https://cdn.example.com"));
    }
}
