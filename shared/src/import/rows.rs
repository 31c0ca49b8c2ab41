//! From a file's bytes to typed rows: decode, read the CSV, read the header, then turn every
//! row into domain values, collecting every problem of every row with its line and column.
//! Nothing here reads the directory; [`crate::import::check`] compares the rows with it.
//!
//! Over 600 lines with its tests (about 300): the reading is some 530.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use std::fmt;

use super::columns::{Column, Header};
use super::datetime::parse_datetime;
use super::duplicates::Duplicates;
use super::{FileProblem, RowProblem};
use crate::csv::encoding::{EncodingChoice, FileEncoding, decode};
use crate::csv::{Records, is_blank, restore};
use crate::domain::{
    AppRoles, Change, DisplayName, Email, Groups, Language, Localized, LoginHours, LoginId, Notes,
    Phone, Profile, Role, SetError, ShortText, Status, TenantId, User, UserId, UserPatch,
    ValidityWindow, trim,
};

/// What a row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// Create a user.
    New,
    /// Change a user found by login id.
    Edit,
    /// Delete a user found by login id.
    Delete,
}

impl Operation {
    /// `NEW`, `EDIT` or `DELETE`, as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::New => "NEW",
            Operation::Edit => "EDIT",
            Operation::Delete => "DELETE",
        }
    }

    /// Reads an operation in any case, or its Japanese name (`新規`, `編集`, `削除`…).
    pub fn parse(s: &str) -> Option<Operation> {
        let s = trim(s);
        if s.eq_ignore_ascii_case("new") {
            return Some(Operation::New);
        }
        if s.eq_ignore_ascii_case("edit") {
            return Some(Operation::Edit);
        }
        if s.eq_ignore_ascii_case("delete") {
            return Some(Operation::Delete);
        }
        match s {
            "新規" | "追加" | "登録" => Some(Operation::New),
            "編集" | "変更" | "更新" => Some(Operation::Edit),
            "削除" => Some(Operation::Delete),
            _ => None,
        }
    }
}

/// A row turned into what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RowAction {
    /// Create this user: invited, or suspended if the row says `disabled` (then no invitation
    /// is sent). Built as the row is read, so that the plan takes it as it is.
    New(Box<User>),
    /// Change the user with the row's login id. The row's email, if it has one, must be the
    /// user's (an import can't change an email): the check compares it and leaves it.
    Edit(Box<UserPatch>),
    /// Delete the user with the row's login id.
    Delete,
}

/// One row of a file, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    /// The line the row starts on.
    pub line: usize,
    /// The operation, if the row names a valid one.
    pub operation: Option<Operation>,
    /// The login id cell as written (trimmed), for reports.
    pub login_text: CompactString,
    /// The login id and the action, if the row has no problem of its own.
    pub action: Option<(LoginId, RowAction)>,
}

/// A file read into rows.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// The encoding the file was in.
    pub encoding: FileEncoding,
    /// The header.
    pub header: Header,
    /// Every non-blank row, in file order.
    pub rows: Vec<ParsedRow>,
    /// Every problem found in the rows, in file order.
    pub problems: Vec<RowProblem>,
}

/// What NEW rows need to build the users they create.
#[derive(Clone, Copy)]
pub struct Creating<'a> {
    /// The tenant the file is imported into.
    pub tenant: &'a TenantId,
    /// The job's time: when the users are created.
    pub at: DateTime<Utc>,
    /// The id of the user that the NEW row on a line creates (the same file always plans the
    /// same ids).
    pub ids: &'a dyn Fn(usize) -> UserId,
}

impl fmt::Debug for Creating<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Creating")
            .field("tenant", self.tenant)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// Reads a whole import file: decode, CSV, header, rows. A problem with the file as a whole
