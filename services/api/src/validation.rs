//! Bounds and checks on what clients send, applied before anything reaches the store.
//!
//! PostgreSQL refuses NUL characters in text and JSONB; they are refused here (422) so a
//! hostile string can never turn into a 500.

use moolai_protocol::validate_id;
use serde_json::Value;

use crate::error::ApiError;

/// Largest page size of every listing.
pub const MAX_PAGE_SIZE: i64 = 100;
/// Pages beyond this are refused: the offset would be absurd and expensive.
pub const MAX_PAGE: i64 = 1_000_000;
/// Longest free-text filter (search, audit filters).
pub const MAX_FILTER_LEN: usize = 128;

/// Resolves `page` / `page_size` with their bounds (400 when out of range).
///
/// # Errors
/// [`ApiError::BadRequest`] naming the parameter.
pub fn page(
    page: Option<i64>,
    page_size: Option<i64>,
    default_size: u32,
) -> Result<(u32, u32), ApiError> {
    let page = page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request(format!(
            "page must be between 1 and {MAX_PAGE}"
        )));
    }
    let size = page_size.unwrap_or(i64::from(default_size));
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::bad_request(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    // Both are bounded above, so the conversions cannot fail.
    Ok((
        u32::try_from(page).unwrap_or(1),
        u32::try_from(size).unwrap_or(default_size),
    ))
}

/// Resolves a `limit` parameter (400 when out of `1..=max`).
///
/// # Errors
/// [`ApiError::BadRequest`].
pub fn limit(limit: Option<i64>, default: u32, max: u32) -> Result<u32, ApiError> {
    let value = limit.unwrap_or(i64::from(default));
    if !(1..=i64::from(max)).contains(&value) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}"
        )));
    }
    Ok(u32::try_from(value).unwrap_or(default))
}

/// An id taken from the path or the query: 400 when it cannot be an id at all.
///
/// # Errors
/// [`ApiError::BadRequest`].
pub fn id_param(field: &str, id: &str) -> Result<(), ApiError> {
    validate_id(field, id).map_err(|e| ApiError::BadRequest(e.message))
}

/// An optional id filter from the query.
///
/// # Errors
/// [`ApiError::BadRequest`].
pub fn optional_id_param(field: &str, id: Option<&str>) -> Result<(), ApiError> {
    id.map_or(Ok(()), |id| id_param(field, id))
}

/// A free-text query filter: bounded, no control characters. Empty means no filter.
///
/// # Errors
/// [`ApiError::BadRequest`].
pub fn text_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > MAX_FILTER_LEN => Err(ApiError::bad_request(format!(
            "{field} must be at most {MAX_FILTER_LEN} characters"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(ApiError::bad_request(format!(
            "{field} must not contain control characters"
        ))),
        Some(v) => Ok(Some(v)),
    }
}

/// Text from a body: no NUL (PostgreSQL cannot store it).
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn storable_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(format!(
            "{field} must not contain NUL characters"
        )));
    }
    Ok(())
}

/// A JSON value from a body: no NUL in any key or string, nested at most 32 levels.
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn storable_json(field: &str, value: &Value) -> Result<(), ApiError> {
    fn walk(value: &Value, depth: usize) -> Result<(), &'static str> {
        if depth > 32 {
            return Err("is nested too deeply");
        }
        match value {
            Value::String(s) if s.contains('\0') => Err("must not contain NUL characters"),
            Value::Array(items) => items.iter().try_for_each(|v| walk(v, depth + 1)),
            Value::Object(map) => map.iter().try_for_each(|(k, v)| {
                if k.contains('\0') {
                    Err("must not contain NUL characters")
                } else {
                    walk(v, depth + 1)
                }
            }),
            _ => Ok(()),
        }
    }
    walk(value, 0).map_err(|why| ApiError::invalid(format!("{field} {why}")))
}

/// A required JSON object from a body.
///
/// # Errors
/// [`ApiError::Invalid`] when it is not an object or not storable.
pub fn json_object(field: &str, value: &Value) -> Result<(), ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(format!("{field} must be a JSON object")));
    }
    storable_json(field, value)
}

/// An optional JSON object from a body (`null` counts as absent).
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn optional_json_object(field: &str, value: Option<&Value>) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) => json_object(field, v),
    }
}

/// Longest user name.
pub const MAX_USERNAME_LEN: usize = 64;

/// A user name: 1 to 64 of ASCII letters, digits, `.`, `_`, `-`, `@` (it appears in audit
/// actors as `user:<name>` and in paths).
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn username(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "username must be 1 to {MAX_USERNAME_LEN} characters: letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// A new password: long enough to resist guessing, short enough not to be abuse.
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if (crate::password::MIN_PASSWORD_LEN..=crate::password::MAX_PASSWORD_LEN).contains(&len)
        && !password.contains('\0')
    {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "password must be {} to {} characters",
            crate::password::MIN_PASSWORD_LEN,
            crate::password::MAX_PASSWORD_LEN
        )))
    }
}

/// A name given to a token: 1 to 255 characters, no control characters.
///
/// # Errors
/// [`ApiError::Invalid`].
pub fn token_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name must be 1 to 255 characters without control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages() {
        assert_eq!(page(None, None, 10).unwrap(), (1, 10));
        assert_eq!(page(Some(3), Some(100), 10).unwrap(), (3, 100));
        for (p, s) in [
            (Some(0), None),
            (Some(-1), None),
            (None, Some(0)),
            (None, Some(101)),
        ] {
            assert_eq!(page(p, s, 10).unwrap_err().status().as_u16(), 400);
        }
        assert_eq!(limit(None, 100, 500).unwrap(), 100);
        assert!(limit(Some(501), 100, 500).is_err());
        assert!(limit(Some(0), 100, 500).is_err());
    }

    #[test]
    fn nul_is_refused_anywhere_in_json() {
        assert!(storable_json("m", &json!({"a": ["ok", {"b": "x\u{0}y"}]})).is_err());
        assert!(storable_json("m", &json!({"a\u{0}": 1})).is_err());
        assert!(storable_json("m", &json!({"a": "'; DROP TABLE x; -- 🚀 <script>"})).is_ok());
        assert!(json_object("m", &json!([1])).is_err());
        assert!(optional_json_object("m", Some(&Value::Null)).is_ok());
    }

    #[test]
    fn filters() {
        assert_eq!(text_filter("search", Some(String::new())).unwrap(), None);
        assert!(text_filter("search", Some("x".repeat(129))).is_err());
        assert!(text_filter("search", Some("a\u{0}".into())).is_err());
        assert_eq!(
            text_filter("search", Some("ünï".into()))
                .unwrap()
                .as_deref(),
            Some("ünï")
        );
    }

    #[test]
    fn usernames_and_passwords() {
        for ok in ["admin", "ops.team-1", "a_b@example.com", &"x".repeat(64)] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "with space",
            "semi;colon",
            "ünïcode",
            &"x".repeat(65),
            "a/b",
        ] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert!(password("twelve chars").is_ok());
        assert!(password("eleven char").is_err());
        assert!(password(&"p".repeat(1025)).is_err());
        assert!(password("twelve chars\0").is_err());
        assert!(token_name("ci deploy").is_ok());
        assert!(token_name("  ").is_err());
        assert!(token_name("tab\there").is_err());
    }
}
