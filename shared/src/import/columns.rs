//! The columns of an import file and their header names: English, as the template and the
//! export write them, or one of the Japanese names admins use (`氏名`, `メールアドレス`…).
//! Header names compare after NFKC and case folding, so `Login ID`, `LOGIN_ID` and `ログインＩＤ`
//! are all recognised.

use unicode_normalization::UnicodeNormalization;

use crate::domain::{Language, Localized};

/// A column of an import or export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// `NEW`, `EDIT` or `DELETE`.
    Operation,
    /// Finds the user (EDIT, DELETE) or names the new one.
    LoginId,
    /// Display name.
    Name,
    /// Email address.
    Email,
    /// Management role.
    Role,
    /// Application roles, separated by `|` or line breaks.
    AppRoles,
    /// Groups, separated by `|` or line breaks.
    Groups,
    /// Organisation.
    Organization,
    /// Department.
    Department,
    /// Phone number.
    Phone,
    /// Notes.
    Notes,
    /// `ja` or `en`.
    Language,
    /// Login hours: `Mon-Fri 08:00-20:00` (see [`crate::domain::LoginHours`]).
    LoginHours,
    /// `1`: the user enters an emailed code after the password; `0`: not (the tenant's
    /// policy may still ask it).
    TwoStep,
    /// Start of the validity window, `yyyy/mm/dd hh:mm` in UTC.
    ValidFrom,
    /// End of the validity window, `yyyy/mm/dd hh:mm` in UTC.
    ValidTill,
    /// `1` suspends, `0` reactivates.
    Disabled,
}

impl Column {
    /// Every column, in the order the template and the export write them.
    pub const ALL: [Column; 17] = [
        Column::Operation,
        Column::LoginId,
        Column::Name,
        Column::Email,
        Column::Role,
        Column::AppRoles,
        Column::Groups,
        Column::Organization,
        Column::Department,
        Column::Phone,
        Column::Notes,
        Column::Language,
        Column::LoginHours,
        Column::TwoStep,
        Column::ValidFrom,
        Column::ValidTill,
        Column::Disabled,
    ];

    /// Columns every file must have.
    pub const REQUIRED: [Column; 2] = [Column::Operation, Column::LoginId];

    /// The English header name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Operation => "operation",
            Column::LoginId => "login_id",
            Column::Name => "name",
            Column::Email => "email",
            Column::Role => "role",
            Column::AppRoles => "app_roles",
            Column::Groups => "groups",
            Column::Organization => "organization",
            Column::Department => "department",
            Column::Phone => "phone",
            Column::Notes => "notes",
            Column::Language => "language",
            Column::LoginHours => "login_hours",
            Column::TwoStep => "two_step",
            Column::ValidFrom => "valid_from",
            Column::ValidTill => "valid_till",
            Column::Disabled => "disabled",
        }
    }

    /// The column's Japanese name, as templates write it (read back as an alias).
    pub fn japanese_name(self) -> &'static str {
        match self {
            Column::Operation => "操作",
            Column::LoginId => "ログインID",
            Column::Name => "氏名",
            Column::Email => "メールアドレス",
            Column::Role => "権限",
            Column::AppRoles => "アプリロール",
            Column::Groups => "グループ",
            Column::Organization => "組織",
            Column::Department => "部署",
            Column::Phone => "電話番号",
            Column::Notes => "備考",
            Column::Language => "言語",
            Column::LoginHours => "ログイン可能時間",
            Column::TwoStep => "2段階認証",
            Column::ValidFrom => "有効期間開始",
            Column::ValidTill => "有効期間終了",
            Column::Disabled => "無効",
        }
    }

    /// Other names accepted in a header, after normalisation (see [`header_key`]).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Column::Operation => &["操作", "処理", "処理区分"],
            Column::LoginId => &["loginid", "ログインid", "ユーザーid"],
            Column::Name => &["氏名", "名前", "表示名"],
            Column::Email => &["e_mail", "mail", "メールアドレス", "メール"],
            Column::Role => &["権限", "管理権限", "ロール"],
            Column::AppRoles => &["アプリロール", "アプリ権限"],
            Column::Groups => &["グループ"],
            Column::Organization => &["organisation", "組織", "会社名", "所属組織"],
            Column::Department => &["部署", "部署名"],
            Column::Phone => &["電話番号", "電話"],
            Column::Notes => &["備考", "メモ"],
            Column::Language => &["言語"],
            Column::LoginHours => &["ログイン可能時間", "ログインサイクル", "ログイン時間帯"],
            Column::TwoStep => &[
                "2段階認証",
                "二段階認証",
                "2要素認証",
                "二要素認証",
                "two_factor",
            ],
            Column::ValidFrom => &["有効期間開始", "利用開始日時", "開始日時"],
            Column::ValidTill => &["有効期間終了", "利用終了日時", "終了日時"],
            Column::Disabled => &["無効", "利用停止", "停止"],
        }
    }

    /// The column a header cell names, if any.
    pub fn from_header(cell: &str) -> Option<Column> {
        let key = header_key(cell);
        Column::ALL
            .into_iter()
            .find(|c| c.name() == key || c.aliases().contains(&key.as_str()))
    }
}

impl serde::Serialize for Column {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A header cell as compared: NFKC, lower case, trimmed, spaces and hyphens as `_`.
pub fn header_key(cell: &str) -> String {
    cell.trim()
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect()
}

/// Where each column is in a file, read from its header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// For each cell of the header, the column it names.
    columns: Vec<Column>,
    /// The header cells as written, to name columns in reports the way the file does.
    written: Vec<String>,
}

