//! An edit to a user, whoever asks for it: the API's `PATCH` body and an import's `EDIT` row
//! (and SCIM's `PATCH`, when it comes) each only build a [`UserPatch`], and [`User::apply`]
//! holds every rule of how an edit applies: required fields stay set, the validity window
//! stays ordered (against the stored end when only one end changes), app roles that change
//! come from the tenant's catalogue, `disabled` moves the status as the lifecycle allows, and a
//! changed email asks for a new invitation.

use chrono::{DateTime, Utc};

use super::{
    AppRoles, DisplayName, Email, Groups, Language, Localized, LoginHours, LoginId, Notes, Phone,
    Role, RoleCatalogue, ShortText, Status, TimeZone, User, ValidityWindow,
};

/// What an edit does to one field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Change<T> {
    /// Leave it as it is.
    #[default]
    Leave,
    /// Clear it (only optional fields and sets may be cleared).
    Clear,
    /// Set it to this value.
    Set(T),
}

impl<T> Change<T> {
    /// The value it sets, if it sets one (for a new user, where there is nothing to leave).
    pub fn into_value(self) -> Option<T> {
        match self {
            Change::Set(v) => Some(v),
            Change::Leave | Change::Clear => None,
        }
    }
}

impl<T: Clone> Change<T> {
    /// An optional field after the change.
    fn applied_to(&self, current: &Option<T>) -> Option<T> {
        match self {
            Change::Leave => current.clone(),
            Change::Clear => None,
            Change::Set(v) => Some(v.clone()),
        }
    }
}

/// The fields an edit can name, as [`PatchProblem`]s report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchField {
    /// `login_id`.
    LoginId,
    /// `email`.
    Email,
    /// `name`.
    Name,
    /// `role`.
    Role,
    /// `app_roles`.
    AppRoles,
    /// `groups`.
    Groups,
    /// `organization`.
    Organization,
    /// `department`.
    Department,
    /// `phone`.
    Phone,
    /// `notes`.
    Notes,
    /// `language`.
    Language,
    /// `time_zone`.
    TimeZone,
    /// `valid_from`.
    ValidFrom,
    /// `valid_till`.
    ValidTill,
    /// `login_hours`.
    LoginHours,
    /// `two_step`.
    TwoStep,
    /// `disabled` (the status).
    Disabled,
}

impl PatchField {
    /// The field's name in the API and the CSV header.
    pub fn name(self) -> &'static str {
        match self {
            PatchField::LoginId => "login_id",
            PatchField::Email => "email",
            PatchField::Name => "name",
            PatchField::Role => "role",
            PatchField::AppRoles => "app_roles",
            PatchField::Groups => "groups",
            PatchField::Organization => "organization",
            PatchField::Department => "department",
            PatchField::Phone => "phone",
            PatchField::Notes => "notes",
            PatchField::Language => "language",
            PatchField::TimeZone => "time_zone",
            PatchField::ValidFrom => "valid_from",
            PatchField::ValidTill => "valid_till",
            PatchField::LoginHours => "login_hours",
            PatchField::TwoStep => "two_step",
            PatchField::Disabled => "disabled",
        }
    }
}

/// An edit to a user: each field left alone, cleared or set, and the status moved or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    /// Login id (required: can't be cleared).
    pub login_id: Change<LoginId>,
    /// Email (required).
    pub email: Change<Email>,
    /// Display name (required).
    pub name: Change<DisplayName>,
    /// Management role (required).
    pub role: Change<Role>,
    /// App roles (cleared: none).
    pub app_roles: Change<AppRoles>,
    /// Groups (cleared: none).
    pub groups: Change<Groups>,
    /// Organisation.
    pub organization: Change<ShortText>,
    /// Department.
    pub department: Change<ShortText>,
    /// Phone.
    pub phone: Change<Phone>,
    /// Notes.
    pub notes: Change<Notes>,
    /// Language.
    pub language: Change<Language>,
    /// Time zone.
    pub time_zone: Change<TimeZone>,
    /// Start of the validity window.
    pub valid_from: Change<DateTime<Utc>>,
    /// End of the validity window.
    pub valid_till: Change<DateTime<Utc>>,
    /// Login hours (cleared: any time).
    pub login_hours: Change<LoginHours>,
    /// Whether the user enters an emailed code after the password; `None` leaves it.
    pub two_step: Option<bool>,
    /// `Some(true)` suspends, `Some(false)` reactivates; `None` leaves the status.
    pub disabled: Option<bool>,
}

