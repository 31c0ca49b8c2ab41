//! Reading CSV text record by record (RFC 4180: quoted cells, doubled quotes, CRLF, LF or CR
//! line ends, line breaks inside quoted cells), keeping the line each record starts on so that
//! every later error can name it. Cells borrow from the text unless a doubled quote forces a
//! copy.

use std::borrow::Cow;

/// One record and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The line of the file the record starts on.
    pub line: usize,
    /// The cells, quotes removed.
    pub cells: Vec<Cow<'a, str>>,
}

impl Record<'_> {
    /// Whether every cell is empty (a blank line, or `,,,` as spreadsheets write empty rows).
    pub fn is_blank(&self) -> bool {
        is_blank(&self.cells)
    }
}

/// Whether every cell is empty (a blank line, or `,,,` as spreadsheets write empty rows).
pub fn is_blank(cells: &[Cow<'_, str>]) -> bool {
    cells.iter().all(|c| c.is_empty())
}

/// What is wrong with the text, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct CsvError {
    /// The line (1-based) where the problem is; for an unclosed quote, the line it opens on.
    pub line: usize,
    /// The cell (1-based) in its record.
    pub column: usize,
    /// The problem.
    pub kind: CsvErrorKind,
}

/// The ways CSV text can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsvErrorKind {
    /// A quoted cell is never closed.
    #[error("a quoted cell is not closed")]
    UnclosedQuote,
    /// A `"` inside a cell that does not start with one.
    #[error("a quote inside a cell that is not quoted")]
    QuoteInUnquotedCell,
    /// Something other than a comma or a line end right after a closing quote.
    #[error("text after the closing quote of a cell")]
    TextAfterClosingQuote,
}

/// The records of a CSV text, in order. After an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    width: usize,
    failed: bool,
}

impl<'a> Records<'a> {
    /// Starts reading `text` (already decoded, byte-order mark removed).
    pub fn new(text: &'a str) -> Self {
        Records {
            text,
            pos: 0,
            line: 1,
            width: 0,
            failed: false,
        }
    }

    fn error(&mut self, line: usize, column: usize, kind: CsvErrorKind) -> CsvError {
        self.failed = true;
        CsvError { line, column, kind }
    }

