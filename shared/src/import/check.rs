//! Comparing a file's rows with the directory as it is: taken login ids and emails, unknown
//! users, the uploader's own account, unknown app roles, status changes, the last active admin
//! and the seat limit. The result is either every problem, or the plan: for each row, the user
//! before and after, ready to write.
//!
//! Over 600 lines with its tests (about 350): the checking is some 400.

// A fast hasher: these maps hold up to a whole file of keys, looked up once a row.
use foldhash::HashMap;

use super::RowProblem;
use super::columns::Column;
use super::rows::{ParsedFile, RowAction};
use crate::domain::{
    Change, Language, Localized, PatchField, PatchProblem, RoleCatalogue, SeatUsage, Tenant, User,
    UserId, UserPatch,
};

/// The part of the directory a file touches, read (strongly consistent) before checking.
#[derive(Debug, Clone)]
pub struct Directory {
    /// The tenant, with its role catalogue, seat limit and billing policy.
    pub tenant: Tenant,
    /// Its seat counters.
    pub seats: SeatUsage,
    /// Its count of active admins.
    pub active_admins: u64,
    /// The live users whose login ids the file names, by login-id key. Boxed: a user the
    /// file edits or deletes moves into the plan as it is.
    pub users: HashMap<String, Box<User>>,
    /// The owners of the emails that NEW rows name, by email key.
    pub email_owners: HashMap<String, UserId>,
}

/// What one row will do.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Create `user`; send an invitation unless the row creates it suspended.
    Create {
        /// The line of the row.
        line: usize,
        /// The user to write.
        user: Box<User>,
    },
    /// Replace `before` with `after`.
    Update {
        /// The line of the row.
        line: usize,
        /// The user as read.
        before: Box<User>,
        /// The user as it will be (version and history are set by the store).
        after: Box<User>,
    },
    /// Delete `user`.
    Delete {
        /// The line of the row.
        line: usize,
        /// The user as read.
        user: Box<User>,
    },
}

/// Row counts of a checked file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Users to create.
    pub created: u64,
    /// Users to change.
    pub updated: u64,
    /// Users to delete.
    pub deleted: u64,
    /// EDIT rows that change nothing.
    pub unchanged: u64,
}

/// The writes a valid file makes, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One entry per row that changes something.
    pub changes: Vec<Planned>,
    /// Counts by kind.
    pub counts: Counts,
}

