//! Free-text fields people type: display names, organisation and department, notes. Trimmed,
//! bounded in characters (not bytes: a Japanese name is three bytes a character), and free of
//! control characters that would break CSV files, mail headers or logs.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::{Language, Localized};

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing (or only white space) was given where text is required.
    #[error("is required")]
    Empty,
    /// More characters than the field allows.
    #[error("is longer than {max} characters")]
    TooLong {
        /// The limit, in characters.
        max: usize,
    },
    /// A control character (line breaks are allowed only in notes).
    #[error("contains a control character")]
    Control,
    /// A bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE and the like), which can make
    /// text read differently from what it holds.
    #[error("contains a bidirectional control character")]
    BidiControl,
    /// A character that is never shown: a Unicode tag character or a noncharacter.
    #[error("contains a hidden character")]
    Hidden,
    /// Only invisible characters (zero-width spaces and joiners, fillers): nothing a reader
    /// would see.
    #[error("has no visible character")]
    Invisible,
}

impl Localized for TextError {
    fn code(&self) -> &'static str {
        match self {
            TextError::Empty => "required",
            TextError::TooLong { .. } => "too_long",
            TextError::Control => "control_character",
            TextError::BidiControl => "bidi_control",
            TextError::Hidden => "hidden_character",
            TextError::Invisible => "invisible_only",
        }
    }
    fn message(&self, lang: Language) -> String {
        match (self, lang) {
            (TextError::Empty, Language::Ja) => "入力してください。".into(),
            (TextError::Empty, Language::En) => "This field is required.".into(),
            (TextError::TooLong { max }, Language::Ja) => {
                format!("{max}文字以内で入力してください。")
            }
            (TextError::TooLong { max }, Language::En) => format!("At most {max} characters."),
            (TextError::Control, Language::Ja) => "制御文字は使えません。".into(),
            (TextError::Control, Language::En) => "Control characters are not allowed.".into(),
            (TextError::BidiControl, Language::Ja) => {
                "文字の表示方向を変える制御文字（U+202E など）は使えません。".into()
            }
            (TextError::BidiControl, Language::En) => {
                "Direction-control characters (such as U+202E) are not allowed.".into()
            }
            (TextError::Hidden, Language::Ja) => {
                "表示されない文字（タグ文字や非文字）は使えません。".into()
            }
            (TextError::Hidden, Language::En) => {
                "Hidden characters (Unicode tag characters and noncharacters) are not allowed."
                    .into()
            }
            (TextError::Invisible, Language::Ja) => {
                "目に見える文字を入力してください（ゼロ幅文字だけでは登録できません）。".into()
            }
            (TextError::Invisible, Language::En) => {
                "Must hold a visible character (zero-width characters alone are not text).".into()
            }
        }
    }
}

/// [`str::trim`], without decoding characters when the text plainly starts and ends with one
/// that is not white space: a visible ASCII character, or a three-byte one from U+3000 up
/// other than U+3000 itself (kana, kanji, full-width forms: the only white space from U+3000
/// up is U+3000, the ideographic space). Most cells of an import file are one or the other,
/// and every field is trimmed.
pub(crate) fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let n = b.len();
    if n == 0 {
        return s;
    }
    let visible = |c: u8| (b'!'..=b'~').contains(&c);
    // A three-byte character from U+3000 up (lead byte E3–EF) that is not U+3000 (E3 80 80).
    let wide = |lead: u8, second: u8, third: u8| {
        (0xe3..=0xef).contains(&lead) && (lead, second, third) != (0xe3, 0x80, 0x80)
    };
    let clean_start = visible(b[0]) || (n >= 3 && wide(b[0], b[1], b[2]));
    let clean_end = visible(b[n - 1]) || (n >= 3 && wide(b[n - 3], b[n - 2], b[n - 1]));
    match (clean_start, clean_end) {
        (true, true) => s,
        (true, false) => s.trim_end(),
        (false, true) => s.trim_start(),
        (false, false) => s.trim(),
    }
}

/// Whether `s` has an ASCII capital letter, eight bytes at a time: adding `0x3f` to a byte's
/// low seven bits sets its top bit from `A` (0x41) up, adding `0x25` from `[` (0x5b) up, and
/// neither sum carries into the next byte.
pub(crate) fn has_ascii_uppercase(s: &str) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.as_bytes().chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let low = x & LOW7;
        let from_a = low + 0x3f3f_3f3f_3f3f_3f3f;
        let past_z = low + 0x2525_2525_2525_2525;
        found |= from_a & !past_z & !x & HIGHS;
    }
    found != 0 || chunks.remainder().iter().any(u8::is_ascii_uppercase)
}

