//! Validation of identifiers and payloads that arrive from outside.
//!
//! Identifiers end up in NATS subject tokens and URL paths, so they are restricted to a
//! conservative alphabet: no `.`, `*`, `>` or whitespace can ever reach a subject.

use serde_json::Value;

/// Longest accepted orchestrator or organization id.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted message content, in bytes.
pub const MAX_MESSAGE_CONTENT: usize = 16 * 1024;
/// Longest accepted free-text field (name, location, hostname…), in bytes.
pub const MAX_TEXT_LEN: usize = 255;

/// Why a frame or a field was refused. The `code` is stable and goes into `error` frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub code: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Checks an orchestrator or organization id: 1–128 characters of `A-Z a-z 0-9 _ - :`.
///
/// # Errors
/// `invalid_id` naming the field when the id is empty, too long or has other characters.
pub fn validate_id(field: &str, id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            "invalid_id",
            format!("{field} must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
    {
        return Err(ValidationError::new(
            "invalid_id",
            format!("{field} may contain only letters, digits, '_', '-' and ':'"),
        ));
    }
    Ok(())
}

/// Checks an optional short text field (name, location).
///
/// # Errors
/// `invalid_field` when longer than [`MAX_TEXT_LEN`] bytes.
pub fn validate_text(field: &str, value: Option<&str>) -> Result<(), ValidationError> {
    match value {
        Some(v) if v.len() > MAX_TEXT_LEN => Err(ValidationError::new(
            "invalid_field",
            format!("{field} must be at most {MAX_TEXT_LEN} bytes"),
        )),
        _ => Ok(()),
    }
}

/// Checks that a JSON value, when present, is an object (metadata, features, config).
///
/// # Errors
/// `invalid_field` when the value is not a JSON object.
pub fn validate_object(field: &str, value: Option<&Value>) -> Result<(), ValidationError> {
    match value {
        None | Some(Value::Object(_) | Value::Null) => Ok(()),
        Some(_) => Err(ValidationError::new(
            "invalid_field",
            format!("{field} must be a JSON object"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("orchestrator_id", "orch-001").is_ok());
        assert!(validate_id("orchestrator_id", "org:eu_1").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "ü", &"x".repeat(129)] {
            assert_eq!(
                validate_id("orchestrator_id", bad).unwrap_err().code,
                "invalid_id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn objects_and_text() {
        assert!(validate_object("metadata", Some(&serde_json::json!({"a":1}))).is_ok());
        assert!(validate_object("metadata", Some(&serde_json::json!([1]))).is_err());
        assert!(validate_text("name", Some(&"n".repeat(256))).is_err());
        assert!(validate_text("name", Some("ok")).is_ok());
    }
}