    /// Reads a quoted cell whose opening quote is at `self.pos`, leaving `self.pos` just past
    /// the closing quote.
    fn quoted(&mut self, column: usize) -> Result<Cow<'a, str>, CsvError> {
        let bytes = self.text.as_bytes();
        let opened_on = self.line;
        self.pos += 1;
        let start = self.pos;
        let mut copied: Option<String> = None;
        let mut segment = start;
        loop {
            match bytes.get(self.pos) {
                None => return Err(self.error(opened_on, column, CsvErrorKind::UnclosedQuote)),
                Some(b'"') if bytes.get(self.pos + 1) == Some(&b'"') => {
                    copied
                        .get_or_insert_with(String::new)
                        .push_str(&self.text[segment..=self.pos]);
                    self.pos += 2;
                    segment = self.pos;
                }
                Some(b'"') => {
                    let cell = match copied {
                        None => Cow::Borrowed(&self.text[start..self.pos]),
                        Some(mut s) => {
                            s.push_str(&self.text[segment..self.pos]);
                            Cow::Owned(s)
                        }
                    };
                    self.pos += 1;
                    return Ok(cell);
                }
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(b'\r') => {
                    self.line += 1;
                    self.pos += 1;
                    if bytes.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

impl<'a> Records<'a> {
    /// Reads the next record into `cells` (cleared first) and gives the line it starts on.
    /// Reusing one vector for every record spares an allocation a row.
    pub fn read_into(&mut self, cells: &mut Vec<Cow<'a, str>>) -> Option<Result<usize, CsvError>> {
        cells.clear();
        let bytes = self.text.as_bytes();
        if self.failed || self.pos >= bytes.len() {
            return None;
        }
        let line = self.line;
        loop {
            let column = cells.len() + 1;
            if bytes.get(self.pos) == Some(&b'"') {
                match self.quoted(column) {
                    Ok(cell) => cells.push(cell),
                    Err(e) => return Some(Err(e)),
                }
                match bytes.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        continue;
                    }
                    None | Some(b'\r' | b'\n') => break,
                    Some(_) => {
                        let line = self.line;
                        return Some(Err(self.error(
                            line,
                            column,
                            CsvErrorKind::TextAfterClosingQuote,
                        )));
                    }
                }
            }
            let start = self.pos;
            let end = cell_end(bytes, start);
            self.pos = end;
            cells.push(Cow::Borrowed(&self.text[start..end]));
            match bytes.get(end) {
                Some(b',') => self.pos += 1,
                Some(b'"') => {
                    let line = self.line;
                    return Some(Err(self.error(
                        line,
                        column,
                        CsvErrorKind::QuoteInUnquotedCell,
                    )));
                }
                _ => break,
            }
        }
        match bytes.get(self.pos) {
            Some(b'\r') if bytes.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
            Some(b'\r' | b'\n') => self.pos += 1,
            _ => {}
        }
        self.line += 1;
        self.width = self.width.max(cells.len());
        Some(Ok(line))
    }
}

/// The bytes that end an unquoted cell's text: a comma, a quote (an error there) or a line end.
const SPECIAL: [u8; 4] = [b',', b'"', b'\r', b'\n'];

/// The position of the first [`SPECIAL`] byte at or after `from`, or the end of `bytes`. Eight
/// bytes at a time: a byte of `word ^ c·0x01…01` is zero where `word` holds `c`, and the lowest
/// byte flagged by `(x - 0x01…01) & !x & 0x80…80` is exactly the first zero byte (a borrow
/// only flags bytes above a zero one).
fn cell_end(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = SPECIAL.iter().fold(0, |found, &c| {
            let x = word ^ (ONES * u64::from(c));
            found | (x.wrapping_sub(ONES) & !x & HIGHS)
        });
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|b| SPECIAL.contains(b))
        .map_or(bytes.len(), |n| i + n)
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut cells = Vec::with_capacity(self.width);
        let line = self.read_into(&mut cells)?;
        Some(line.map(|line| Record { line, cells }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::CsvWriter;
    use proptest::prelude::*;

    fn read(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
        Records::new(text)
            .map(|r| r.map(|r| (r.line, r.cells.into_iter().map(Cow::into_owned).collect())))
            .collect()
    }

    fn cells(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoted_cells_may_hold_commas_quotes_and_line_breaks() {
        let text = "a,b\r\n\"x, \"\"y\"\"\",\"two\r\nlines\"\r\nlast,\r\n";
        assert_eq!(
            read(text).unwrap(),
            vec![
                (1, cells(&["a", "b"])),
                (2, cells(&["x, \"y\"", "two\r\nlines"])),
                (4, cells(&["last", ""])),
            ]
        );
    }

    #[test]
    fn lf_cr_and_a_missing_final_line_end_are_all_accepted() {
        assert_eq!(
            read("a\nb\rc").unwrap(),
            vec![(1, cells(&["a"])), (2, cells(&["b"])), (3, cells(&["c"]))]
        );
    }

    #[test]
    fn blank_lines_are_records_of_one_empty_cell() {
        let records: Vec<_> = Records::new("a\r\n\r\n,,\r\nb")
            .map(Result::unwrap)
            .collect();
        let blank: Vec<bool> = records.iter().map(Record::is_blank).collect();
        assert_eq!(blank, vec![false, true, true, false]);
        assert_eq!(records[3].line, 4);
    }

    #[test]
    fn an_unclosed_quote_is_reported_on_the_line_it_opens() {
        let err = read("a,b\r\nc,\"open\r\nmore\r\n").unwrap_err();
        assert_eq!(
            err,
            CsvError {
                line: 2,
                column: 2,
                kind: CsvErrorKind::UnclosedQuote
            }
        );
    }

    #[test]
    fn stray_quotes_are_reported_with_line_and_column() {
        assert_eq!(
            read("a\r\nx,5\" screen\r\n").unwrap_err(),
            CsvError {
                line: 2,
                column: 2,
                kind: CsvErrorKind::QuoteInUnquotedCell
            }
        );
        assert_eq!(
            read("\"a\r\nb\"c,d\r\n").unwrap_err(),
            CsvError {
                line: 2,
                column: 1,
                kind: CsvErrorKind::TextAfterClosingQuote
            }
        );
    }

    #[test]
    fn reading_stops_after_an_error() {
        let mut r = Records::new("\"a\"b\r\nc\r\n");
        assert!(r.next().unwrap().is_err());
        assert!(r.next().is_none());
    }

    proptest! {
        #[test]
        fn cell_ends_are_found_eight_bytes_at_a_time_as_one_by_one(
            bytes in proptest::collection::vec(prop_oneof![Just(b','), Just(b'"'), Just(b'\r'), Just(b'\n'), Just(0u8), Just(1u8), Just(0x80u8), Just(0xffu8), any::<u8>()], 0..40),
            from in 0usize..40,
        ) {
            let from = from.min(bytes.len());
            let expected = bytes[from..]
                .iter()
                .position(|b| SPECIAL.contains(b))
                .map_or(bytes.len(), |n| from + n);
            prop_assert_eq!(cell_end(&bytes, from), expected);
        }

        #[test]
        fn written_records_read_back_unchanged(
            rows in proptest::collection::vec(
                proptest::collection::vec("([a-z0-9 ,\"日本語①～髙][a-z0-9 ,\"\r\n日本語①～髙]{0,7})?", 1..5),
                1..6,
            )
        ) {
            // The writer neutralises formulas; these cells start with none of their characters.
            let mut w = CsvWriter::new();
            for row in &rows {
                w.row(row);
            }
            let text = w.finish();
            let text = text.strip_prefix(crate::csv::BOM).unwrap();
            let read: Vec<Vec<String>> = read(text)
                .unwrap()
                .into_iter()
                .map(|(_, cells)| cells)
                .collect();
            prop_assert_eq!(read, rows);
        }
    }
}