impl UserPatch {
    /// Whether applying this patch to `current` consults the tenant's role catalogue (it sets
    /// app roles that differ from the stored ones and are not empty): the caller reads the
    /// catalogue only then.
    pub fn checks_app_roles(&self, current: &User) -> bool {
        matches!(&self.app_roles, Change::Set(r) if !r.is_empty() && *r != current.profile.app_roles)
    }
}

/// One field an edit can't apply, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchProblem {
    /// The field.
    pub field: PatchField,
    /// Stable code.
    pub code: &'static str,
    /// Japanese message.
    pub message_ja: String,
    /// English message.
    pub message_en: String,
}

impl PatchProblem {
    fn new(field: PatchField, e: &dyn Localized) -> PatchProblem {
        PatchProblem {
            field,
            code: e.code(),
            message_ja: e.message(super::Language::Ja),
            message_en: e.message(super::Language::En),
        }
    }
}

/// A required field cleared.
struct Required;

impl Localized for Required {
    fn code(&self) -> &'static str {
        "required"
    }
    fn message(&self, lang: super::Language) -> String {
        match lang {
            super::Language::Ja => "入力してください。".into(),
            super::Language::En => "This field is required.".into(),
        }
    }
}

/// A user after an edit, and what else the edit asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Edited {
    /// The user as it will be stored (version and history are set by the store).
    pub user: User,
    /// The email changed (ignoring case): a new invitation goes to the new address and the
    /// earlier links are revoked.
    pub reinvite: bool,
}

impl User {
    /// This user with `patch` applied, or every field it can't apply. `catalogue` is the
    /// tenant's role catalogue, consulted only when [`UserPatch::checks_app_roles`] says so.
    pub fn apply(
        &self,
        patch: &UserPatch,
        catalogue: &RoleCatalogue,
    ) -> Result<Edited, Vec<PatchProblem>> {
        let mut problems = Vec::new();
        let mut after = self.clone();
        required(
            &patch.login_id,
            &mut after.profile.login_id,
            PatchField::LoginId,
            &mut problems,
        );
        required(
            &patch.email,
            &mut after.profile.email,
            PatchField::Email,
            &mut problems,
        );
        required(
            &patch.name,
            &mut after.profile.name,
            PatchField::Name,
            &mut problems,
        );
        required(
            &patch.role,
            &mut after.profile.role,
            PatchField::Role,
            &mut problems,
        );
        if patch.checks_app_roles(self)
            && let Change::Set(roles) = &patch.app_roles
            && let Err(e) = catalogue.check(roles)
        {
            problems.push(PatchProblem::new(PatchField::AppRoles, &e));
        }
        after.profile.app_roles = patch
            .app_roles
            .applied_to(&Some(self.profile.app_roles.clone()))
            .unwrap_or_default();
        after.profile.groups = patch
            .groups
            .applied_to(&Some(self.profile.groups.clone()))
            .unwrap_or_default();
        after.profile.organization = patch.organization.applied_to(&self.profile.organization);
        after.profile.department = patch.department.applied_to(&self.profile.department);
        after.profile.phone = patch.phone.applied_to(&self.profile.phone);
        after.profile.notes = patch.notes.applied_to(&self.profile.notes);
        after.profile.language = patch.language.applied_to(&self.profile.language);
        after.profile.time_zone = patch.time_zone.applied_to(&self.profile.time_zone);
        after.profile.login_hours = patch.login_hours.applied_to(&self.profile.login_hours);
        if let Some(on) = patch.two_step {
            after.profile.two_step = on;
        }
        let from = patch.valid_from.applied_to(&self.profile.validity.from());
        let till = patch.valid_till.applied_to(&self.profile.validity.till());
        match ValidityWindow::new(from, till) {
            Ok(w) => after.profile.validity = w,
            Err(e) => problems.push(PatchProblem::new(PatchField::ValidTill, &e)),
        }
        let status = match patch.disabled {
            Some(true) if self.status != Status::Suspended => self.status.suspend(),
            Some(false) if self.status == Status::Suspended => {
                self.status.reactivate(self.has_password)
            }
            _ => Ok(self.status),
        };
        match status {
            Ok(s) => after.status = s,
            Err(e) => problems.push(PatchProblem::new(PatchField::Disabled, &e)),
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let reinvite = after.profile.email.key() != self.profile.email.key();
        Ok(Edited {
            user: after,
            reinvite,
        })
    }
}

/// A required field after the change: cleared is a problem, and the value stays.
fn required<T: Clone>(
    change: &Change<T>,
    value: &mut T,
    field: PatchField,
    problems: &mut Vec<PatchProblem>,
) {
    match change {
        Change::Leave => {}
        Change::Clear => problems.push(PatchProblem::new(field, &Required)),
        Change::Set(v) => *value = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppRole, Profile, TenantId, UserId};
    use chrono::TimeZone as _;

    fn user() -> User {
        let mut u = User::new(
            TenantId::parse("acme").unwrap(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse("taro").unwrap(),
                Email::parse("taro@example.com").unwrap(),
                DisplayName::parse("Taro").unwrap(),
                Role::Member,
            ),
            Status::Active,
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        );
        u.has_password = true;
        u
    }

    fn catalogue() -> RoleCatalogue {
        RoleCatalogue::new([AppRole::parse("crm:viewer").unwrap()])
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        let u = user();
        let edited = u.apply(&UserPatch::default(), &catalogue()).unwrap();
        assert_eq!(edited.user, u);
        assert!(!edited.reinvite);
    }

    #[test]
    fn required_fields_cant_be_cleared_and_every_problem_is_reported() {
        let patch = UserPatch {
            name: Change::Clear,
            email: Change::Clear,
            app_roles: Change::Set(AppRoles::parse(["ghost"]).unwrap()),
            ..UserPatch::default()
        };
        let problems = user().apply(&patch, &catalogue()).unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| (p.field, p.code)).collect();
        assert_eq!(
            fields,
            vec![
                (PatchField::Email, "required"),
                (PatchField::Name, "required"),
                (PatchField::AppRoles, "app_role_unknown"),
            ]
        );
    }