/// Checks every row of `file` against `dir`, taking each row's action into the plan (the rows
/// keep their line, operation and login id for reports): the users NEW rows create as they
/// were read, and the users that EDIT and DELETE rows name out of `dir`. `uploader` is the
/// admin who uploaded the file (a row touching their own account is refused).
pub fn check(
    file: &mut ParsedFile,
    dir: &mut Directory,
    uploader: Option<&UserId>,
) -> Result<Plan, Vec<RowProblem>> {
    let mut problems = file.problems.clone();
    let mut changes = Vec::with_capacity(file.rows.len());
    let mut counts = Counts::default();
    let policy = dir.tenant.billing;
    // Seat and admin bookkeeping, to check the limits once every row is known.
    let mut seat_takers: Vec<usize> = Vec::new();
    let mut seats_freed: u64 = 0;
    let mut admin_removers: Vec<usize> = Vec::new();
    let mut admins_added: u64 = 0;

    for row in &mut file.rows {
        let Some((login, action)) = row.action.take() else {
            continue;
        };
        let line = row.line;
        let before = problems.len();
        let key = login.key();
        match action {
            RowAction::New(user) => {
                if dir.users.contains_key(key.as_ref()) {
                    problems.push(RowProblem::custom(
                        line,
                        Some(Column::LoginId),
                        "login_id_taken",
                        "このログインIDはすでに使われています。",
                        "This login id is already taken.",
                    ));
                }
                if dir
                    .email_owners
                    .contains_key(user.profile.email.key().as_ref())
                {
                    problems.push(RowProblem::custom(
                        line,
                        Some(Column::Email),
                        "email_taken",
                        "このメールアドレスはすでに使われています。",
                        "This email address is already taken.",
                    ));
                }
                if let Err(e) = dir.tenant.role_catalogue.check(&user.profile.app_roles) {
                    problems.push(RowProblem::new(line, Some(Column::AppRoles), &e));
                }
                if problems.len() == before {
                    if policy.holds_seat(user.status) {
                        seat_takers.push(line);
                    }
                    counts.created += 1;
                    changes.push(Planned::Create { line, user });
                }
            }
            RowAction::Edit(c) => {
                let current = match target(line, dir.users.remove(key.as_ref())) {
                    Ok(u) => u,
                    Err(p) => {
                        problems.push(p);
                        continue;
                    }
                };
                let catalogue = &dir.tenant.role_catalogue;
                let Some(after) = edited(line, &current, *c, catalogue, &mut problems) else {
                    continue;
                };
                if after == *current {
                    // The uploader's own row as an export writes it changes nothing: fine.
                    counts.unchanged += 1;
                    continue;
                }
                if uploader == Some(&current.id) {
                    problems.push(own_account_changed(line, &current, &after));
                    continue;
                }
                match (
                    policy.holds_seat(current.status),
                    policy.holds_seat(after.status),
                ) {
                    (false, true) => seat_takers.push(line),
                    (true, false) => seats_freed += 1,
                    _ => {}
                }
                match (current.is_active_admin(), after.is_active_admin()) {
                    (true, false) => admin_removers.push(line),
                    (false, true) => admins_added += 1,
                    _ => {}
                }
                counts.updated += 1;
                changes.push(Planned::Update {
                    line,
                    before: current,
                    after: Box::new(after),
                });
            }
            RowAction::Delete => {
                let current = match target(line, dir.users.remove(key.as_ref())) {
                    Ok(u) => u,
                    Err(p) => {
                        problems.push(p);
                        continue;
                    }
                };
                if uploader == Some(&current.id) {
                    problems.push(RowProblem::custom(
                        line,
                        Some(Column::Operation),
                        "own_account",
                        "取り込みを行う管理者自身のアカウントは削除できません。",
                        "The file can't delete the account of the admin who uploads it.",
                    ));
                    continue;
                }
                // Its email and login id are free for later rows of the file (the apply
                // deletes before it creates: see `order_for_apply` and the plan's chunks).
                if dir.email_owners.get(current.profile.email.key().as_ref()) == Some(&current.id) {
                    dir.email_owners
                        .remove(current.profile.email.key().as_ref());
                }
                if policy.holds_seat(current.status) {
                    seats_freed += 1;
                }
                if current.is_active_admin() {
                    admin_removers.push(line);
                }
                counts.deleted += 1;
                changes.push(Planned::Delete {
                    line,
                    user: current,
                });
            }
        }
    }

    if let Some(limit) = dir.tenant.seat_limit {
        let available = (u64::from(limit) + seats_freed).saturating_sub(dir.seats.used(policy));
        for &line in seat_takers.iter().skip(available as usize) {
            problems.push(RowProblem::new(
                line,
                None,
                &SeatsExceeded {
                    limit,
                    needed: seat_takers.len() as u64,
                    available,
                },
            ));
        }
    }
    let admins_left =
        (dir.active_admins + admins_added).saturating_sub(admin_removers.len() as u64);
    if admins_left == 0 {
        for &line in &admin_removers {
            problems.push(RowProblem::custom(
                line,
                None,
                "last_admin",
                "有効な管理者が1人もいなくなります。",
                "The tenant would be left without an active admin.",
            ));
        }
    }

    if problems.is_empty() {
        Ok(Plan { changes, counts })
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// The user an EDIT or DELETE row names: it must exist.
fn target(line: usize, existing: Option<Box<User>>) -> Result<Box<User>, RowProblem> {
    existing.ok_or_else(|| {
        RowProblem::custom(
            line,
            Some(Column::LoginId),
            "user_not_found",
            "このログインIDのユーザーはいません。",
            "No user has this login id.",
        )
    })
}

/// The columns in which `after` differs from `before`, in the file's column order.
fn changed_columns(before: &User, after: &User) -> Vec<Column> {
    [
        (Column::Name, before.profile.name != after.profile.name),
        (Column::Role, before.profile.role != after.profile.role),
        (
            Column::AppRoles,
            before.profile.app_roles != after.profile.app_roles,
        ),
        (
            Column::Groups,
            before.profile.groups != after.profile.groups,
        ),
        (
            Column::Organization,
            before.profile.organization != after.profile.organization,
        ),
        (
            Column::Department,
            before.profile.department != after.profile.department,
        ),
        (Column::Phone, before.profile.phone != after.profile.phone),
        (Column::Notes, before.profile.notes != after.profile.notes),
        (
            Column::Language,
            before.profile.language != after.profile.language,
        ),
        (
            Column::LoginHours,
            before.profile.login_hours != after.profile.login_hours,
        ),
        (
            Column::TwoStep,
            before.profile.two_step != after.profile.two_step,
        ),
        (
            Column::ValidFrom,
            before.profile.validity.from() != after.profile.validity.from(),
        ),
        (
            Column::ValidTill,
            before.profile.validity.till() != after.profile.validity.till(),
        ),
        (Column::Disabled, before.status != after.status),
    ]
    .into_iter()
    .filter_map(|(c, changed)| changed.then_some(c))
    .collect()
}

/// An EDIT row that would change the uploader's own account: refused, naming what it would
/// change (on the first such column). An admin changes their own account on their own page,
/// so a file can never lock its uploader out or demote them halfway through.
fn own_account_changed(line: usize, before: &User, after: &User) -> RowProblem {
    let columns = changed_columns(before, after);
    let names = columns
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ");
    RowProblem::custom(
        line,
        columns.first().copied(),
        "own_account",
        format!(
            "取り込みを行う管理者自身のアカウントは変更できません（変更される項目: {names}）。この行を元の値に戻すか、削除してください。"
        ),
        format!(
            "The file can't change the account of the admin who uploads it (this row would change: {names}). Restore the row's values or remove the row."
        ),
    )
}

/// The seat limit leaves too few seats for the rows that take one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeatsExceeded {
    limit: u32,
    needed: u64,
    available: u64,
}

impl Localized for SeatsExceeded {
    fn code(&self) -> &'static str {
        "seat_limit_reached"
    }
    fn message(&self, lang: Language) -> String {
        let SeatsExceeded {
            limit,
            needed,
            available,
        } = *self;
        match lang {
            Language::Ja => format!(
                "席数の上限（{limit}）を超えます。このファイルで {needed} 席が必要ですが、空きは {available} 席です。"
            ),
            Language::En => format!(
                "The seat limit ({limit}) would be exceeded: the file needs {needed} seats and {available} are free."
            ),
        }
    }
}

