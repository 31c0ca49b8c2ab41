//! What is wrong with a file: a problem of one row (line, column, code, message in Japanese and
//! English) or of the whole file (its encoding, its CSV, its header, its size), with the
//! messages people read in the reports.

use super::columns::{Column, HeaderProblem};
use crate::csv::encoding::DecodeError;
use crate::csv::{CsvError, CsvErrorKind};
use crate::domain::{Language, Localized};

/// One problem of one row: where it is and what it is, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowProblem {
    /// The line of the file the row starts on.
    pub line: usize,
    /// The column at fault, if one is.
    pub column: Option<Column>,
    /// A stable code, e.g. `email_taken`.
    pub code: &'static str,
    /// The message in Japanese.
    pub message_ja: String,
    /// The message in English.
    pub message_en: String,
}

impl RowProblem {
    /// A problem described by a domain error.
    pub fn new(line: usize, column: Option<Column>, e: &dyn Localized) -> RowProblem {
        RowProblem {
            line,
            column,
            code: e.code(),
            message_ja: e.message(Language::Ja),
            message_en: e.message(Language::En),
        }
    }

    /// A problem with its own code and messages.
    pub fn custom(
        line: usize,
        column: Option<Column>,
        code: &'static str,
        ja: impl Into<String>,
        en: impl Into<String>,
    ) -> RowProblem {
        RowProblem {
            line,
            column,
            code,
            message_ja: ja.into(),
            message_en: en.into(),
        }
    }
}

/// Why a whole file is refused before its rows are looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// The bytes are not text in the expected encoding.
    #[error(transparent)]
    Encoding(#[from] DecodeError),
    /// The CSV is malformed.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The file holds nothing.
    #[error("the file is empty")]
    Empty,
    /// The header line is wrong.
    #[error("the header is wrong")]
    Header(Vec<HeaderProblem>),
    /// The file has a header and no rows.
    #[error("the file has no rows")]
    NoRows,
    /// More rows than the limit.
    #[error("more than {limit} rows")]
    TooManyRows {
        /// The limit.
        limit: usize,
    },
    /// More bytes than the limit.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
}

impl FileProblem {
    /// The line the problem is on, if it is on one.
    pub fn line(&self) -> Option<usize> {
        match self {
            FileProblem::Encoding(e) => Some(e.position().line),
            FileProblem::Csv(e) => Some(e.line),
            FileProblem::Header(_) => Some(1),
            _ => None,
        }
    }

    /// The offset (0-based, from the start of the file) of the byte the problem is at, where
    /// one byte is to blame: the first that is not text in the encoding.
    pub fn byte_offset(&self) -> Option<usize> {
        match self {
            FileProblem::Encoding(e) => Some(e.position().offset),
            _ => None,
        }
    }
}

impl Localized for FileProblem {
    fn code(&self) -> &'static str {
        match self {
            FileProblem::Encoding(e) => e.code(),
            FileProblem::Csv(e) => match e.kind {
                CsvErrorKind::UnclosedQuote => "csv_unclosed_quote",
                CsvErrorKind::QuoteInUnquotedCell => "csv_stray_quote",
                CsvErrorKind::TextAfterClosingQuote => "csv_text_after_quote",
            },
            FileProblem::Empty => "file_empty",
            FileProblem::Header(p) => p.first().map_or("header_invalid", |p| p.code()),
            FileProblem::NoRows => "file_no_rows",
            FileProblem::TooManyRows { .. } => "file_too_many_rows",
            FileProblem::TooLarge { .. } => "file_too_large",
        }
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (FileProblem::Encoding(e), _) => e.message(lang),
            (FileProblem::Csv(e), Language::Ja) => {
                let what = match e.kind {
                    CsvErrorKind::UnclosedQuote => "「\"」で始まるセルが閉じられていません",
                    CsvErrorKind::QuoteInUnquotedCell => {
                        "「\"」で囲まれていないセルに「\"」があります（「\"\"」と書いて全体を「\"」で囲んでください）"
                    }
                    CsvErrorKind::TextAfterClosingQuote => "閉じる「\"」の後に文字があります",
                };
                format!("{} 行目 {} 列目: {what}。", e.line, e.column)
            }
            (FileProblem::Csv(e), Language::En) => {
                let what = match e.kind {
                    CsvErrorKind::UnclosedQuote => "a cell opened with '\"' is never closed",
                    CsvErrorKind::QuoteInUnquotedCell => {
                        "a '\"' inside a cell that is not quoted (quote the whole cell and double the '\"')"
                    }
                    CsvErrorKind::TextAfterClosingQuote => "text after a cell's closing '\"'",
                };
                format!("Line {}, column {}: {what}.", e.line, e.column)
            }
            (FileProblem::Empty, Language::Ja) => "ファイルが空です。".into(),
            (FileProblem::Empty, Language::En) => "The file is empty.".into(),
            (FileProblem::Header(p), _) => p
                .iter()
                .map(|p| p.message(lang))
                .collect::<Vec<_>>()
                .join(" "),
            (FileProblem::NoRows, Language::Ja) => {
                "見出し行だけで、データの行がありません。".into()
            }
            (FileProblem::NoRows, Language::En) => "The file has a header line and no rows.".into(),
            (FileProblem::TooManyRows { limit }, Language::Ja) => {
                format!("行数が上限の {limit} 行を超えています。ファイルを分けてください。")
            }
            (FileProblem::TooManyRows { limit }, Language::En) => {
                format!("The file has more than {limit} rows. Split it.")
            }
            (FileProblem::TooLarge { limit }, Language::Ja) => {
                format!("ファイルが上限の {limit} バイトを超えています。")
            }
            (FileProblem::TooLarge { limit }, Language::En) => {
                format!("The file is larger than the limit of {limit} bytes.")
            }
        }
    }
}
