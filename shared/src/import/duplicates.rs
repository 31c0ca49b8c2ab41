//! The same user named on two rows of one file: found by sorting hashes of the rows' login-id
//! and email keys, noted as the rows are read. A later row repeating an earlier one is refused
//! and loses its action, except a NEW row right after the DELETE row that freed its login id.

use std::borrow::Cow;

use super::RowProblem;
use super::columns::Column;
use super::rows::{Operation, ParsedRow, RowAction};
use crate::domain::{Change, Email, LoginId};

/// The hash of each acting row's login-id key, and of its email's, with the row's index:
/// sorted once every row is read, equal keys end up side by side.
pub(super) struct Duplicates {
    logins: Vec<(u64, u32)>,
    emails: Vec<(u64, u32)>,
}

impl Duplicates {
    /// Room for `rows` rows.
    pub(super) fn with_capacity(rows: usize) -> Duplicates {
        Duplicates {
            logins: Vec::with_capacity(rows),
            emails: Vec::with_capacity(rows),
        }
    }

    /// Notes the hashes of the user an acting row names, by login id and by email, while
    /// the row is still in the cache.
    pub(super) fn remember(&mut self, index: usize, login: &LoginId, action: &RowAction) {
        // Row counts are bounded by the row limit, far below u32::MAX.
        let index = index as u32;
        self.logins.push((key_hash(&login.key()), index));
        if let Some(email) = email_of(action) {
            self.emails.push((key_hash(&email.key()), index));
        }
    }

    /// A login id, or an email, on more than one row: every later row is refused, naming the
    /// first, and loses its action (it is not compared with the directory: the first row
    /// with that user is). The hashes are sorted, so rows with the same key are side by side
    /// (a scan of a few megabytes in order, where a map of every key is read all over).
    pub(super) fn refuse(&mut self, rows: &mut [ParsedRow], problems: &mut Vec<RowProblem>) {
        /// The key of `column` (login id or email) that `row` names.
        fn key(row: &ParsedRow, column: Column) -> Option<Cow<'_, str>> {
            let (login, action) = row.action.as_ref()?;
            match column {
                Column::Email => email_of(action).map(Email::key),
                _ => Some(login.key()),
            }
        }
        let mut refused = Vec::new();
        for (hashes, column) in [
            (&mut self.logins, Column::LoginId),
            (&mut self.emails, Column::Email),
        ] {
            hashes.sort_unstable();
            for run in hashes
                .chunk_by(|a, b| a.0 == b.0)
                .filter(|run| run.len() > 1)
            {
                // In row order; a later row repeats the first earlier one with the same key
                // (equal hashes of different keys are possible, if unlikely). One pair is no
                // repeat: a NEW row right after the DELETE row that freed its login id
                // creates another user with it (the apply deletes first).
                let mut refused_here: Vec<u32> = Vec::new();
                for (k, &(_, index)) in run.iter().enumerate().skip(1) {
                    let later = &rows[index as usize];
                    let same = |&&(_, i): &&(u64, u32)| {
                        key(&rows[i as usize], column) == key(later, column)
                    };
                    let Some(&(_, first)) = run[..k].iter().find(same) else {
                        continue;
                    };
                    let previous = run[..k]
                        .iter()
                        .rev()
                        .filter(same)
                        .find(|(_, i)| !refused_here.contains(i))
                        .map(|&(_, i)| &rows[i as usize]);
                    let recreated = column == Column::LoginId
                        && later.operation == Some(Operation::New)
                        && previous.is_some_and(|p| p.operation == Some(Operation::Delete));
                    if !recreated {
                        problems.push(duplicate(later.line, column, rows[first as usize].line));
                        refused_here.push(index);
                        refused.push(index as usize);
                    }
                }
            }
        }
        for index in refused {
            rows[index].action = None;
        }
    }
}

/// The email a row names, if it names one.
fn email_of(action: &RowAction) -> Option<&Email> {
    match action {
        RowAction::New(user) => Some(&user.profile.email),
        RowAction::Edit(c) => match &c.email {
            Change::Set(e) => Some(e),
            Change::Leave | Change::Clear => None,
        },
        RowAction::Delete => None,
    }
}

/// A key's hash, the same in every run.
fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher as _;
    foldhash::fast::FixedState::default().hash_one(key)
}

fn duplicate(line: usize, column: Column, first: usize) -> RowProblem {
    RowProblem::custom(
        line,
        Some(column),
        "duplicate_in_file",
        format!(
            "{first} 行目と同じ{}です。1つのファイルで同じユーザーを2回扱うことはできません。",
            match column {
                Column::Email => "メールアドレス",
                _ => "ログインID",
            }
        ),
        format!(
            "The same {} as line {first}: a file can touch each user only once.",
            column.name()
        ),
    )
}