/// Whether `s` holds a control character (Unicode category Cc: U+0000–U+001F, U+007F and
/// U+0080–U+009F), other than line breaks and tabs when `allow_newlines`. Works on the UTF-8
/// bytes: the C1 controls are the only characters encoded as `C2 80`–`C2 9F`.
pub(crate) fn has_control(s: &str, allow_newlines: bool) -> bool {
    let bytes = s.as_bytes();
    // First a pass over every byte without stopping early, which the compiler turns into
    // vector code: most text has no byte that could start a control character.
    let suspect = bytes.iter().fold(false, |suspect, &b| {
        suspect | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    suspect
        && bytes.iter().enumerate().any(|(i, &b)| match b {
            b'\n' | b'\r' | b'\t' => !allow_newlines,
            0..=0x1f | 0x7f => true,
            0xc2 => bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
            _ => false,
        })
}

/// Whether `s` has more than `max` characters. Counts them only when it has more than `max`
/// bytes: most fields are far below their limit.
pub(crate) fn longer_than(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().count() > max
}

/// Bidirectional controls: the Arabic letter mark, the left-to-right and right-to-left marks,
/// embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). Unicode Standard
/// Annex #9; the "Trojan Source" spoof (CVE-2021-42574) uses them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters never shown: tag characters (U+E0000–U+E007F) and noncharacters (U+FDD0–U+FDEF
/// and the last two code points of every plane).
fn is_hidden(c: char) -> bool {
    let n = u32::from(c);
    (0xE0000..=0xE007F).contains(&n) || (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// Characters with no glyph of their own: zero-width spaces and joiners, the word joiner and
/// invisible operators, the byte-order mark, soft hyphen, variation selectors, fillers.
/// Inside visible text they are legitimate (ZWJ in emoji, ZWNJ in Persian); alone they show
/// nothing.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Refuses text that would show differently from what it holds: bidirectional controls,
/// hidden characters, or nothing but invisible characters. ASCII text has none of them.
fn check_spoofing(s: &str) -> Result<(), TextError> {
    if s.is_ascii() {
        return Ok(());
    }
    let mut visible = false;
    for c in s.chars() {
        if is_bidi_control(c) {
            return Err(TextError::BidiControl);
        }
        if is_hidden(c) {
            return Err(TextError::Hidden);
        }
        visible |= !is_invisible(c);
    }
    if visible {
        Ok(())
    } else {
        Err(TextError::Invisible)
    }
}

fn bounded(s: &str, max: usize, allow_newlines: bool) -> Result<CompactString, TextError> {
    // Counted as given, white space around it included: the API document's `maxLength` says
    // so, and a value never becomes acceptable by what is trimmed from it.
    if longer_than(s, max) {
        return Err(TextError::TooLong { max });
    }
    let s = trim(s);
    if s.is_empty() {
        return Err(TextError::Empty);
    }
    if has_control(s, allow_newlines) {
        return Err(TextError::Control);
    }
    check_spoofing(s)?;
    Ok(CompactString::from(s))
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $newlines:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(CompactString);

        impl $name {
            /// The most characters this field holds.
            pub const MAX_CHARS: usize = $max;

            /// Parses the field, trimming surrounding white space.
            pub fn parse(s: &str) -> Result<Self, TextError> {
                bounded(s, $max, $newlines).map($name)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        text_newtype_conversions!($name, TextError);
    };
}

text_type!(
    /// A person's name as shown in lists and mail: 1–100 characters on one line.
    DisplayName, 100, false
);
text_type!(
    /// A short attribute such as an organisation or department: 1–100 characters on one line.
    ShortText, 100, false
);
text_type!(
    /// Notes about a member: up to 1,000 characters, line breaks allowed.
    Notes, 1000, true
);

impl DisplayName {
    /// The form used to sort and search by name: Unicode NFKC (so full-width and half-width
    /// forms meet) and lower case.
    ///
    /// ```
    /// use rollcall::domain::DisplayName;
    /// assert_eq!(DisplayName::parse("ＹＡＭＡＤＡ ﾀﾛｳ").unwrap().sort_key(), "yamada タロウ");
    /// ```
    pub fn sort_key(&self) -> String {
        search_key(&self.0)
    }
}

/// Normalises a name or a name prefix typed into a search box the way [`DisplayName::sort_key`]
/// does, so prefixes match.
pub fn search_key(s: &str) -> String {
    s.trim().nfkc().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_trimmed_bounded_in_characters_and_single_line() {
        assert_eq!(
            DisplayName::parse("  山田 太郎 ").unwrap().as_str(),
            "山田 太郎"
        );
        assert!(DisplayName::parse(&"髙".repeat(100)).is_ok());
        assert_eq!(
            DisplayName::parse(&"髙".repeat(101)),
            Err(TextError::TooLong { max: 100 })
        );
        assert_eq!(DisplayName::parse(" "), Err(TextError::Empty));
        assert_eq!(DisplayName::parse("a\r\nBcc: x"), Err(TextError::Control));
    }

    #[test]
    fn names_that_would_show_differently_from_what_they_hold_are_refused() {
        assert_eq!(
            DisplayName::parse("admin\u{202E}txt.exe"),
            Err(TextError::BidiControl)
        );
        assert_eq!(
            DisplayName::parse("a\u{2066}b\u{2069}"),
            Err(TextError::BidiControl)
        );
        assert_eq!(
            DisplayName::parse("\u{200B}\u{200C}\u{200D}"),
            Err(TextError::Invisible)
        );
        assert_eq!(
            DisplayName::parse("\u{3164}\u{FEFF}"),
            Err(TextError::Invisible)
        );
        assert_eq!(
            DisplayName::parse("Taro\u{E0041}\u{E007F}"),
            Err(TextError::Hidden)
        );
        assert_eq!(DisplayName::parse("x\u{FFFE}"), Err(TextError::Hidden));
        assert_eq!(DisplayName::parse("x\u{FDD0}"), Err(TextError::Hidden));
        assert_eq!(
            ShortText::parse("\u{202D}営業部"),
            Err(TextError::BidiControl)
        );
        // Real names keep working, with the joiners and selectors they may need.
        for name in [
            "山田 太郎",
            "髙橋 健二",
            "Zoë O'Brien",
            "محمد",
            "میخواهم\u{200C}ها",
            "👩\u{200D}💻 Dev",
            "葛\u{E0100}城",
            "ｶﾀｶﾅ　全角",
        ] {
            assert!(DisplayName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn notes_may_span_lines() {
        assert!(Notes::parse("line one\nline two").is_ok());
        assert_eq!(Notes::parse("bell\u{7}"), Err(TextError::Control));
    }

    proptest! {
        #[test]
        fn a_parsed_name_has_no_control_characters(s in "\\PC{0,120}|[\\x00-\\x1f ]{0,5}") {
            if let Ok(n) = DisplayName::parse(&s) {
                prop_assert!(!n.as_str().chars().any(char::is_control));
                prop_assert!(n.as_str().chars().count() <= 100);
                prop_assert_eq!(n.as_str().trim(), n.as_str());
            }
        }

        #[test]
        fn the_fast_checks_agree_with_the_character_by_character_ones(s in "[ \t\r\n\u{3000}aAZ@\\[\x00\u{85}\u{9f}\u{a0}\u{c1}\u{da}髙]{0,20}|\\PC{0,12}|\\p{Cc}{0,3}") {
            prop_assert_eq!(trim(&s), s.trim());
            prop_assert_eq!(has_ascii_uppercase(&s), s.bytes().any(|b| b.is_ascii_uppercase()));
            for newlines in [false, true] {
                let slow = s.chars().any(|c| {
                    c.is_control() && !(newlines && matches!(c, '\n' | '\r' | '\t'))
                });
                prop_assert_eq!(has_control(&s, newlines), slow);
            }
            for max in [0, 1, 3, 5] {
                prop_assert_eq!(longer_than(&s, max), s.chars().count() > max);
            }
        }

        #[test]
        fn a_name_starts_with_its_own_prefix_once_normalised(s in "[a-zA-Zａ-ｚア-ン ]{1,30}", cut in 0usize..30) {
            if let Ok(n) = DisplayName::parse(&s) {
                let prefix: String = n.as_str().chars().take(cut).collect();
                prop_assert!(n.sort_key().starts_with(&search_key(&prefix)) || prefix.ends_with(' '));
            }
        }
    }
}
