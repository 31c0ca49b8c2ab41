//! Reading requests at the edge: JSON bodies (size-limited, content-typed, objects only),
//! their fields one by one with errors that name the field, query parameters, `If-Match` and
//! `Idempotency-Key`. Everything past here works on domain values.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::AppState;
use crate::problem::{ApiError, FieldProblem};

/// A JSON object body, read within the configured size limit.
#[derive(Debug)]
pub struct JsonObject {
    /// The members.
    pub map: Map<String, Value>,
    /// SHA-256 (hex) of the canonical form (sorted keys, no white space), so that two bodies
    /// that mean the same compare equal for idempotency.
    pub canonical_hash: String,
}

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.limits.max_body_bytes;
        let bytes = read_body(req.into_body(), limit).await?;
        let UniqueKeys(value) =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ApiError::InvalidJson("expected a JSON object".into()));
        };
        let mut canonical = String::with_capacity(bytes.len());
        canonical_json(&Value::Object(map.clone()), &mut canonical);
        let canonical_hash = rollcall::digest::sha256_hex(canonical.as_bytes());
        Ok(JsonObject {
            map,
            canonical_hash,
        })
    }
}

/// A JSON value whose objects never name a member twice. RFC 8259 §4 says names "SHOULD be
/// unique" and leaves duplicates to the parser; `serde_json` keeps the last, so
/// `{"login_id":"a","login_id":"b"}` would mean `b` to us and possibly `a` to a proxy or a log
/// reader in front of us. Such a body is refused instead.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(serde::de::Error::custom(format_args!(
                    "the member {name:?} appears more than once"
                )));
            }
            let UniqueKeys(v) = map.next_value()?;
            members.insert(name, v);
        }
        Ok(Value::Object(members))
    }
}

/// Writes `v` with object members sorted by name and no white space, whatever order the
/// client sent them in (and whatever order `serde_json` keeps maps in).
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut names: Vec<&String> = map.keys().collect();
            names.sort();
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                canonical_json(&map[name], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))
}

/// A member of a PATCH body: absent (leave alone), `null` (clear) or a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not in the body.
    Absent,
    /// `null`.
    Null,
    /// A value.
    Value(T),
}

/// Takes the members of a JSON object one by one, recording a [`FieldProblem`] for each member
/// of the wrong type and, at the end, for each member nobody asked for.
#[derive(Debug)]
pub struct Fields {
    map: Map<String, Value>,
    /// Problems found so far.
    pub problems: Vec<FieldProblem>,
}

impl Fields {
    /// Starts reading `map`.
    pub fn new(map: Map<String, Value>) -> Self {
        Fields {
            map,
            problems: Vec::new(),
        }
    }

    fn wrong_type(&mut self, name: &str, expected_ja: &str, expected_en: &str) {
        self.problems.push(FieldProblem::custom(
            name,
            "wrong_type",
            &format!("{expected_ja}で指定してください。"),
            &format!("Must be {expected_en}."),
        ));
    }

    /// A string member.
    pub fn string(&mut self, name: &str) -> Patch<String> {
        match self.map.remove(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::String(s)) => Patch::Value(s),
            Some(_) => {
                self.wrong_type(name, "文字列", "a string");
                Patch::Absent
            }
        }
    }

    /// A boolean member; `null` is refused like any other non-boolean (a flag can't be
    /// cleared, only turned off).
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.map.remove(name) {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.wrong_type(name, "true か false", "true or false");
                None
            }
        }
    }

    /// An array-of-strings member.
    pub fn strings(&mut self, name: &str) -> Patch<Vec<String>> {
        match self.map.remove(name) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Array(items)) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                match strings {
                    Some(s) => Patch::Value(s),
                    None => {
                        self.wrong_type(name, "文字列の配列", "an array of strings");
                        Patch::Absent
                    }
                }
            }
            Some(_) => {
                self.wrong_type(name, "文字列の配列", "an array of strings");
                Patch::Absent
            }
        }
    }

    /// A required string member: absent or `null` is a `required` problem.
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        match self.string(name) {
            Patch::Value(s) => Some(s),
            Patch::Absent | Patch::Null => {
                if !self.problems.iter().any(|p| p.field == name) {
                    self.problems.push(FieldProblem::custom(
                        name,
                        "required",
                        "入力してください。",
                        "This field is required.",
                    ));
                }
                None
            }
        }
    }

    /// Parses a string member into a domain value, recording the domain's error under the
    /// member's name.
    pub fn parse<T, E: rollcall::domain::Localized>(
        &mut self,
        name: &str,
        raw: Patch<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Patch<T> {
        match raw {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(s) => match parse(&s) {
                Ok(v) => Patch::Value(v),
                Err(e) => {
                    self.problems.push(FieldProblem::new(name, &e));
                    Patch::Absent
                }
            },
        }
    }

    /// Records `problem`.
    pub fn problem(&mut self, problem: FieldProblem) {
        self.problems.push(problem);
    }

    /// Ends reading: any member left over is an `unknown_field` problem. Returns every problem.
    pub fn finish(mut self) -> Vec<FieldProblem> {
        let mut left: Vec<String> = self.map.keys().cloned().collect();
        left.sort();
        for name in left {
            self.problems.push(FieldProblem::custom(
                name,
                "unknown_field",
                "この項目は指定できません。",
                "Unknown field.",
            ));
        }
        self.problems
    }
}

