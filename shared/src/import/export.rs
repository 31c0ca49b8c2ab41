//! Exports in the import format: one EDIT row per user, every column, so a file exported,
//! changed in a spreadsheet and uploaded again does what it shows (and nothing else: unchanged
//! rows change nothing).

use super::columns::Column;
use super::datetime::format_datetime;
use super::rows::Operation;
use crate::csv::CsvWriter;
use crate::domain::{Status, User};

/// The cell of `column` for `user`.
fn cell(user: &User, column: Column) -> String {
    let opt = |v: Option<&str>| v.unwrap_or_default().to_owned();
    match column {
        Column::Operation => Operation::Edit.as_str().to_owned(),
        Column::LoginId => user.profile.login_id.as_str().to_owned(),
        Column::Name => user.profile.name.as_str().to_owned(),
        Column::Email => user.profile.email.as_str().to_owned(),
        Column::Role => user.profile.role.as_str().to_owned(),
        Column::AppRoles => user
            .profile
            .app_roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("|"),
        Column::Groups => user
            .profile
            .groups
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join("|"),
        Column::Organization => opt(user.profile.organization.as_ref().map(|v| v.as_str())),
        Column::Department => opt(user.profile.department.as_ref().map(|v| v.as_str())),
        Column::Phone => opt(user.profile.phone.as_ref().map(|v| v.as_str())),
        Column::Notes => opt(user.profile.notes.as_ref().map(|v| v.as_str())),
        Column::Language => opt(user.profile.language.map(|l| l.as_str())),
        Column::LoginHours => user
            .profile
            .login_hours
            .map(|h| h.to_string())
            .unwrap_or_default(),
        Column::TwoStep => if user.profile.two_step { "1" } else { "0" }.to_owned(),
        Column::ValidFrom => user
            .profile
            .validity
            .from()
            .map(format_datetime)
            .unwrap_or_default(),
        Column::ValidTill => user
            .profile
            .validity
            .till()
            .map(format_datetime)
            .unwrap_or_default(),
        Column::Disabled => if user.status == Status::Suspended {
            "1"
        } else {
            "0"
        }
        .to_owned(),
    }
}

/// The users as an import file (UTF-8 with BOM, every cell formula-neutralised), in the order
/// given.
pub fn export_csv(users: &[User]) -> String {
    let mut csv = CsvWriter::new();
    csv.row(Column::ALL.iter().map(|c| c.name()));
    for user in users {
        csv.row(Column::ALL.iter().map(|c| cell(user, *c)));
    }
    csv.finish()
}
