//! Invitations: the mail that lets a new user set a password, and the secret link inside it.
//! The same outbox item carries the other account mails ([`MailKind`]): a password-reset link
//! and the code of the second sign-in step, so all of them share one path to SES, its
//! conditional status changes and its retries.
//!
//! A token is 256 bits from the operating system's CSPRNG, written base64url (43 characters).
//! Only its SHA-256 is ever stored, so a copy of the table does not let anyone in. An invitation
//! moves `PENDING -> SENDING -> SENT -> ACCEPTED`; the sender can also leave it `FAILED`, the
//! sweep `EXPIRED`. A newer invitation for the same user *supersedes* it: from then on all of its
//! links are revoked, whatever its stored status (so superseding never races with the sender).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Email, InvitationId, Language, Localized, SecretToken, Status, TenantId, TokenDigest, User,
    UserId,
};

/// The secret in an invitation link.
pub type InvitationToken = SecretToken;

/// The stored status of an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationStatus {
    /// Waiting for the sender.
    Pending,
    /// A sender holds it (a lease) and is mailing it.
    Sending,
    /// Mailed.
    Sent,
    /// SES refused it for good; the reason is kept.
    Failed,
    /// The user set a password with it.
    Accepted,
    /// Withdrawn (the user was deleted or suspended before it went out).
    Revoked,
    /// Its link expired unused.
    Expired,
}

impl InvitationStatus {
    /// Whether a link of an invitation in this status may still be used (or soon will).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            InvitationStatus::Pending | InvitationStatus::Sending | InvitationStatus::Sent
        )
    }

    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "PENDING",
            InvitationStatus::Sending => "SENDING",
            InvitationStatus::Sent => "SENT",
            InvitationStatus::Failed => "FAILED",
            InvitationStatus::Accepted => "ACCEPTED",
            InvitationStatus::Revoked => "REVOKED",
            InvitationStatus::Expired => "EXPIRED",
        }
    }
}

/// Why an outbox item was created. The trigger decides the [`MailKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationTrigger {
    /// The user was created.
    Created,
    /// An admin asked for it again.
    Resend,
    /// The user's email address changed.
    EmailChanged,
    /// The user asked for a reset link on the forgot-password page.
    PasswordForgotten,
    /// An admin sent the user a reset link.
    PasswordResetByAdmin,
    /// The user passed the password step and is sent the code of the second.
    SignInCode,
}

impl InvitationTrigger {
    /// What the item mails.
    pub fn kind(self) -> MailKind {
        match self {
            InvitationTrigger::Created
            | InvitationTrigger::Resend
            | InvitationTrigger::EmailChanged => MailKind::Invitation,
            InvitationTrigger::PasswordForgotten | InvitationTrigger::PasswordResetByAdmin => {
                MailKind::Reset
            }
            InvitationTrigger::SignInCode => MailKind::Code,
        }
    }
}

/// The account mails rollcall sends, all through the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link to set the first password (default life 72 h).
    Invitation,
    /// A link to set a new password (default life 1 h).
    Reset,
    /// Six digits for the second sign-in step (10 minutes, 5 tries).
    Code,
}

impl MailKind {
    /// Its name in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Invitation => "invitation",
            MailKind::Reset => "reset",
            MailKind::Code => "code",
        }
    }
}

/// One invitation of a user (the outbox item).
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    /// Its id (a ULID: later invitations sort after earlier ones).
    pub id: InvitationId,
    /// The tenant.
    pub tenant: TenantId,
    /// The invited user.
    pub user: UserId,
    /// The address it goes to.
    pub email: Email,
    /// Stored status.
    pub status: InvitationStatus,
    /// Why it exists.
    pub trigger: InvitationTrigger,
    /// Who asked for it, when a person did.
    pub invited_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How many times a sender tried to mail it.
    pub attempts: u32,
    /// When it was mailed.
    pub sent_at: Option<DateTime<Utc>>,
    /// When the newest link minted for it stops working.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// Why it failed (SES's error code) and SES's message.
    pub failure: Option<(String, String)>,
    /// The newer invitation that revoked this one.
    pub superseded_by: Option<InvitationId>,
    /// When it was accepted (the link set a password, the code was entered).
    pub accepted_at: Option<DateTime<Utc>>,
    /// Wrong codes entered against it (codes only).
    pub wrong_codes: u32,
    /// The digest of the secret the sender minted for it (a link's token, a code).
    pub digest: Option<TokenDigest>,
}