/// Parses an RFC 3339 timestamp (`2026-04-01T00:00:00+09:00`).
pub fn timestamp(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| TimestampError)
}

/// The text is not an RFC 3339 timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp")]
pub struct TimestampError;

impl rollcall::domain::Localized for TimestampError {
    fn code(&self) -> &'static str {
        "timestamp_invalid"
    }
    fn message(&self, lang: rollcall::domain::Language) -> String {
        match lang {
            rollcall::domain::Language::Ja => {
                "日時は 2026-04-01T09:00:00+09:00 の形式で指定してください。".into()
            }
            rollcall::domain::Language::En => {
                "Use an RFC 3339 timestamp such as 2026-04-01T09:00:00+09:00.".into()
            }
        }
    }
}

/// The query string as name/value pairs, refusing any name not in `allowed`.
#[derive(Debug)]
pub struct QueryParams(pub Vec<(String, String)>);

impl FromRequestParts<AppState> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryParams(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl QueryParams {
    /// The value of `name`, if given (the last one wins).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parses parameter `name` into a domain value if given, recording the domain's error under
    /// the parameter's name.
    pub fn parse<T, E: rollcall::domain::Localized>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
        problems: &mut Vec<FieldProblem>,
    ) -> Option<T> {
        match parse(self.get(name)?) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(FieldProblem::new(name, &e));
                None
            }
        }
    }

    /// Problems for every parameter not in `allowed`.
    pub fn unknown(&self, allowed: &[&str]) -> Vec<FieldProblem> {
        let mut seen = Vec::new();
        for (k, _) in &self.0 {
            if !allowed.contains(&k.as_str()) && !seen.contains(k) {
                seen.push(k.clone());
            }
        }
        seen.into_iter()
            .map(|k| {
                FieldProblem::custom(
                    k,
                    "unknown_parameter",
                    "このパラメータは使えません。",
                    "Unknown query parameter.",
                )
            })
            .collect()
    }
}

/// What an `If-Match` header asks for (RFC 9110 §13.1.1: `"*"` or a list of entity tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header: the write is based on the version just read.
    Absent,
    /// `*`: any current version.
    Any,
    /// One of these versions (strong comparison: weak tags, and tags that are no version of
    /// ours, match nothing).
    Versions(Vec<u64>),
    /// Not `*` nor a list of entity tags: refused with 400 rather than guessed at.
    Malformed,
}

/// An `entity-tag` (RFC 9110 §8.8.3): `W/` for a weak one, then `"etagc*"`. Returns the
/// version a strong tag names, `Some(None)` for a well-formed tag that names none, `None` for
/// text that is no tag. (`,` is kept out of tags: it separates them.)
fn entity_tag(tag: &str) -> Option<Option<u64>> {
    let (weak, quoted) = match tag.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    if !inner
        .bytes()
        .all(|b| b == 0x21 || ((0x23..=0x7e).contains(&b) && b != b','))
    {
        return None;
    }
    Some(if weak {
        None
    } else {
        inner.parse::<u64>().ok()
    })
}

impl IfMatch {
    /// Reads the header.
    pub fn from_headers(headers: &HeaderMap) -> IfMatch {
        let fields: Vec<_> = headers.get_all(header::IF_MATCH).iter().collect();
        if fields.is_empty() {
            return IfMatch::Absent;
        }
        let mut versions = Vec::new();
        for field in fields {
            let Ok(text) = field.to_str() else {
                return IfMatch::Malformed;
            };
            if text.trim() == "*" {
                return IfMatch::Any;
            }
            for tag in text.split(',').map(str::trim) {
                match entity_tag(tag) {
                    Some(Some(v)) => versions.push(v),
                    Some(None) => {}
                    None => return IfMatch::Malformed,
                }
            }
        }
        IfMatch::Versions(versions)
    }

