//! The sender's configuration, read once from the environment.

use chrono::Duration;
use rollcall::config::{self, ConfigError, StoreConfig};
use rollcall::domain::Email;

/// Default lifetime of an invitation link, in hours.
pub const DEFAULT_EXPIRY_HOURS: i64 = 72;

/// Mail settings of the sender.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The verified SES identity mail is sent from (`SENDER_ADDRESS`).
    pub sender_address: String,
    /// Where links point: `{APP_BASE_URL}/invitations/{token}` (`APP_BASE_URL`, no trailing `/`).
    pub app_base_url: String,
    /// How long a link works (`INVITATION_EXPIRY_HOURS`, 1 to 720, default 72).
    pub link_validity: Duration,
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
            configuration_set: None,
            concurrency: 4,
        })
    }

    /// Reads `SENDER_ADDRESS`, `APP_BASE_URL`, `INVITATION_EXPIRY_HOURS`,
    /// `SES_CONFIGURATION_SET` and `SEND_CONCURRENCY`, and `TABLE_NAME` for the store.
    pub fn from_env() -> Result<(StoreConfig, SenderConfig), ConfigError> {
        let store = StoreConfig::from_env()?;
        let mut settings = SenderConfig::new(
            &config::required("SENDER_ADDRESS")?,
            &config::required("APP_BASE_URL")?,
            config::parsed("INVITATION_EXPIRY_HOURS")?.unwrap_or(DEFAULT_EXPIRY_HOURS),
        )?;
        settings.configuration_set = config::optional("SES_CONFIGURATION_SET");
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
}