impl Invitation {
    /// A fresh PENDING invitation.
    pub fn new(
        user: &User,
        trigger: InvitationTrigger,
        invited_by: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Invitation {
        Invitation {
            id: InvitationId::generate(),
            tenant: user.tenant.clone(),
            user: user.id,
            email: user.profile.email.clone(),
            status: InvitationStatus::Pending,
            trigger,
            invited_by,
            created_at: now,
            attempts: 0,
            sent_at: None,
            link_expires_at: None,
            failure: None,
            superseded_by: None,
            accepted_at: None,
            wrong_codes: 0,
            digest: None,
        }
    }

    /// What it mails.
    pub fn kind(&self) -> MailKind {
        self.trigger.kind()
    }

    /// The status as people should see it at `now`: a superseded open invitation is revoked, a
    /// sent one past its link expiry is expired, whether or not the sweep got there yet.
    pub fn effective_status(&self, now: DateTime<Utc>) -> InvitationStatus {
        if self.status.is_open() && self.superseded_by.is_some() {
            return InvitationStatus::Revoked;
        }
        if self.status == InvitationStatus::Sent && self.link_expires_at.is_some_and(|t| now >= t) {
            return InvitationStatus::Expired;
        }
        self.status
    }
}

/// What a link can do right now. Checking it never uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// It can set the password.
    Valid,
    /// Its time ran out.
    Expired,
    /// It (or another link of the same invitation) was used.
    Used,
    /// A newer invitation replaced it, or the user was deleted or suspended.
    Revoked,
}

impl TokenState {
    /// Decides the state of a link from what the store holds: the token's own expiry and use,
    /// its invitation (if still there), the user (if still there) and when the user's sessions
    /// were last revoked (a password change does that). A reset link also dies when the
    /// password changed after it was made, and works only for an active user.
    pub fn of(
        token_used: bool,
        token_expires_at: DateTime<Utc>,
        invitation: Option<&Invitation>,
        user: Option<&User>,
        revoked_before: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> TokenState {
        let status = invitation.map(|i| i.effective_status(now));
        if token_used || status == Some(InvitationStatus::Accepted) {
            return TokenState::Used;
        }
        if let Some(i) = invitation.filter(|i| i.kind() == MailKind::Reset) {
            let changed_since = revoked_before.is_some_and(|r| r >= i.created_at);
            if changed_since || user.is_some_and(|u| u.status != Status::Active) {
                return TokenState::Revoked;
            }
        }
        let user_can_accept = user.is_some_and(|u| u.status != Status::Suspended);
        let open = status.is_some_and(InvitationStatus::is_open);
        if !user_can_accept || !(open || status == Some(InvitationStatus::Expired)) {
            return TokenState::Revoked;
        }
        if now >= token_expires_at || status == Some(InvitationStatus::Expired) {
            return TokenState::Expired;
        }
        TokenState::Valid
    }

    /// The state's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Valid => "valid",
            TokenState::Expired => "expired",
            TokenState::Used => "used",
            TokenState::Revoked => "revoked",
        }
    }
}

impl Localized for TokenState {
    fn code(&self) -> &'static str {
        match self {
            TokenState::Valid => "invitation_valid",
            TokenState::Expired => "invitation_expired",
            TokenState::Used => "invitation_used",
            TokenState::Revoked => "invitation_revoked",
        }
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (TokenState::Valid, Language::Ja) => "この招待は有効です。".into(),
            (TokenState::Valid, Language::En) => "This invitation is valid.".into(),
            (TokenState::Expired, Language::Ja) => {
                "この招待の有効期限が切れています。管理者に再送を依頼してください。".into()
            }
            (TokenState::Expired, Language::En) => {
                "This invitation has expired. Ask your administrator to send it again.".into()
            }
            (TokenState::Used, Language::Ja) => {
                "この招待はすでに使われています。設定したパスワードでログインしてください。".into()
            }
            (TokenState::Used, Language::En) => {
                "This invitation has already been used. Sign in with the password you set.".into()
            }
            (TokenState::Revoked, Language::Ja) => {
                "この招待は取り消されました。最新の招待メールのリンクを使ってください。".into()
            }
            (TokenState::Revoked, Language::En) => {
                "This invitation was withdrawn. Use the link in the newest invitation mail.".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DisplayName, LoginId, Profile, Role};
    use chrono::TimeZone as _;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    fn user(status: Status) -> User {
        User::new(
            TenantId::parse("acme").unwrap(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse("taro").unwrap(),
                Email::parse("taro@example.com").unwrap(),
                DisplayName::parse("Taro").unwrap(),
                Role::Member,
            ),
            status,
            t0(),
        )
    }