    /// Checks the current version.
    pub fn check(&self, current: u64) -> Result<(), ApiError> {
        match self {
            IfMatch::Absent | IfMatch::Any => Ok(()),
            IfMatch::Versions(v) if v.contains(&current) => Ok(()),
            IfMatch::Versions(_) => Err(ApiError::PreconditionFailed),
            IfMatch::Malformed => Err(ApiError::BadRequest(vec![FieldProblem::custom(
                "If-Match",
                "if_match_invalid",
                "If-Match は * か、ETag（\"3\" のような値）をカンマで区切って指定してください。",
                "If-Match is * or a comma-separated list of entity tags such as \"3\".",
            )])),
        }
    }
}

/// The entity tag of a user version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Reads `Idempotency-Key`: 1–255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(k) => Ok(Some(k.to_owned())),
        None => Err(ApiError::BadRequest(vec![FieldProblem::custom(
            "Idempotency-Key",
            "idempotency_key_invalid",
            "Idempotency-Key は1〜255文字の半角英数字記号で指定してください。",
            "Idempotency-Key must be 1-255 visible ASCII characters.",
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn if_match_accepts_star_lists_and_refuses_weak_or_malformed_tags() {
        let mut h = HeaderMap::new();
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Absent);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"3\", \"4\""));
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Versions(vec![3, 4]));
        assert!(IfMatch::from_headers(&h).check(4).is_ok());
        assert!(IfMatch::from_headers(&h).check(5).is_err());
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Versions(vec![]));
        assert!(IfMatch::from_headers(&h).check(3).is_err());
        for malformed in ["", "3", "_/", "\"3\",", "\"3", "\"a\"b\"", "W/3"] {
            h.insert(header::IF_MATCH, HeaderValue::from_static(malformed));
            assert_eq!(IfMatch::from_headers(&h), IfMatch::Malformed, "{malformed}");
            assert!(matches!(
                IfMatch::from_headers(&h).check(3),
                Err(ApiError::BadRequest(_))
            ));
        }
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"x\", \"4\""));
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Versions(vec![4]));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert!(IfMatch::from_headers(&h).check(99).is_ok());
    }

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        let read = |text: &str| serde_json::from_str::<UniqueKeys>(text).map(|u| u.0);
        let e = read(r#"{"login_id":"a","login_id":"b"}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"login_id\" appears more than once"),
            "{e}"
        );
        assert!(read(r#"{"a":[{"x":1,"x":2}]}"#).is_err());
        assert_eq!(
            read(r#"{"a":[1,2.5,null,true,{"x":"y"}],"b":{}}"#).unwrap(),
            serde_json::json!({"a":[1,2.5,null,true,{"x":"y"}],"b":{}})
        );
    }

    #[test]
    fn bodies_that_differ_only_in_member_order_or_spacing_are_canonically_equal() {
        let canonical = |text: &str| {
            let mut out = String::new();
            canonical_json(&serde_json::from_str(text).unwrap(), &mut out);
            out
        };
        let a = canonical(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#);
        let b = canonical(r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
        assert_ne!(
            a,
            canonical(r#"{"a":null,"b":[{"x":"é","y":2},1]}"#),
            "array order matters"
        );
    }

    #[test]
    fn unknown_and_mistyped_members_are_each_reported_by_name() {
        let map =
            serde_json::json!({"name": 5, "groups": ["a", 1], "extra": true, "email": "a@b.co"});
        let Value::Object(map) = map else {
            unreachable!()
        };
        let mut f = Fields::new(map);
        assert_eq!(f.string("email"), Patch::Value("a@b.co".into()));
        assert_eq!(f.string("name"), Patch::Absent);
        assert_eq!(f.strings("groups"), Patch::Absent);
        let fields: Vec<(String, &str)> =
            f.finish().into_iter().map(|p| (p.field, p.code)).collect();
        assert_eq!(
            fields,
            vec![
                ("name".into(), "wrong_type"),
                ("groups".into(), "wrong_type"),
                ("extra".into(), "unknown_field")
            ]
        );
    }
}
