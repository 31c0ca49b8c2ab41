//! CSV as spreadsheets read it: RFC 4180 quoting, CRLF line ends, UTF-8 with a byte-order mark
//! (so Excel opens Japanese text correctly), and every cell that a spreadsheet would take for a
//! formula neutralised. [`Records`] reads such files back, and [`encoding`] turns their bytes
//! (UTF-8 or Shift_JIS) into text and back.

use std::borrow::Cow;

pub mod encoding;
mod reader;

pub use reader::{CsvError, CsvErrorKind, Record, Records, is_blank};

/// The UTF-8 byte-order mark.
pub const BOM: &str = "\u{feff}";

/// Characters that make a spreadsheet read a cell as a formula when they come first.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `cell`, once its leading `'`s are set aside, starts like a formula.
fn formula_like(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab or CR first) gets a leading `'`,
/// which spreadsheets show as text and do not evaluate (OWASP "CSV injection"). A cell that
/// already starts with `'` before such a character gets one more, so that [`restore`] gives
/// back exactly what was written.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if formula_like(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Undoes [`neutralise`]: `'=SUM(A1)` reads back as `=SUM(A1)`, and any other cell as it is,
/// so an exported file re-imports unchanged.
///
/// ```
/// use rollcall::csv::{neutralise, restore};
/// for cell in ["=SUM(A1)", "'=x", "+81 3", "plain", "'quoted"] {
///     assert_eq!(restore(&neutralise(cell)), cell);
/// }
/// ```
pub fn restore(cell: &str) -> &str {
    // A byte test first: import files read every cell through here.
    if cell.as_bytes().first() != Some(&b'\'') {
        return cell;
    }
    let rest = &cell[1..];
    if formula_like(rest) { rest } else { cell }
}

/// Builds a CSV document in memory.
#[derive(Debug, Clone)]
pub struct CsvWriter {
    out: String,
}

impl Default for CsvWriter {
    fn default() -> Self {
        CsvWriter::new()
    }
}

impl CsvWriter {
    /// An empty document that starts with the byte-order mark.
    pub fn new() -> CsvWriter {
        CsvWriter {
            out: BOM.to_owned(),
        }
    }

    /// Appends one record: each cell neutralised, then quoted if it holds a comma, a quote or a
    /// line break.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let cell = neutralise(cell.as_ref());
            if cell.contains([',', '"', '\r', '\n']) {
                self.out.push('"');
                self.out.push_str(&cell.replace('"', "\"\""));
                self.out.push('"');
            } else {
                self.out.push_str(&cell);
            }
        }
        self.out.push_str("\r\n");
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_plain_text_is_not() {
        for f in ["=SUM(A1)", "+81-3", "-1", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralise(f), format!("'{f}"));
        }
        for plain in ["山田", "a=b", "", "'quoted"] {
            assert_eq!(neutralise(plain), plain);
        }
        assert_eq!(neutralise("'=x"), "''=x");
    }

    proptest::proptest! {
        #[test]
        fn restore_undoes_neutralise(cell in "['=+@a-]{0,4}[\\PC]{0,8}") {
            let written = neutralise(&cell);
            proptest::prop_assert_eq!(restore(&written), cell.as_str());
        }
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        let mut w = CsvWriter::new();
        w.row(["id", "name"]);
        w.row(["1", "Yamada, \"Taro\"\nSales"]);
        w.row(["2", "=1+1"]);
        assert_eq!(
            w.finish(),
            "\u{feff}id,name\r\n1,\"Yamada, \"\"Taro\"\"\nSales\"\r\n2,'=1+1\r\n"
        );
    }
}
