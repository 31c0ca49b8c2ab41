//! The sender's configuration, read once from the environment.

use chrono::Duration;
use rollcall::config::{self, ConfigError, StoreConfig};
use rollcall::domain::{Email, MailKind, TenantId};

/// Default lifetime of an invitation link, in hours.
pub const DEFAULT_EXPIRY_HOURS: i64 = 72;
/// Default lifetime of a password-reset link, in minutes.
pub const DEFAULT_RESET_MINUTES: i64 = 60;
/// Lifetime of a sign-in code, in minutes (ASVS 5.0 §6.6.2 asks for at most 10).
pub const CODE_MINUTES: i64 = 10;

/// Mail settings of the sender.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The verified SES identity mail is sent from (`SENDER_ADDRESS`).
    pub sender_address: String,
    /// Where links point: the hosted pages at `{APP_BASE_URL}/t/{tenant}/invitations/{token}`
    /// and `…/reset/{token}` (`APP_BASE_URL`, no trailing `/`; normally `PUBLIC_BASE_URL`).
    pub app_base_url: String,
    /// How long an invitation link works (`INVITATION_EXPIRY_HOURS`, 1 to 720, default 72).
    pub link_validity: Duration,
    /// How long a reset link works (`RESET_LINK_MINUTES`, 5 to 1440, default 60).
    pub reset_validity: Duration,
    /// An SES configuration set for delivery events (`SES_CONFIGURATION_SET`, optional).
    pub configuration_set: Option<String>,
    /// Mails sent at once within a batch (`SEND_CONCURRENCY`, default 4).
    pub concurrency: usize,
}

impl SenderConfig {
    /// Checks and builds the settings.
    pub fn new(
        sender_address: &str,
        app_base_url: &str,
        expiry_hours: i64,
    ) -> Result<SenderConfig, ConfigError> {
        let sender = Email::parse(sender_address).map_err(|e| ConfigError::Invalid {
            name: "SENDER_ADDRESS",
            reason: e.to_string(),
        })?;
        let base = app_base_url.trim().trim_end_matches('/');
        let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
        if !scheme_ok || base.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::Invalid {
                name: "APP_BASE_URL",
                reason: "must be an http(s) URL without spaces".into(),
            });
        }
        if !(1..=720).contains(&expiry_hours) {
            return Err(ConfigError::Invalid {
                name: "INVITATION_EXPIRY_HOURS",
                reason: "must be from 1 to 720".into(),
            });
        }
        Ok(SenderConfig {
            sender_address: sender.as_str().to_owned(),
            app_base_url: base.to_owned(),
            link_validity: Duration::hours(expiry_hours),
            reset_validity: Duration::minutes(DEFAULT_RESET_MINUTES),
            configuration_set: None,
            concurrency: 4,
        })
    }

    /// Reset links that work `minutes` (5 to 1440).
    pub fn with_reset_minutes(mut self, minutes: i64) -> Result<SenderConfig, ConfigError> {
        if !(5..=1440).contains(&minutes) {
            return Err(ConfigError::Invalid {
                name: "RESET_LINK_MINUTES",
                reason: "must be from 5 to 1440".into(),
            });
        }
        self.reset_validity = Duration::minutes(minutes);
        Ok(self)
    }

    /// How long a mail of `kind` works.
    pub fn validity(&self, kind: MailKind) -> Duration {
        match kind {
            MailKind::Invitation => self.link_validity,
            MailKind::Reset => self.reset_validity,
            MailKind::Code => Duration::minutes(CODE_MINUTES),
        }
    }

    /// The link a mail of `kind` carries: the hosted page of the tenant (a code has none).
    pub fn link(&self, kind: MailKind, tenant: &TenantId, secret: &str) -> String {
        let page = match kind {
            MailKind::Invitation => "invitations",
            MailKind::Reset => "reset",
            MailKind::Code => return String::new(),
        };
        format!("{}/t/{tenant}/{page}/{secret}", self.app_base_url)
    }

    /// Reads `SENDER_ADDRESS`, `APP_BASE_URL`, `INVITATION_EXPIRY_HOURS`, `RESET_LINK_MINUTES`,
    /// `SES_CONFIGURATION_SET` and `SEND_CONCURRENCY`, and `TABLE_NAME` for the store.
    pub fn from_env() -> Result<(StoreConfig, SenderConfig), ConfigError> {
        let store = StoreConfig::from_env()?;
        let mut settings = SenderConfig::new(
            &config::required("SENDER_ADDRESS")?,
            &config::required("APP_BASE_URL")?,
            config::parsed("INVITATION_EXPIRY_HOURS")?.unwrap_or(DEFAULT_EXPIRY_HOURS),
        )?;
        settings.configuration_set = config::optional("SES_CONFIGURATION_SET");
        let mut settings = settings.with_reset_minutes(
            config::parsed("RESET_LINK_MINUTES")?.unwrap_or(DEFAULT_RESET_MINUTES),
        )?;
        settings.concurrency = config::parsed("SEND_CONCURRENCY")?
            .unwrap_or(4)
            .clamp(1, 32);
        Ok((store, settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_a_bad_sender_url_or_expiry_naming_the_variable() {
        let ok = SenderConfig::new("no-reply@example.com", "https://app.example.com/", 72).unwrap();
        assert_eq!(ok.app_base_url, "https://app.example.com");
        let bad_sender = SenderConfig::new("not an address", "https://a.example", 72).unwrap_err();
        assert!(bad_sender.to_string().contains("SENDER_ADDRESS"));
        let bad_url = SenderConfig::new("a@example.com", "javascript:alert(1)", 72).unwrap_err();
        assert!(bad_url.to_string().contains("APP_BASE_URL"));
        let bad_hours = SenderConfig::new("a@example.com", "https://a.example", 0).unwrap_err();
        assert!(bad_hours.to_string().contains("INVITATION_EXPIRY_HOURS"));
    }

    #[test]
    fn each_mail_kind_has_its_own_life_and_page() {
        let base =
            SenderConfig::new("no-reply@example.com", "https://id.example.com/", 72).unwrap();
        assert_eq!(base.validity(MailKind::Reset), Duration::minutes(60));
        assert_eq!(base.validity(MailKind::Code), Duration::minutes(10));
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(
            base.link(MailKind::Reset, &t, "abc"),
            "https://id.example.com/t/acme/reset/abc"
        );
        assert_eq!(
            base.link(MailKind::Invitation, &t, "abc"),
            "https://id.example.com/t/acme/invitations/abc"
        );
        let longer = base.clone().with_reset_minutes(120).unwrap();
        assert_eq!(longer.validity(MailKind::Reset), Duration::minutes(120));
        let e = base.with_reset_minutes(4).unwrap_err();
        assert!(e.to_string().contains("RESET_LINK_MINUTES"), "{e}");
    }
}
