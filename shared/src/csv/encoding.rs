//! The two encodings spreadsheets in Japan write CSV in: UTF-8 (with or without a byte-order
//! mark) and Shift_JIS as Windows writes it (CP932, with the NEC and IBM extensions such as
//! `①` and `髙`). Malformed bytes are an error naming their line, never replaced with U+FFFD,
//! and a character Shift_JIS can't hold is an error too, never a `?`.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, SHIFT_JIS};

use crate::domain::{Language, Localized};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// An encoding a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEncoding {
    /// UTF-8.
    #[serde(rename = "utf-8")]
    Utf8,
    /// Shift_JIS as Windows writes it (CP932).
    ShiftJis,
}

impl FileEncoding {
    /// The name used in the API and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            FileEncoding::Utf8 => "utf-8",
            FileEncoding::ShiftJis => "shift_jis",
        }
    }
}

impl fmt::Display for FileEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding a job expects: one of the two, or whichever the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingChoice {
    /// A byte-order mark or valid UTF-8 means UTF-8; otherwise Shift_JIS.
    #[default]
    Auto,
    /// UTF-8 only.
    #[serde(rename = "utf-8")]
    Utf8,
    /// Shift_JIS (CP932) only.
    ShiftJis,
}

/// The encoding name is not `auto`, `utf-8` or `shift_jis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the encoding must be auto, utf-8 or shift_jis")]
pub struct EncodingChoiceError;

impl Localized for EncodingChoiceError {
    fn code(&self) -> &'static str {
        "encoding_invalid"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => {
                "文字コードは auto、utf-8、shift_jis のいずれかで指定してください。".into()
            }
            Language::En => "The encoding must be auto, utf-8 or shift_jis.".into(),
        }
    }
}

impl EncodingChoice {
    /// Reads `auto`, `utf-8` (or `utf8`) or `shift_jis` (or `sjis`, `cp932`, `windows-31j`),
    /// in any case.
    pub fn parse(s: &str) -> Result<Self, EncodingChoiceError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "auto" => Ok(EncodingChoice::Auto),
            "utf_8" | "utf8" => Ok(EncodingChoice::Utf8),
            "shift_jis" | "sjis" | "cp932" | "windows_31j" => Ok(EncodingChoice::ShiftJis),
            _ => Err(EncodingChoiceError),
        }
    }

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EncodingChoice::Auto => "auto",
            EncodingChoice::Utf8 => "utf-8",
            EncodingChoice::ShiftJis => "shift_jis",
        }
    }
}

/// A file's text and what it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The text, without the byte-order mark.
    pub text: Cow<'a, str>,
    /// The encoding the bytes were in.
    pub encoding: FileEncoding,
}

/// Where in a file a malformed byte sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BytePosition {
    /// The line (1-based) holding the byte.
    pub line: usize,
    /// The byte's offset (0-based) from the start of the file, byte-order mark included.
    pub offset: usize,
}

/// Why a file's bytes are not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not valid in the encoding the job asked for.
    #[error("line {} (byte {}) is not valid {encoding}", at.line, at.offset)]
    Malformed {
        /// The encoding tried.
        encoding: FileEncoding,
        /// The first malformed byte.
        at: BytePosition,
    },
    /// The job asked for auto-detection and the bytes are valid in neither encoding.
    #[error("the file is neither UTF-8 (line {}) nor Shift_JIS (line {})", utf8.line, shift_jis.line)]
    Unrecognised {
        /// The first byte that is not UTF-8.
        utf8: BytePosition,
        /// The first byte that is not Shift_JIS.
        shift_jis: BytePosition,
    },
    /// The job asked for Shift_JIS and the file starts with a UTF-8 byte-order mark.
    #[error("the file starts with a UTF-8 byte-order mark but Shift_JIS was asked for")]
    Utf8BomButShiftJis,
}