/// The user as an EDIT row leaves it, or `None` with the row's problems recorded. The rules
/// are [`User::apply`]'s; the import adds one of its own: a row can't change an email (it
/// may write the user's own, in any case, as an export does).
fn edited(
    line: usize,
    current: &User,
    mut patch: UserPatch,
    catalogue: &RoleCatalogue,
    problems: &mut Vec<RowProblem>,
) -> Option<User> {
    let mut email_changed = false;
    if let Change::Set(email) = &patch.email {
        email_changed = email.key() != current.profile.email.key();
        patch.email = Change::Leave;
    }
    if email_changed {
        problems.push(RowProblem::custom(
            line,
            Some(Column::Email),
            "email_change_not_allowed",
            "取り込みではメールアドレスを変更できません。ユーザーの画面から変更してください。",
            "An import can't change an email address; change it on the user's page.",
        ));
    }
    match current.apply(&patch, catalogue) {
        Ok(edited) if !email_changed => Some(edited.user),
        Ok(_) => None,
        Err(refused) => {
            problems.extend(refused.into_iter().map(|p| row_problem(line, p)));
            None
        }
    }
}

/// A field an edit can't apply, as the row's problem in the field's column.
fn row_problem(line: usize, p: PatchProblem) -> RowProblem {
    let column = match p.field {
        PatchField::LoginId => Column::LoginId,
        PatchField::Email => Column::Email,
        PatchField::Name => Column::Name,
        PatchField::Role => Column::Role,
        PatchField::AppRoles => Column::AppRoles,
        PatchField::Groups => Column::Groups,
        PatchField::Organization => Column::Organization,
        PatchField::Department => Column::Department,
        PatchField::Phone => Column::Phone,
        PatchField::Notes => Column::Notes,
        PatchField::Language | PatchField::TimeZone => Column::Language,
        PatchField::ValidFrom => Column::ValidFrom,
        PatchField::ValidTill => Column::ValidTill,
        PatchField::LoginHours => Column::LoginHours,
        PatchField::TwoStep => Column::TwoStep,
        PatchField::Disabled => Column::Disabled,
    };
    RowProblem::custom(line, Some(column), p.code, p.message_ja, p.message_en)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::encoding::EncodingChoice;
    use crate::domain::{
        AppRole, DisplayName, Email, LoginId, Profile, Role, RoleCatalogue, Status, TenantId,
        ValidityWindow,
    };
    use crate::import::parse_file;
    use crate::import::rows::creating_for_tests as creating;
    use chrono::{DateTime, TimeZone as _, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap()
    }

    fn user(login: &str, role: Role, status: Status) -> User {
        let mut u = User::new(
            TenantId::parse("acme").unwrap(),
            UserId::generate(),
            Profile::minimal(
                LoginId::parse(login).unwrap(),
                Email::parse(&format!("{login}@example.com")).unwrap(),
                DisplayName::parse(login).unwrap(),
                role,
            ),
            status,
            now() - chrono::Duration::days(30),
        );
        u.has_password = status != Status::Invited;
        u
    }

    fn directory(users: &[User]) -> Directory {
        let mut tenant = Tenant::new(
            TenantId::parse("acme").unwrap(),
            DisplayName::parse("Acme").unwrap(),
        );
        tenant.role_catalogue = RoleCatalogue::new([AppRole::parse("crm:viewer").unwrap()]);
        Directory {
            tenant,
            seats: SeatUsage {
                active: users.iter().filter(|u| u.status == Status::Active).count() as u64,
                active_or_invited: users
                    .iter()
                    .filter(|u| u.status != Status::Suspended)
                    .count() as u64,
            },
            active_admins: users.iter().filter(|u| u.is_active_admin()).count() as u64,
            users: users
                .iter()
                .map(|u| (u.profile.login_id.key().into_owned(), Box::new(u.clone())))
                .collect(),
            email_owners: users
                .iter()
                .map(|u| (u.profile.email.key().into_owned(), u.id))
                .collect(),
        }
    }

    fn run(
        text: &str,
        dir: &Directory,
        uploader: Option<&UserId>,
    ) -> Result<Plan, Vec<RowProblem>> {
        let mut file = parse_file(text.as_bytes(), EncodingChoice::Auto, 100, creating()).unwrap();
        check(&mut file, &mut dir.clone(), uploader)
    }

    fn codes(problems: &[RowProblem]) -> Vec<(usize, &'static str)> {
        problems.iter().map(|p| (p.line, p.code)).collect()
    }

    #[test]
    fn a_valid_file_plans_one_change_per_row() {
        let admin = user("boss", Role::Admin, Status::Active);
        let dir = directory(&[
            admin.clone(),
            user("hanako", Role::Member, Status::Active),
            user("jiro", Role::Member, Status::Invited),
            user("same", Role::Member, Status::Active),
        ]);
        let plan = run(
            "operation,login_id,name,email,department,disabled\r\n\
             NEW,taro,Taro,taro@example.com,Sales,\r\n\
             EDIT,hanako,,HANAKO@example.com,Sales,1\r\n\
             DELETE,jiro,,,,\r\n\
             EDIT,same,same,,,0\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap();
        assert_eq!(
            plan.counts,
            Counts {
                created: 1,
                updated: 1,
                deleted: 1,
                unchanged: 1
            }
        );
        let Planned::Create { user: created, .. } = &plan.changes[0] else {
            panic!("a create")
        };
        assert_eq!(created.status, Status::Invited);
        assert_eq!(
            created.profile.department.as_ref().unwrap().as_str(),
            "Sales"
        );
        let Planned::Update { after, .. } = &plan.changes[1] else {
            panic!("an update")
        };
        assert_eq!(after.status, Status::Suspended);
        assert_eq!(
            after.profile.email.as_str(),
            "hanako@example.com",
            "same email, any case"
        );
    }

    #[test]
    fn the_users_a_file_edits_or_deletes_move_from_the_directory_into_the_plan() {
        let admin = user("boss", Role::Admin, Status::Active);
        let mut dir = directory(&[
            admin.clone(),
            user("hanako", Role::Member, Status::Active),
            user("jiro", Role::Member, Status::Invited),
        ]);
        let mut file = parse_file(
            b"operation,login_id,name\r\nEDIT,hanako,Hanako Sato\r\nDELETE,jiro,\r\n",
            EncodingChoice::Auto,
            100,
            creating(),
        )
        .unwrap();
        let plan = check(&mut file, &mut dir, Some(&admin.id)).unwrap();
        let mut left: Vec<&String> = dir.users.keys().collect();
        left.sort();
        assert_eq!(left, vec!["boss"]);
        let Planned::Update { before, after, .. } = &plan.changes[0] else {
            panic!("an update")
        };
        assert_eq!(before.profile.name.as_str(), "hanako");
        assert_eq!(after.profile.name.as_str(), "Hanako Sato");
        assert!(
            matches!(&plan.changes[1], Planned::Delete { user, .. } if user.profile.login_id.as_str() == "jiro")
        );
    }

    #[test]
    fn a_user_named_on_two_rows_is_refused_once_as_a_duplicate() {
        let admin = user("boss", Role::Admin, Status::Active);
        let dir = directory(&[admin.clone(), user("hanako", Role::Member, Status::Active)]);
        let problems = run(
            "operation,login_id,name\r\nEDIT,hanako,A\r\nDELETE,Hanako,\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(3, "duplicate_in_file")]);
    }

    #[test]
    fn rows_that_clash_with_the_directory_are_each_refused() {
        let admin = user("boss", Role::Admin, Status::Active);
        let dir = directory(&[
            admin.clone(),
            user("hanako", Role::Member, Status::Active),
            user("ichiro", Role::Member, Status::Active),
        ]);
        let problems = run(
            "operation,login_id,name,email,app_roles\r\n\
             NEW,Hanako,Hanako,new@example.com,\r\n\
             NEW,taro,Taro,HANAKO@example.com,crm:admin\r\n\
             EDIT,ghost,,,\r\n\
             DELETE,nobody,,,\r\n\
             EDIT,ichiro,,ichiro@other.example,\r\n\
             DELETE,boss,,,\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap_err();
        assert_eq!(
            codes(&problems),
            vec![
                (2, "login_id_taken"),
                (3, "email_taken"),
                (3, "app_role_unknown"),
                (4, "user_not_found"),
                (5, "user_not_found"),
                (6, "email_change_not_allowed"),
                (7, "own_account"),
            ]
        );
    }

    #[test]
    fn the_seat_limit_counts_the_seats_a_file_frees_and_takes() {
        let admin = user("boss", Role::Admin, Status::Active);
        let mut dir = directory(&[admin.clone(), user("old", Role::Member, Status::Active)]);
        dir.tenant.seat_limit = Some(3);
        let file = "operation,login_id,name,email\r\n\
                    DELETE,old,,\r\n\
                    NEW,a,A,a@example.com\r\n\
                    NEW,b,B,b@example.com\r\n";
        assert!(
            run(file, &dir, Some(&admin.id)).is_ok(),
            "2 used, 1 freed, 2 taken"
        );
        let problems = run(
            &format!("{file}NEW,c,C,c@example.com\r\n"),
            &dir,
            Some(&admin.id),
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(5, "seat_limit_reached")]);
        assert!(
            problems[0]
                .message_en
                .contains("needs 3 seats and 2 are free")
        );
        dir.tenant.billing.count_invited = false;
        assert!(
            run(
                &format!("{file}NEW,c,C,c@example.com\r\n"),
                &dir,
                Some(&admin.id)
            )
            .is_ok(),
            "invited users take no seat when the tenant does not bill them"
        );
    }

    #[test]
    fn a_file_can_not_remove_the_last_active_admin() {
        let other = user("other", Role::Admin, Status::Active);
        let dir = directory(std::slice::from_ref(&other));
        let problems = run(
            "operation,login_id,role\r\nEDIT,other,member\r\n",
            &dir,
            None,
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "last_admin")]);
    }

    #[test]
    fn the_uploaders_own_row_is_fine_unchanged_and_refused_when_it_changes_something() {
        let admin = user("boss", Role::Admin, Status::Active);
        let dir = directory(&[admin.clone(), user("hanako", Role::Member, Status::Active)]);
        // As an export writes it: the same values.
        let plan = run(
            "operation,login_id,name,email,role,disabled\r\nEDIT,boss,boss,boss@example.com,admin,0\r\nEDIT,hanako,Hanako,,,\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap();
        assert_eq!(plan.counts.unchanged, 1);
        assert_eq!(plan.counts.updated, 1);

        let problems = run(
            "operation,login_id,name,role,disabled\r\nEDIT,boss,Boss,member,1\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "own_account")]);
        assert_eq!(problems[0].column, Some(Column::Name));
        assert!(
            problems[0]
                .message_en
                .contains("would change: name, role, disabled"),
            "{}",
            problems[0].message_en
        );
        let problems = run(
            "operation,login_id\r\nDELETE,boss\r\n",
            &dir,
            Some(&admin.id),
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "own_account")]);
    }

    #[test]
    fn a_deleted_users_email_and_login_id_are_free_for_later_rows_only() {
        let dir = directory(&[
            user("exist1", Role::Member, Status::Active),
            user("exist2", Role::Member, Status::Active),
        ]);
        let plan = run(
            "operation,login_id,name,email\r\n\
             DELETE,exist1,,\r\n\
             NEW,newbie,New Person,exist1@example.com\r\n\
             DELETE,exist2,,\r\n\
             NEW,exist2,Second Life,second@example.com\r\n",
            &dir,
            None,
        )
        .unwrap();
        assert_eq!((plan.counts.created, plan.counts.deleted), (2, 2));

        // A NEW row above the DELETE row finds the email still taken.
        let problems = run(
            "operation,login_id,name,email\r\nNEW,newbie,New Person,exist1@example.com\r\nDELETE,exist1,,\r\n",
            &dir,
            None,
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "email_taken")]);
    }

    #[test]
    fn an_edit_window_is_checked_against_the_stored_end() {
        let mut u = user("hanako", Role::Member, Status::Active);
        u.profile.validity = ValidityWindow::new(None, Some(now())).unwrap();
        let dir = directory(&[u]);
        let problems = run(
            "operation,login_id,valid_from\r\nEDIT,hanako,2027/01/01\r\n",
            &dir,
            None,
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "validity_window_invalid")]);
        assert_eq!(problems[0].column, Some(Column::ValidTill));
    }

    #[test]
    fn new_rows_may_create_suspended_users_who_take_no_seat() {
        let mut dir = directory(&[]);
        dir.tenant.seat_limit = Some(0);
        let plan = run(
            "operation,login_id,name,email,disabled\r\nNEW,taro,Taro,taro@example.com,1\r\n",
            &dir,
            None,
        )
        .unwrap();
        let Planned::Create { user, .. } = &plan.changes[0] else {
            panic!("a create")
        };
        assert_eq!(user.status, Status::Suspended);
    }

    #[test]
    fn problems_found_while_reading_are_kept() {
        let dir = directory(&[]);
        let problems = run(
            "operation,login_id,name,email\r\nNEW,taro,,taro@example.com\r\n",
            &dir,
            None,
        )
        .unwrap_err();
        assert_eq!(codes(&problems), vec![(2, "required")]);
    }
}
