//! Domain values: newtypes with private fields and fallible constructors, so that a value of
//! one of these types is valid by construction ("parse, don't validate").
//!
//! Every constructor error implements [`Localized`]: a stable machine-readable `code` and a
//! message in the caller's [`Language`], used unchanged by the HTTP API and the CSV reports.

/// The conversions every text newtype of the domain has, over its `CompactString` and its
/// `parse`: `TryFrom<String>` (so `#[serde(try_from = "String")]` can't build an invalid value),
/// `From<T> for String` and `Display`. One macro instead of the same three impls in each file.
macro_rules! text_newtype_conversions {
    ($name:ident, $error:ty) => {
        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.into_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

mod billing;
mod email;
mod ids;
mod invitation;
mod language;
mod login_hours;
mod login_id;
mod one_time_code;
mod pages;
mod password;
mod patch;
mod phone;
mod role;
mod secret_token;
mod sets;
mod status;
mod tenant;
mod text;
mod time;
mod user;

pub use billing::{BillingMonth, MonthError, billable_at, state_at};
pub use email::{Email, EmailError};
pub use ids::{IdError, ImportId, InvitationId, TenantId, UserId};
pub use invitation::{
    Invitation, InvitationStatus, InvitationToken, InvitationTrigger, MailKind, TokenState,
};
pub use language::{Language, LanguageError};
pub use login_hours::{LoginHours, LoginHoursError};
pub use login_id::{LoginId, LoginIdError};
pub use one_time_code::{CODE_DIGITS, OneTimeCode};
pub use pages::{MIN_CONTRAST, PageSettings, PageSettingsError, contrast_with_white};
pub use password::{
    ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB, HashError, Password, PasswordHash,
    PasswordPolicy, PasswordRule, SYMBOLS,
};
pub use patch::{Change, Edited, PatchField, PatchProblem, UserPatch};
pub use phone::{Phone, PhoneError};
pub use role::{Role, RoleError};
pub use secret_token::{SecretToken, TOKEN_BYTES, TokenDigest, TokenError};
pub use sets::{AppRole, AppRoles, Group, Groups, RoleCatalogue, SetError, UnknownAppRoles};
pub use status::{Status, StatusError, TransitionError};
pub use tenant::{BillingPolicy, SeatUsage, SignInPolicy, SignInPolicyError, Tenant, TwoStep};
pub use text::{DisplayName, Notes, ShortText, TextError, search_key};
pub(crate) use text::{has_ascii_uppercase, has_control, longer_than, trim};
pub use time::{TimeZone, TimeZoneError, ValidityError, ValidityWindow};
pub use user::{NotAllowed, Profile, StateChange, User, UserState};

/// An error that can explain itself to a person in either supported language and to a program
/// through a stable code.
pub trait Localized {
    /// A stable, machine-readable identifier, e.g. `email_invalid`.
    fn code(&self) -> &'static str;
    /// A sentence for people, in `lang`.
    fn message(&self, lang: Language) -> String;
}