    fn sent(u: &User) -> Invitation {
        let mut i = Invitation::new(u, InvitationTrigger::Created, None, t0());
        i.status = InvitationStatus::Sent;
        i.sent_at = Some(t0());
        i.link_expires_at = Some(t0() + chrono::Duration::hours(72));
        i
    }

    #[test]
    fn a_sent_link_is_valid_until_its_expiry_then_expired() {
        let u = user(Status::Invited);
        let i = sent(&u);
        let exp = i.link_expires_at.unwrap();
        let at = |now| TokenState::of(false, exp, Some(&i), Some(&u), None, now);
        assert_eq!(at(t0()), TokenState::Valid);
        assert_eq!(
            at(exp - chrono::Duration::milliseconds(1)),
            TokenState::Valid
        );
        assert_eq!(at(exp), TokenState::Expired);
    }

    #[test]
    fn a_superseded_invitation_revokes_its_links_whatever_its_stored_status() {
        let u = user(Status::Invited);
        for status in [
            InvitationStatus::Pending,
            InvitationStatus::Sending,
            InvitationStatus::Sent,
        ] {
            let mut i = sent(&u);
            i.status = status;
            i.superseded_by = Some(InvitationId::generate());
            assert_eq!(i.effective_status(t0()), InvitationStatus::Revoked);
            let exp = t0() + chrono::Duration::hours(1);
            assert_eq!(
                TokenState::of(false, exp, Some(&i), Some(&u), None, t0()),
                TokenState::Revoked
            );
        }
    }

    #[test]
    fn use_wins_over_every_other_state() {
        let u = user(Status::Active);
        let mut i = sent(&u);
        i.status = InvitationStatus::Accepted;
        let long_ago = t0() - chrono::Duration::days(9);
        assert_eq!(
            TokenState::of(false, long_ago, Some(&i), None, None, t0()),
            TokenState::Used
        );
        assert_eq!(
            TokenState::of(true, long_ago, None, None, None, t0()),
            TokenState::Used
        );
    }

    #[test]
    fn a_deleted_or_suspended_user_revokes_the_link() {
        let u = user(Status::Suspended);
        let i = sent(&u);
        let exp = i.link_expires_at.unwrap();
        assert_eq!(
            TokenState::of(false, exp, Some(&i), Some(&u), None, t0()),
            TokenState::Revoked
        );
        assert_eq!(
            TokenState::of(false, exp, Some(&i), None, None, t0()),
            TokenState::Revoked
        );
    }

    #[test]
    fn failed_and_missing_invitations_revoke_the_link() {
        let u = user(Status::Invited);
        let mut i = sent(&u);
        i.status = InvitationStatus::Failed;
        let exp = t0() + chrono::Duration::hours(1);
        assert_eq!(
            TokenState::of(false, exp, Some(&i), Some(&u), None, t0()),
            TokenState::Revoked
        );
        assert_eq!(
            TokenState::of(false, exp, None, Some(&u), None, t0()),
            TokenState::Revoked
        );
    }

    #[test]
    fn a_reset_link_dies_when_the_password_changes_after_it_and_needs_an_active_user() {
        let u = user(Status::Active);
        let mut i = sent(&u);
        i.trigger = InvitationTrigger::PasswordForgotten;
        assert_eq!(i.kind(), MailKind::Reset);
        let exp = t0() + chrono::Duration::hours(1);
        let at =
            |i: &Invitation, revoked| TokenState::of(false, exp, Some(i), Some(&u), revoked, t0());
        assert_eq!(at(&i, None), TokenState::Valid);
        // Revoked before the link was made: an older change, the link stands.
        let before = Some(t0() - chrono::Duration::seconds(1));
        let after = Some(t0() + chrono::Duration::seconds(1));
        assert_eq!(at(&i, before), TokenState::Valid);
        assert_eq!(at(&i, after), TokenState::Revoked);
        let invited = user(Status::Invited);
        assert_eq!(
            TokenState::of(false, exp, Some(&i), Some(&invited), None, t0()),
            TokenState::Revoked
        );
        // An invitation link does not care about sessions.
        i.trigger = InvitationTrigger::Created;
        assert_eq!(at(&i, after), TokenState::Valid);
    }
}