impl DecodeError {
    /// Where the file stops being text. For a file that is neither encoding, the place where
    /// the one that read further stopped: a UTF-8 file with one bad byte reads far as UTF-8
    /// and stops early as Shift_JIS, so its bad byte is the one to point at.
    pub fn position(&self) -> BytePosition {
        match *self {
            DecodeError::Malformed { at, .. } => at,
            DecodeError::Unrecognised { utf8, shift_jis } => {
                if utf8.offset >= shift_jis.offset {
                    utf8
                } else {
                    shift_jis
                }
            }
            DecodeError::Utf8BomButShiftJis => BytePosition { line: 1, offset: 0 },
        }
    }
}

impl Localized for DecodeError {
    fn code(&self) -> &'static str {
        match self {
            DecodeError::Malformed { .. } => "file_encoding_malformed",
            DecodeError::Unrecognised { .. } => "file_encoding_unknown",
            DecodeError::Utf8BomButShiftJis => "file_encoding_mismatch",
        }
    }

    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (DecodeError::Malformed { encoding, at }, Language::Ja) => format!(
                "{} 行目（{} バイト目）に {} として読めないバイトがあります。文字コードを確かめてください。",
                at.line,
                at.offset + 1,
                encoding_name(*encoding)
            ),
            (DecodeError::Malformed { encoding, at }, Language::En) => format!(
                "Line {} (byte {}) has bytes that are not valid {}. Check the file's encoding.",
                at.line,
                at.offset + 1,
                encoding_name(*encoding)
            ),
            (DecodeError::Unrecognised { utf8, shift_jis }, Language::Ja) => format!(
                "ファイルの文字コードが UTF-8（{} 行目 {} バイト目）でも Shift_JIS（{} 行目 {} バイト目）でもありません。どちらかで保存してください。",
                utf8.line,
                utf8.offset + 1,
                shift_jis.line,
                shift_jis.offset + 1
            ),
            (DecodeError::Unrecognised { utf8, shift_jis }, Language::En) => format!(
                "The file is neither UTF-8 (line {} byte {} is not) nor Shift_JIS (line {} byte {} is not). Save it in one of them.",
                utf8.line,
                utf8.offset + 1,
                shift_jis.line,
                shift_jis.offset + 1
            ),
            (DecodeError::Utf8BomButShiftJis, Language::Ja) => {
                "Shift_JIS が指定されましたが、ファイルは UTF-8（BOM 付き）です。".into()
            }
            (DecodeError::Utf8BomButShiftJis, Language::En) => {
                "Shift_JIS was asked for, but the file is UTF-8 (it starts with a byte-order mark)."
                    .into()
            }
        }
    }
}

fn encoding_name(e: FileEncoding) -> &'static str {
    match e {
        FileEncoding::Utf8 => "UTF-8",
        FileEncoding::ShiftJis => "Shift_JIS",
    }
}

/// The 1-based line holding byte `offset`: one more than the line ends before it (CRLF, LF or
/// a lone CR each end a line).
fn line_at(bytes: &[u8], offset: usize) -> usize {
    let before = &bytes[..offset.min(bytes.len())];
    let mut line = 1;
    let mut i = 0;
    while i < before.len() {
        match before[i] {
            b'\n' => line += 1,
            b'\r' if before.get(i + 1) != Some(&b'\n') => line += 1,
            _ => {}
        }
        i += 1;
    }
    line
}

/// The position of byte `offset` of `bytes`, which start `skipped` bytes into the file.
fn position(bytes: &[u8], offset: usize, skipped: usize) -> BytePosition {
    BytePosition {
        line: line_at(bytes, offset),
        offset: offset + skipped,
    }
}

fn utf8(bytes: &[u8], skipped: usize) -> Result<&str, BytePosition> {
    std::str::from_utf8(bytes).map_err(|e| position(bytes, e.valid_up_to(), skipped))
}

fn shift_jis(bytes: &[u8]) -> Result<Cow<'_, str>, BytePosition> {
    if let Some(text) = SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes) {
        return Ok(text);
    }
    // Find where: decode again, stopping at the first malformed sequence.
    let mut decoder = SHIFT_JIS.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len() * 3);
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    let offset = match result {
        DecoderResult::Malformed(bad, after) => read - usize::from(after) - usize::from(bad),
        DecoderResult::InputEmpty | DecoderResult::OutputFull => read,
    };
    Err(position(bytes, offset, 0))
}