/// is an `Err`; problems of single rows are listed in the result. A NEW row without problems
/// of its own holds the user it creates, built with `creating`.
pub fn parse_file(
    bytes: &[u8],
    encoding: EncodingChoice,
    max_rows: usize,
    creating: Creating<'_>,
) -> Result<ParsedFile, FileProblem> {
    let decoded = decode(bytes, encoding)?;
    let mut records = Records::new(&decoded.text);
    let mut cells = Vec::new();
    loop {
        match records.read_into(&mut cells) {
            None => return Err(FileProblem::Empty),
            Some(line) => {
                line?;
                if !is_blank(&cells) {
                    break;
                }
            }
        }
    }
    let header = Header::parse(&cells).map_err(FileProblem::Header)?;
    // Room for the rows at once, rather than growing a 100,000-row vector step by step. A row
    // that names a user takes well over 64 bytes, so this is seldom short; room reserved and
    // never written takes no memory.
    let expected = (decoded.text.len() / 64).min(max_rows);
    let mut reader = RowReader::new(&header, expected, creating);
    let mut rows = Vec::with_capacity(expected);
    while let Some(line) = records.read_into(&mut cells) {
        let line = line?;
        if is_blank(&cells) {
            continue;
        }
        if rows.len() == max_rows {
            return Err(FileProblem::TooManyRows { limit: max_rows });
        }
        rows.push(reader.row(rows.len(), line, &cells));
    }
    if rows.is_empty() {
        return Err(FileProblem::NoRows);
    }
    let problems = reader.finish(&mut rows);
    Ok(ParsedFile {
        encoding: decoded.encoding,
        header,
        rows,
        problems,
    })
}

/// Reads rows against a header, collecting problems and watching for duplicates.
struct RowReader<'h> {
    header: &'h Header,
    creating: Creating<'h>,
    positions: [Option<usize>; Column::ALL.len()],
    problems: Vec<RowProblem>,
    duplicates: Duplicates,
}

impl<'h> RowReader<'h> {
    fn new(header: &'h Header, rows: usize, creating: Creating<'h>) -> Self {
        let mut positions = [None; Column::ALL.len()];
        for (i, c) in header.columns().iter().enumerate() {
            positions[*c as usize] = Some(i);
        }
        RowReader {
            header,
            creating,
            positions,
            problems: Vec::new(),
            duplicates: Duplicates::with_capacity(rows),
        }
    }

    fn finish(mut self, rows: &mut [ParsedRow]) -> Vec<RowProblem> {
        self.duplicates.refuse(rows, &mut self.problems);
        self.problems.sort_by_key(|p| p.line);
        self.problems
    }

    /// Reads the row that will be `rows[index]`.
    fn row(&mut self, index: usize, line: usize, cells: &[Cow<'_, str>]) -> ParsedRow {
        let before = self.problems.len();
        if cells.len() > self.header.columns().len() {
            self.problems.push(RowProblem::custom(
                line,
                None,
                "row_too_many_cells",
                format!(
                    "セルが {} 個あり、見出しの {} 個より多くなっています。",
                    cells.len(),
                    self.header.columns().len()
                ),
                format!(
                    "The row has {} cells, more than the header's {}.",
                    cells.len(),
                    self.header.columns().len()
                ),
            ));
        }
        let mut row = Cells {
            line,
            cells,
            positions: &self.positions,
            problems: &mut self.problems,
            problems_before: before,
        };
        let op_text = row.text(Column::Operation);
        let operation = Operation::parse(op_text);
        if operation.is_none() {
            let (code, ja, en) = if op_text.is_empty() {
                (
                    "operation_required",
                    "操作（NEW / EDIT / DELETE）を入力してください。",
                    "Give the operation: NEW, EDIT or DELETE.",
                )
            } else {
                (
                    "operation_invalid",
                    "操作は NEW、EDIT、DELETE のいずれかです。",
                    "The operation must be NEW, EDIT or DELETE.",
                )
            };
            row.problem(Column::Operation, code, ja, en);
        }
        let login_text = CompactString::from(row.text(Column::LoginId));
        let login = row.required(Column::LoginId, LoginId::parse);
        let action = match operation {
            Some(Operation::New) => row.new_user(login.clone(), self.creating),
            Some(Operation::Edit) => row.changes(),
            Some(Operation::Delete) | None => Some(RowAction::Delete),
        };
        let clean = self.problems.len() == before;
        let action = match (clean, operation, login, action) {
            (true, Some(_), Some(login), Some(action)) => {
                self.duplicates.remember(index, &login, &action);
                Some((login, action))
            }
            _ => None,
        };
        ParsedRow {
            line,
            operation,
            login_text,
            action,
        }
    }
}

/// The cells of one row, read column by column.
struct Cells<'a, 'p> {
    line: usize,
    cells: &'a [Cow<'a, str>],
    positions: &'a [Option<usize>; Column::ALL.len()],
    problems: &'p mut Vec<RowProblem>,
    /// How many problems there were before this row: more, and the row is refused.
    problems_before: usize,
}

