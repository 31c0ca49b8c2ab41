//! What SQS hands bulk-import besides apply requests: S3's event notification of an upload,
//! and its object key, which arrives URL-encoded.

use serde::Deserialize;

/// An S3 event notification (S3's own shape, which moto also sends), or S3's test message.
/// Written here rather than taken from `aws_lambda_events::s3`: that crate's record requires
/// `userIdentity`, `requestParameters` and `responseElements`, which the body moto sends lacks
/// (real S3 sends them; this reads only what both send).
#[derive(Debug, Deserialize)]
pub(crate) struct Notification {
    #[serde(rename = "Records", default)]
    pub(crate) records: Vec<S3Record>,
    #[serde(rename = "Event", default)]
    pub(crate) event: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct S3Record {
    #[serde(rename = "eventName", default)]
    pub(crate) event_name: String,
    pub(crate) s3: S3Entity,
}

#[derive(Debug, Deserialize)]
pub(crate) struct S3Entity {
    pub(crate) bucket: S3Bucket,
    pub(crate) object: S3Object,
}

#[derive(Debug, Deserialize)]
pub(crate) struct S3Bucket {
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct S3Object {
    pub(crate) key: String,
    #[serde(rename = "eTag", default)]
    pub(crate) e_tag: Option<String>,
}

/// An ETag without the quotes HeadObject puts around it (S3 events send it bare).
pub(crate) fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Decodes an S3 event key, which S3 sends form-URL-encoded: `+` is a space and `%XX` a byte.
/// Bytes that are not UTF-8 are an error, never replaced with U+FFFD (a key decoded wrongly
/// would name another object).
pub fn decode_key(key: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_key("imports/acme/a+b%2Bc%E6%97%A5.csv").unwrap(),
            "imports/acme/a b+c日.csv"
        );
        assert_eq!(decode_key("100%").unwrap(), "100%");
        assert_eq!(decode_key("%zz").unwrap(), "%zz");
    }

    #[test]
    fn a_key_whose_bytes_are_not_utf8_is_an_error() {
        assert!(decode_key("imports/acme/%FF%FE.csv").is_err());
        assert!(decode_key("imports/acme/%E6%97.csv").is_err());
    }
}