/// Turns a file's bytes into text, as `choice` says.
///
/// ```
/// use rollcall::csv::encoding::{decode, EncodingChoice, FileEncoding};
/// let sjis = b"\x83\x65\x83\x58\x83\x67"; // テスト
/// let d = decode(sjis, EncodingChoice::Auto).unwrap();
/// assert_eq!((d.text.as_ref(), d.encoding), ("テスト", FileEncoding::ShiftJis));
/// ```
pub fn decode(bytes: &[u8], choice: EncodingChoice) -> Result<Decoded<'_>, DecodeError> {
    let bom = bytes.starts_with(UTF8_BOM);
    let as_utf8 = || {
        let skipped = if bom { UTF8_BOM.len() } else { 0 };
        utf8(&bytes[skipped..], skipped).map(|t| Decoded {
            text: Cow::Borrowed(t),
            encoding: FileEncoding::Utf8,
        })
    };
    let as_shift_jis = || {
        shift_jis(bytes).map(|text| Decoded {
            text,
            encoding: FileEncoding::ShiftJis,
        })
    };
    // Lines are counted in the whole file; the BOM holds no line end, so they agree.
    match choice {
        EncodingChoice::Utf8 => as_utf8().map_err(|at| DecodeError::Malformed {
            encoding: FileEncoding::Utf8,
            at,
        }),
        EncodingChoice::ShiftJis if bom => Err(DecodeError::Utf8BomButShiftJis),
        EncodingChoice::ShiftJis => as_shift_jis().map_err(|at| DecodeError::Malformed {
            encoding: FileEncoding::ShiftJis,
            at,
        }),
        EncodingChoice::Auto if bom => as_utf8().map_err(|at| DecodeError::Malformed {
            encoding: FileEncoding::Utf8,
            at,
        }),
        EncodingChoice::Auto => match as_utf8() {
            Ok(d) => Ok(d),
            Err(utf8) => {
                as_shift_jis().map_err(|shift_jis| DecodeError::Unrecognised { utf8, shift_jis })
            }
        },
    }
}

/// A character of the text that Shift_JIS can't hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {character:?} can't be written in Shift_JIS")]
pub struct Unencodable {
    /// The line (1-based) of the text holding it.
    pub line: usize,
    /// The character.
    pub character: char,
}

impl Localized for Unencodable {
    fn code(&self) -> &'static str {
        "not_encodable"
    }
    fn message(&self, lang: Language) -> String {
        match lang {
            Language::Ja => format!(
                "{} 行目の「{}」は Shift_JIS で書けません。UTF-8 で書き出してください。",
                self.line, self.character
            ),
            Language::En => format!(
                "Line {} holds {:?}, which Shift_JIS can't hold. Export in UTF-8 instead.",
                self.line, self.character
            ),
        }
    }
}