impl<'a> Cells<'a, '_> {
    /// The trimmed cell of `column`, formula neutralisation undone; empty if the file lacks
    /// the column or the row the cell.
    fn text(&self, column: Column) -> &'a str {
        self.positions[column as usize]
            .and_then(|i| self.cells.get(i))
            .map_or("", |c| trim(restore(c)))
    }

    fn present(&self, column: Column) -> bool {
        self.positions[column as usize].is_some()
    }

    fn problem(&mut self, column: Column, code: &'static str, ja: &str, en: &str) {
        self.problems
            .push(RowProblem::custom(self.line, Some(column), code, ja, en));
    }

    fn domain<T, E: Localized>(
        &mut self,
        column: Column,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems
                    .push(RowProblem::new(self.line, Some(column), &e));
                None
            }
        }
    }

    fn required<T, E: Localized>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.text(column);
        if text.is_empty() {
            self.problem(
                column,
                "required",
                &format!("「{}」を入力してください。", column.name()),
                &format!("{} is required.", column.name()),
            );
            return None;
        }
        self.domain(column, text, parse)
    }

    /// `None`: absent or blank; `Some(None)`: the cell could not be read (a problem is
    /// recorded); `Some(Some(v))`: a value.
    fn optional<T, E: Localized>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        let text = self.text(column);
        if text.is_empty() {
            return None;
        }
        Some(self.domain(column, text, parse))
    }

    /// For EDIT: absent column → leave alone; blank cell → clear; value → set. A value that
    /// could not be read records a problem (the row is then refused, whatever is returned).
    fn clearable<T, E: Localized>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Change<T> {
        if !self.present(column) {
            return Change::Leave;
        }
        match self.optional(column, parse) {
            None => Change::Clear,
            Some(Some(v)) => Change::Set(v),
            Some(None) => Change::Leave,
        }
    }

    /// For EDIT: a blank cell or an absent column leaves the field alone (it can't be cleared).
    fn settable<T, E: Localized>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Change<T> {
        match self.optional(column, parse).flatten() {
            Some(v) => Change::Set(v),
            None => Change::Leave,
        }
    }

    fn set<T>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, SetError>,
    ) -> Option<T> {
        let text = self.text(column);
        self.domain(column, text, parse)
    }

    /// For EDIT, a set: absent column → leave alone; a blank cell clears it (it reads as an
    /// empty set); names → set.
    fn set_change<T>(
        &mut self,
        column: Column,
        parse: impl FnOnce(&str) -> Result<T, SetError>,
    ) -> Change<T> {
        if !self.present(column) {
            return Change::Leave;
        }
        self.set(column, parse).map_or(Change::Leave, Change::Set)
    }

    fn validity(&mut self) -> (Change<DateTime<Utc>>, Change<DateTime<Utc>>) {
        let from = self.clearable(Column::ValidFrom, parse_datetime);
        let till = self.clearable(Column::ValidTill, parse_datetime);
        (from, till)
    }

    fn two_step(&mut self) -> Option<bool> {
        match self.text(Column::TwoStep) {
            "" => None,
            "0" => Some(false),
            "1" => Some(true),
            _ => {
                self.problem(
                    Column::TwoStep,
                    "two_step_invalid",
                    "2段階認証は 0（使わない）か 1（使う）で指定してください。",
                    "two_step must be 0 (off) or 1 (on).",
                );
                None
            }
        }
    }

    fn disabled(&mut self) -> Option<bool> {
        match self.text(Column::Disabled) {
            "" => None,
            "0" => Some(false),
            "1" => Some(true),
            _ => {
                self.problem(
                    Column::Disabled,
                    "disabled_invalid",
                    "無効は 0（利用可）か 1（利用停止）で指定してください。",
                    "disabled must be 0 (enabled) or 1 (suspended).",
                );
                None
            }
        }
    }

    fn new_user(&mut self, login: Option<LoginId>, creating: Creating<'_>) -> Option<RowAction> {
        let name = self.required(Column::Name, DisplayName::parse);
        let email = self.required(Column::Email, Email::parse);
        let role = match self.optional(Column::Role, str::parse::<Role>) {
            None => Some(Role::Member),
            Some(r) => r,
        };
        let app_roles = self.set(Column::AppRoles, |s| AppRoles::parse(split_set(s)));
        let groups = self.set(Column::Groups, |s| Groups::parse(split_set(s)));
        let organization = self.optional(Column::Organization, ShortText::parse);
        let department = self.optional(Column::Department, ShortText::parse);
        let phone = self.optional(Column::Phone, Phone::parse);
        let notes = self.optional(Column::Notes, Notes::parse);
        let language = self.optional(Column::Language, str::parse::<Language>);
        let login_hours = self.optional(Column::LoginHours, LoginHours::parse);
        let two_step = self.two_step().unwrap_or(false);
        let (from, till) = self.validity();
        let disabled = self.disabled().unwrap_or(false);
        let value = |c: Change<DateTime<Utc>>| match c {
            Change::Set(t) => Some(t),
            Change::Leave | Change::Clear => None,
        };
        let validity = self.window(value(from), value(till));
        if self.problems.len() != self.problems_before {
            // Refused: no user to build.
            return None;
        }
        let new = Profile {
            login_id: login?,
            email: email?,
            name: name?,
            role: role?,
            app_roles: app_roles?,
            groups: groups?,
            organization: organization.flatten(),
            department: department.flatten(),
            phone: phone.flatten(),
            notes: notes.flatten(),
            language: language.flatten(),
            time_zone: None,
            validity: validity?,
            login_hours: login_hours.flatten(),
            two_step,
        };
        let status = if disabled {
            Status::Suspended
        } else {
            Status::Invited
        };
        let id = (creating.ids)(self.line);
        Some(RowAction::New(Box::new(User::new(
            creating.tenant.clone(),
            id,
            new,
            status,
            creating.at,
        ))))
    }

    fn window(
        &mut self,
        from: Option<DateTime<Utc>>,
        till: Option<DateTime<Utc>>,
    ) -> Option<ValidityWindow> {
        self.domain(Column::ValidTill, "", |_| ValidityWindow::new(from, till))
    }

    fn changes(&mut self) -> Option<RowAction> {
        let app_roles = self.set_change(Column::AppRoles, |s| AppRoles::parse(split_set(s)));
        let groups = self.set_change(Column::Groups, |s| Groups::parse(split_set(s)));
        let (valid_from, valid_till) = self.validity();
        if let (Change::Set(f), Change::Set(t)) = (&valid_from, &valid_till)
            && t <= f
        {
            self.window(Some(*f), Some(*t));
        }
        let patch = UserPatch {
            name: self.settable(Column::Name, DisplayName::parse),
            email: self.settable(Column::Email, Email::parse),
            role: self.settable(Column::Role, str::parse::<Role>),
            app_roles,
            groups,
            organization: self.clearable(Column::Organization, ShortText::parse),
            department: self.clearable(Column::Department, ShortText::parse),
            phone: self.clearable(Column::Phone, Phone::parse),
            notes: self.clearable(Column::Notes, Notes::parse),
            language: self.clearable(Column::Language, str::parse::<Language>),
            login_hours: self.clearable(Column::LoginHours, LoginHours::parse),
            two_step: self.two_step(),
            valid_from,
            valid_till,
            disabled: self.disabled(),
            ..UserPatch::default()
        };
        Some(RowAction::Edit(Box::new(patch)))
    }
}

