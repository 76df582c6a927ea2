//! How sqlx errors become [`StoreError`]s, and how a database URL is shown without its
//! password.

use moolai_store::StoreError;

/// Maps a sqlx error to the store's error classes (which the API turns into status codes).
pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(message),
                sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::CheckViolation
                | sqlx::error::ErrorKind::NotNullViolation => StoreError::Invalid(message),
                _ => match db.code().as_deref() {
                    // Class 22 (data exception): a value too long for its column, a bad JSON
                    // text, an out-of-range number. The caller sent something the API let by.
                    Some(code) if code.starts_with("22") => StoreError::Invalid(message),
                    // Class 08 (connection exception), 53 (insufficient resources: too many
                    // connections, disk full), 57P01..57P03 (admin shutdown, crash shutdown,
                    // cannot connect now): the database is there but cannot serve us.
                    Some(code)
                        if code.starts_with("08")
                            || code.starts_with("53")
                            || matches!(code, "57P01" | "57P02" | "57P03") =>
                    {
                        StoreError::Unavailable(message)
                    }
                    _ => StoreError::Other(format!(
                        "{message} (SQLSTATE {})",
                        db.code().as_deref().unwrap_or("?")
                    )),
                },
            }
        }
        other => StoreError::Other(other.to_string()),
    }
}

/// The URL with its password (userinfo or `password=` parameter) replaced by `***`, for
/// error messages and logs.
#[must_use]
pub fn mask_database_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut masked = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        masked.push('?');
        masked.push_str(&params.join("&"));
    }
    masked
}

/// The password embedded in a URL, so it can be scrubbed from driver messages too.
pub(crate) fn url_password(url: &str) -> Option<String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let from_userinfo = base.split_once("://").and_then(|(_, rest)| {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        let (userinfo, _) = authority.rsplit_once('@')?;
        let (_, password) = userinfo.split_once(':')?;
        Some(password.to_owned())
    });
    from_userinfo
        .or_else(|| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.eq_ignore_ascii_case("password")
                    .then(|| value.to_owned())
            })
        })
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_userinfo_password() {
        assert_eq!(
            mask_database_url("postgres://moolai:s3cret@db.internal:5432/moolai"),
            "postgres://moolai:***@db.internal:5432/moolai"
        );
        assert_eq!(
            url_password("postgres://moolai:s3cret@db.internal:5432/moolai").as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn masks_query_password_and_keeps_the_rest() {
        assert_eq!(
            mask_database_url("postgres://db/moolai?user=moolai&password=pw&sslmode=require"),
            "postgres://db/moolai?user=moolai&password=***&sslmode=require"
        );
        assert_eq!(
            url_password("postgres://db/moolai?password=pw").as_deref(),
            Some("pw")
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        assert_eq!(mask_database_url(url), url);
        assert_eq!(url_password(url), None);
        assert_eq!(mask_database_url("not a url"), "not a url");
    }
}