/// Writes `text` in Shift_JIS (CP932); a character it can't hold is an error naming its line.
pub fn encode_shift_jis(text: &str) -> Result<Vec<u8>, Unencodable> {
    let (bytes, _, unmappable) = SHIFT_JIS.encode(text);
    if !unmappable {
        return Ok(bytes.into_owned());
    }
    let mut line = 1;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        let mut buf = [0u8; 4];
        if SHIFT_JIS.encode(c.encode_utf8(&mut buf)).2 {
            return Err(Unencodable { line, character: c });
        }
    }
    unreachable!("encoding_rs reported an unmappable character that no single character is")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cp932_extensions_and_the_fullwidth_tilde_decode() {
        // ① (NEC row 13), 髙 (IBM extension), ～ (0x8160 as Windows maps it).
        let bytes = b"\x87\x40,\xFB\xFC,\x81\x60\r\n";
        let d = decode(bytes, EncodingChoice::Auto).unwrap();
        assert_eq!(d.encoding, FileEncoding::ShiftJis);
        assert_eq!(d.text, "①,髙,～\r\n");
        assert_eq!(encode_shift_jis("①,髙,～\r\n").unwrap(), bytes);
    }

    #[test]
    fn a_bom_means_utf8_and_is_removed() {
        let d = decode("\u{feff}a,b".as_bytes(), EncodingChoice::Auto).unwrap();
        assert_eq!((d.text.as_ref(), d.encoding), ("a,b", FileEncoding::Utf8));
        let d = decode("a,日本".as_bytes(), EncodingChoice::Utf8).unwrap();
        assert_eq!(d.text, "a,日本");
    }

    #[test]
    fn malformed_bytes_name_their_line_and_are_never_replaced() {
        let bytes = b"a\r\nb\r\n\xFF\xFE\r\n";
        assert_eq!(
            decode(bytes, EncodingChoice::Utf8).unwrap_err(),
            DecodeError::Malformed {
                encoding: FileEncoding::Utf8,
                at: BytePosition { line: 3, offset: 6 }
            }
        );
        // A lead byte with an invalid trail byte on line 2.
        let bytes = b"ok\n\x82\x20x\n";
        assert_eq!(
            decode(bytes, EncodingChoice::ShiftJis).unwrap_err(),
            DecodeError::Malformed {
                encoding: FileEncoding::ShiftJis,
                at: BytePosition { line: 2, offset: 3 }
            }
        );
        let both_bad = b"x\n\xA0\n\xFF\xFF\n";
        assert_eq!(
            decode(both_bad, EncodingChoice::Auto).unwrap_err(),
            DecodeError::Unrecognised {
                utf8: BytePosition { line: 2, offset: 2 },
                shift_jis: BytePosition { line: 2, offset: 2 }
            }
        );
        // A UTF-8 file with one bad byte far down points at that byte, not at the first line
        // Shift_JIS can't read.
        let line = "あ,b\r\n"; // Shift_JIS stops at its second byte pair (82 2C).
        let mut late = line.repeat(3).into_bytes();
        late.extend_from_slice(b"ok,\xE6\x97\r\n");
        let e = decode(&late, EncodingChoice::Auto).unwrap_err();
        assert_eq!(
            e.position(),
            BytePosition {
                line: 4,
                offset: 3 * line.len() + 3
            }
        );
        let e = decode(
            &[b"\xEF\xBB\xBFa\r\n".as_slice(), b"\xFF"].concat(),
            EncodingChoice::Auto,
        )
        .unwrap_err();
        assert_eq!(e.position(), BytePosition { line: 2, offset: 6 });
    }

    #[test]
    fn shift_jis_asked_for_a_utf8_file_with_a_bom_is_refused() {
        assert_eq!(
            decode("\u{feff}名前".as_bytes(), EncodingChoice::ShiftJis).unwrap_err(),
            DecodeError::Utf8BomButShiftJis
        );
    }

    #[test]
    fn characters_shift_jis_lacks_are_named_with_their_line() {
        assert_eq!(
            encode_shift_jis("a\r\nb😀\r\n").unwrap_err(),
            Unencodable {
                line: 2,
                character: '😀'
            }
        );
    }

    #[test]
    fn encoding_names_parse_in_their_usual_spellings() {
        for (s, e) in [
            ("auto", EncodingChoice::Auto),
            ("UTF-8", EncodingChoice::Utf8),
            ("utf8", EncodingChoice::Utf8),
            ("Shift_JIS", EncodingChoice::ShiftJis),
            ("cp932", EncodingChoice::ShiftJis),
            ("windows-31j", EncodingChoice::ShiftJis),
        ] {
            assert_eq!(EncodingChoice::parse(s), Ok(e), "{s}");
        }
        assert!(EncodingChoice::parse("latin1").is_err());
    }

    proptest! {
        #[test]
        fn japanese_text_round_trips_through_shift_jis(text in "[a-zA-Z0-9,\r\n ぁ-んァ-ン山田太郎花子髙橋﨑営業部東京大阪①-⑳～]{0,40}") {
            let bytes = encode_shift_jis(&text).unwrap();
            let d = decode(&bytes, EncodingChoice::ShiftJis).unwrap();
            prop_assert_eq!(d.text.as_ref(), text.as_str());
        }
    }
}