    #[test]
    fn one_end_of_the_window_is_checked_against_the_stored_other_end() {
        let mut u = user();
        let end = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        u.profile.validity = ValidityWindow::new(None, Some(end)).unwrap();
        let late_start = UserPatch {
            valid_from: Change::Set(end),
            ..UserPatch::default()
        };
        let problems = u.apply(&late_start, &catalogue()).unwrap_err();
        assert_eq!(problems[0].field, PatchField::ValidTill);
        let open_end = UserPatch {
            valid_from: Change::Set(end),
            valid_till: Change::Clear,
            ..UserPatch::default()
        };
        let edited = u.apply(&open_end, &catalogue()).unwrap();
        assert_eq!(edited.user.profile.validity.till(), None);
    }

    #[test]
    fn disabled_moves_the_status_as_the_lifecycle_allows() {
        let u = user();
        let suspend = UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        };
        let suspended = u.apply(&suspend, &catalogue()).unwrap().user;
        assert_eq!(suspended.status, Status::Suspended);
        let reactivate = UserPatch {
            disabled: Some(false),
            ..UserPatch::default()
        };
        assert_eq!(
            suspended
                .apply(&reactivate, &catalogue())
                .unwrap()
                .user
                .status,
            Status::Active
        );
        // Already as asked: nothing moves.
        assert_eq!(
            suspended.apply(&suspend, &catalogue()).unwrap().user.status,
            Status::Suspended
        );
    }

    #[test]
    fn a_new_email_asks_for_an_invitation_and_another_case_does_not() {
        let u = user();
        let recase = UserPatch {
            email: Change::Set(Email::parse("TARO@example.com").unwrap()),
            ..UserPatch::default()
        };
        assert!(!u.apply(&recase, &catalogue()).unwrap().reinvite);
        let moved = UserPatch {
            email: Change::Set(Email::parse("taro@new.example").unwrap()),
            ..UserPatch::default()
        };
        assert!(u.apply(&moved, &catalogue()).unwrap().reinvite);
    }

    #[test]
    fn unchanged_app_roles_are_not_checked_against_the_catalogue_again() {
        let mut u = user();
        u.profile.app_roles = AppRoles::parse(["retired:role"]).unwrap();
        let same = UserPatch {
            app_roles: Change::Set(u.profile.app_roles.clone()),
            ..UserPatch::default()
        };
        assert!(!same.checks_app_roles(&u));
        assert!(u.apply(&same, &RoleCatalogue::default()).is_ok());
    }
}