/// What is wrong with a header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// A cell names no known column.
    Unknown {
        /// The cell (1-based).
        position: usize,
        /// Its text.
        text: String,
    },
    /// Two cells name the same column.
    Duplicate {
        /// The second cell naming it (1-based).
        position: usize,
        /// The column.
        column: Column,
    },
    /// A required column is missing.
    Missing(Column),
}

impl Localized for HeaderProblem {
    fn code(&self) -> &'static str {
        match self {
            HeaderProblem::Unknown { .. } => "header_unknown",
            HeaderProblem::Duplicate { .. } => "header_duplicate",
            HeaderProblem::Missing(_) => "header_missing",
        }
    }

    fn message(&self, lang: Language) -> String {
        let known = Column::ALL.map(Column::name).join(", ");
        match (self, lang) {
            (HeaderProblem::Unknown { position, text }, Language::Ja) => format!(
                "見出しの {position} 列目「{text}」は項目名ではありません。使える項目名: {known}"
            ),
            (HeaderProblem::Unknown { position, text }, Language::En) => format!(
                "Header column {position} ({text:?}) is not a column name. Known columns: {known}."
            ),
            (HeaderProblem::Duplicate { position, column }, Language::Ja) => format!(
                "見出しの {position} 列目は「{}」の重複です。",
                column.name()
            ),
            (HeaderProblem::Duplicate { position, column }, Language::En) => {
                format!("Header column {position} repeats {:?}.", column.name())
            }
            (HeaderProblem::Missing(c), Language::Ja) => {
                format!("見出しに必須の項目「{}」がありません。", c.name())
            }
            (HeaderProblem::Missing(c), Language::En) => {
                format!("The header lacks the required column {:?}.", c.name())
            }
        }
    }
}

impl Header {
    /// Reads a header line; every problem is reported, not only the first.
    pub fn parse<S: AsRef<str>>(cells: &[S]) -> Result<Header, Vec<HeaderProblem>> {
        let mut problems = Vec::new();
        let mut columns = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            match Column::from_header(cell.as_ref()) {
                Some(c) if columns.contains(&c) => problems.push(HeaderProblem::Duplicate {
                    position: i + 1,
                    column: c,
                }),
                Some(c) => columns.push(c),
                None => problems.push(HeaderProblem::Unknown {
                    position: i + 1,
                    text: cell.as_ref().to_owned(),
                }),
            }
        }
        for required in Column::REQUIRED {
            if !columns.contains(&required) {
                problems.push(HeaderProblem::Missing(required));
            }
        }
        if problems.is_empty() {
            Ok(Header {
                columns,
                written: cells.iter().map(|c| c.as_ref().trim().to_owned()).collect(),
            })
        } else {
            Err(problems)
        }
    }

    /// The columns in file order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Whether the file has `column`.
    pub fn has(&self, column: Column) -> bool {
        self.columns.contains(&column)
    }

    /// The header text the file uses for `column` (its English name if the file lacks it).
    pub fn written(&self, column: Column) -> &str {
        self.columns
            .iter()
            .position(|c| *c == column)
            .map_or(column.name(), |i| self.written[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_japanese_name_reads_back_as_its_column() {
        for c in Column::ALL {
            assert_eq!(Column::from_header(c.japanese_name()), Some(c), "{c:?}");
        }
    }

    #[test]
    fn english_and_japanese_header_names_are_recognised() {
        for (cell, col) in [
            ("operation", Column::Operation),
            ("Login ID", Column::LoginId),
            ("ログインＩＤ", Column::LoginId),
            ("氏名", Column::Name),
            ("メールアドレス", Column::Email),
            (" EMAIL ", Column::Email),
            ("有効期間終了", Column::ValidTill),
            ("Valid-From", Column::ValidFrom),
        ] {
            assert_eq!(Column::from_header(cell), Some(col), "{cell}");
        }
        assert_eq!(Column::from_header("shoe size"), None);
    }

    #[test]
    fn every_header_problem_is_reported_at_once() {
        let problems = Header::parse(&["name", "氏名", "shoe size"]).unwrap_err();
        assert_eq!(
            problems,
            vec![
                HeaderProblem::Duplicate {
                    position: 2,
                    column: Column::Name
                },
                HeaderProblem::Unknown {
                    position: 3,
                    text: "shoe size".into()
                },
                HeaderProblem::Missing(Column::Operation),
                HeaderProblem::Missing(Column::LoginId),
            ]
        );
        assert!(problems[1].message(Language::En).contains("\"shoe size\""));
    }

    #[test]
    fn reports_name_columns_as_the_file_writes_them() {
        let h = Header::parse(&["操作", "ログインID", "メールアドレス"]).unwrap();
        assert_eq!(h.written(Column::Email), "メールアドレス");
        assert_eq!(h.written(Column::Name), "name");
        assert!(h.has(Column::LoginId) && !h.has(Column::Groups));
    }

    #[test]
    fn no_two_columns_share_a_name() {
        let mut all: Vec<String> = Column::ALL
            .iter()
            .flat_map(|c| {
                std::iter::once(c.name().to_owned())
                    .chain(c.aliases().iter().map(|a| a.to_string()))
            })
            .collect();
        for name in &all {
            assert_eq!(&header_key(name), name, "aliases are stored normalised");
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