/// The names of a multi-valued cell: separated by `|` or line breaks, trimmed, blanks dropped.
pub fn split_set(cell: &str) -> impl Iterator<Item = &str> {
    // Split on the bytes: the separators are ASCII, so every piece is whole characters.
    cell.as_bytes()
        .split(|b| matches!(b, b'|' | b'\n' | b'\r'))
        .scan(0, move |start, piece| {
            let text = &cell[*start..*start + piece.len()];
            *start += piece.len() + 1;
            Some(trim(text))
        })
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
pub(crate) fn creating_for_tests() -> Creating<'static> {
    use chrono::TimeZone as _;
    static TENANT: std::sync::LazyLock<TenantId> =
        std::sync::LazyLock::new(|| TenantId::parse("acme").expect("a tenant id"));
    Creating {
        tenant: &TENANT,
        at: Utc.with_ymd_and_hms(2026, 11, 21, 3, 0, 0).unwrap(),
        ids: &|_| UserId::generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::CsvWriter;
    use crate::csv::encoding::encode_shift_jis;
    use crate::import::format_datetime;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    const HEADER: &str = "operation,login_id,name,email,role,app_roles,groups,organization,department,phone,notes,language,valid_from,valid_till,disabled\r\n";

    fn parse(text: &str) -> ParsedFile {
        parse_file(
            text.as_bytes(),
            EncodingChoice::Auto,
            2_000,
            creating_for_tests(),
        )
        .unwrap()
    }

    fn codes(f: &ParsedFile) -> Vec<(usize, Option<&'static str>, &'static str)> {
        f.problems
            .iter()
            .map(|p| (p.line, p.column.map(Column::name), p.code))
            .collect()
    }

    #[test]
    fn new_edit_and_delete_rows_read_into_actions() {
        let text = format!(
            "{HEADER}NEW,taro,山田 太郎,Taro@Example.com,admin,crm:viewer|crm:editor,\"営業\n東京\",Acme,Sales,03-1234-5678,'=memo,ja,2026/04/01 09:00,2027/3/31 18:30,0\r\n\
             edit,hanako,,,,,,,,,,,,,1\r\n\
             削除,jiro,,,,,,,,,,,,,\r\n"
        );
        let f = parse(&text);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.rows.len(), 3);
        let (login, RowAction::New(user)) = f.rows[0].action.clone().unwrap() else {
            panic!("a NEW row")
        };
        assert_eq!(login.as_str(), "taro");
        assert_eq!(user.status, Status::Invited, "not disabled: invited");
        assert_eq!(user.tenant.as_str(), "acme");
        assert_eq!(user.profile.email.as_str(), "Taro@Example.com");
        assert_eq!(user.profile.role, Role::Admin);
        assert_eq!(
            user.profile
                .app_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>(),
            ["crm:editor", "crm:viewer"]
        );
        assert_eq!(
            user.profile
                .groups
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
            ["営業", "東京"]
        );
        assert_eq!(
            user.profile.notes.unwrap().as_str(),
            "=memo",
            "neutralised cells are restored"
        );
        assert_eq!(
            user.profile.validity.from(),
            Some(Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).unwrap())
        );
        assert_eq!(
            user.profile.validity.till(),
            Some(Utc.with_ymd_and_hms(2027, 3, 31, 18, 30, 0).unwrap())
        );
        assert_eq!(f.rows[1].line, 4, "line 2 holds a line break inside a cell");
        let Some((_, RowAction::Edit(c))) = &f.rows[1].action else {
            panic!("an EDIT row")
        };
        assert_eq!(c.disabled, Some(true));
        assert_eq!(
            c.name,
            Change::Leave,
            "a blank required cell leaves the name alone"
        );
        assert_eq!(c.department, Change::Clear, "a blank optional cell clears");
        assert_eq!(c.app_roles, Change::Set(AppRoles::default()));
        assert_eq!(f.rows[2].operation, Some(Operation::Delete));
    }

    #[test]
    fn columns_missing_from_the_file_are_left_alone_by_edits() {
        let f = parse("operation,login_id,department\r\nEDIT,taro,\r\n");
        let Some((_, RowAction::Edit(c))) = &f.rows[0].action else {
            panic!("an EDIT row")
        };
        assert_eq!(c.department, Change::Clear);
        assert_eq!(
            (c.notes.clone(), c.app_roles.clone()),
            (Change::Leave, Change::Leave)
        );
    }

    #[test]
    fn two_step_is_zero_or_one_under_its_japanese_header_too() {
        let f = parse(
            "操作,ログインID,氏名,メールアドレス,2段階認証\r\nNEW,taro,Taro,t@example.com,1\r\nEDIT,hanako,,,0\r\nEDIT,jiro,,,はい\r\n",
        );
        let Some((_, RowAction::New(user))) = &f.rows[0].action else {
            panic!("a NEW row")
        };
        assert!(user.profile.two_step);
        let Some((_, RowAction::Edit(c))) = &f.rows[1].action else {
            panic!("an EDIT row")
        };
        assert_eq!(c.two_step, Some(false));
        assert_eq!(codes(&f), vec![(4, Some("two_step"), "two_step_invalid")]);
    }

    #[test]
    fn every_problem_of_a_row_is_reported_with_its_column() {
        let f = parse(&format!(
            "{HEADER}NEW,taro,,not-an-email,boss,,,,,phone?,,xx,2026/13/01,,2\r\n"
        ));
        assert_eq!(
            codes(&f),
            vec![
                (2, Some("name"), "required"),
                (2, Some("email"), "email_invalid"),
                (2, Some("role"), "role_invalid"),
                (2, Some("phone"), "phone_invalid"),
                (2, Some("language"), "language_invalid"),
                (2, Some("valid_from"), "datetime_invalid"),
                (2, Some("disabled"), "disabled_invalid"),
            ]
        );
        assert!(f.rows[0].action.is_none());
    }

    #[test]
    fn operations_must_be_given_and_known() {
        let f = parse("operation,login_id\r\n,taro\r\nUPSERT,jiro\r\n");
        assert_eq!(
            codes(&f),
            vec![
                (2, Some("operation"), "operation_required"),
                (3, Some("operation"), "operation_invalid"),
            ]
        );
        assert_eq!(f.rows[0].login_text, "taro");
    }

    /// The lines of the rows that still act (refused duplicates lose their action).
    fn acting_lines(f: &ParsedFile) -> Vec<usize> {
        f.rows
            .iter()
            .filter(|r| r.action.is_some())
            .map(|r| r.line)
            .collect()
    }

    #[test]
    fn a_user_touched_twice_in_one_file_is_refused_on_the_later_rows() {
        let f = parse(
            "operation,login_id,name,email\r\n\
             NEW,taro,Taro,taro@example.com\r\n\
             NEW,jiro,Jiro,TARO@example.com\r\n\
             DELETE,Taro,,\r\n",
        );
        assert_eq!(
            codes(&f),
            vec![
                (3, Some("email"), "duplicate_in_file"),
                (4, Some("login_id"), "duplicate_in_file"),
            ]
        );
        assert!(f.problems[0].message_en.contains("line 2"));
        let acting = acting_lines(&f);
        assert_eq!(acting, vec![2], "only the first row of each user acts");
    }

    #[test]
    fn a_login_id_a_delete_row_frees_may_be_taken_by_a_new_row_below_it() {
        let f = parse(
            "operation,login_id,name,email\r\n\
             DELETE,taro,,\r\n\
             NEW,Taro,Taro Two,taro2@example.com\r\n\
             EDIT,taro,Taro Three,\r\n\
             NEW,jiro,Jiro,jiro@example.com\r\n\
             DELETE,jiro,,\r\n",
        );
        assert_eq!(
            codes(&f),
            vec![
                (4, Some("login_id"), "duplicate_in_file"),
                (6, Some("login_id"), "duplicate_in_file"),
            ],
            "a NEW after the DELETE is a new user; anything else is a repeat"
        );
        let acting = acting_lines(&f);
        assert_eq!(acting, vec![2, 3, 5]);
    }

    #[test]
    fn a_window_that_ends_before_it_starts_is_refused() {
        let f = parse(&format!(
            "{HEADER}NEW,taro,Taro,t@example.com,,,,,,,,,2026/04/01,2026/03/31,\r\nEDIT,jiro,,,,,,,,,,,2026/04/01,2026/04/01,\r\n"
        ));
        assert_eq!(
            codes(&f),
            vec![
                (2, Some("valid_till"), "validity_window_invalid"),
                (3, Some("valid_till"), "validity_window_invalid"),
            ]
        );
    }

    #[test]
    fn rows_longer_than_the_header_are_refused() {
        let f = parse("operation,login_id\r\nDELETE,taro,extra\r\n");
        assert_eq!(codes(&f), vec![(2, None, "row_too_many_cells")]);
    }

    #[test]
    fn problems_with_the_whole_file_name_what_and_where() {
        let p = |text: &str| {
            parse_file(
                text.as_bytes(),
                EncodingChoice::Auto,
                2,
                creating_for_tests(),
            )
            .unwrap_err()
        };
        assert_eq!(p(""), FileProblem::Empty);
        assert_eq!(p("\r\n\r\n"), FileProblem::Empty);
        assert_eq!(p("operation,login_id\r\n,,\r\n"), FileProblem::NoRows);
        assert_eq!(
            p("operation,login_id\r\nDELETE,a\r\nDELETE,b\r\nDELETE,c\r\n"),
            FileProblem::TooManyRows { limit: 2 }
        );
        let header = p("operation,login,name\r\nNEW,a,b\r\n");
        assert_eq!(header.code(), "header_unknown");
        assert!(header.message(Language::En).contains("\"login\""));
        assert!(header.message(Language::En).contains("\"login_id\""));
        let csv = p("operation,login_id\r\nDELETE,\"a\r\n");
        assert_eq!((csv.code(), csv.line()), ("csv_unclosed_quote", Some(2)));
    }

    #[test]
    fn shift_jis_files_with_japanese_headers_are_read() {
        let text = "操作,ログインID,氏名,メールアドレス,部署\r\nNEW,takahashi,髙橋 ①,t@example.com,営業～東京\r\n";
        let bytes = encode_shift_jis(text).unwrap();
        let f = parse_file(&bytes, EncodingChoice::Auto, 10, creating_for_tests()).unwrap();
        assert_eq!(f.encoding, FileEncoding::ShiftJis);
        let Some((_, RowAction::New(user))) = &f.rows[0].action else {
            panic!("a NEW row")
        };
        assert_eq!(user.profile.name.as_str(), "髙橋 ①");
        assert_eq!(
            user.profile.department.as_ref().unwrap().as_str(),
            "営業～東京"
        );
    }

    proptest! {
        #[test]
        fn set_cells_split_on_bars_and_line_breaks(cell in "[a 営|\r\n\u{3000}-]{0,16}") {
            let expected: Vec<&str> = cell
                .split(['|', '\n', '\r'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            prop_assert_eq!(split_set(&cell).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn random_valid_rows_survive_write_then_parse(
            login in "[a-z][a-z0-9._-]{2,20}",
            name in "[A-Za-z山田太郎髙橋①][A-Za-z 山田太郎髙橋①～]{0,20}[A-Za-z]",
            local in "[a-z0-9]{1,10}",
            department in proptest::option::of("[=+@\\-]?[A-Za-z営業部]{1,20}"),
            notes in proptest::option::of("[=+@\\-]?[a-z]([a-z ,\"\n]{0,30}[a-z])?"),
            groups in proptest::collection::btree_set("[a-z営業東京]{1,8}", 0..4),
            role in prop_oneof![Just(Role::Admin), Just(Role::Manager), Just(Role::Member)],
            from_ms in proptest::option::of(0i64..2_000_000_000_000),
            hours in proptest::option::of(prop_oneof![
                Just("Mon-Fri 08:00-20:00"),
                Just("Sat,Sun 00:00-24:00"),
                Just("Mon,Fri-Sun 22:00-06:00"),
            ]),
            two_step in proptest::bool::ANY,
        ) {
            let groups: Vec<String> = groups.into_iter().collect();
            let from = from_ms.map(|ms| DateTime::from_timestamp_millis(ms).unwrap());
            let mut w = CsvWriter::new();
            w.row(Column::ALL.map(Column::name));
            let email = format!("{local}@example.com");
            let from_text = from.map(format_datetime).unwrap_or_default();
            w.row([
                "NEW", &login, &name, &email, role.as_str(), "", &groups.join("|"), "",
                department.as_deref().unwrap_or(""), "", notes.as_deref().unwrap_or(""), "en",
                hours.unwrap_or(""), if two_step { "1" } else { "0" }, &from_text, "", "0",
            ]);
            let text = w.finish();
            let f = parse_file(text.as_bytes(), EncodingChoice::Auto, 10, creating_for_tests()).unwrap();
            prop_assert!(f.problems.is_empty(), "{:?}", f.problems);
            let Some((l, RowAction::New(user))) = f.rows[0].action.clone() else {
                panic!("a NEW row")
            };
            prop_assert_eq!(l.as_str(), login.as_str());
            prop_assert_eq!(user.status, Status::Invited);
            prop_assert_eq!(user.profile.name.as_str(), name.as_str());
            prop_assert_eq!(user.profile.email.as_str(), email.as_str());
            prop_assert_eq!(user.profile.role, role);
            prop_assert_eq!(user.profile.department.map(|d| d.as_str().to_owned()), department);
            prop_assert_eq!(user.profile.notes.map(|n| n.as_str().to_owned()), notes);
            prop_assert_eq!(user.profile.groups.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>(), groups);
            prop_assert_eq!(user.profile.language, Some(Language::En));
            prop_assert_eq!(user.profile.login_hours.map(|h| h.to_string()), hours.map(str::to_owned));
            prop_assert_eq!(user.profile.validity.from(), from);
            prop_assert_eq!(user.profile.two_step, two_step);
        }
    }
}
