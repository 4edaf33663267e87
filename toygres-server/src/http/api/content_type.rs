//! Bodies of changes are JSON. A web page can send a `text/plain`, form or multipart body to any
//! address without a CORS preflight, but never `application/json`; requiring it closes that door
//! for every change, with or without tokens. [`require_json`] is a route layer of
//! [`super::router`], so every route (present or future) gets it: a change (any method but
//! `GET`, `HEAD`, `OPTIONS`, `TRACE`) that carries a body, or says what its body is, must say
//! `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed, any case),
//! else `415 unsupported_media_type`. A change with neither body nor type (`DELETE`) passes.

use super::error::{ApiError, quoted};
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The one media type of request bodies.
pub const JSON: &str = "application/json";

/// Middleware: answers `415` to a change whose body is not declared as JSON.
pub async fn require_json(request: Request, next: Next) -> Response {
    // Neither `Content-Length` (above 0) nor `Transfer-Encoding`: HTTP/1.1 framing says no body.
    let has_body = !request.body().is_end_stream();
    match check(request.method(), request.headers(), has_body) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::info!(reason = %error, "request refused");
            error.into_response()
        }
    }
}

/// `Ok` unless `method` is a change whose `Content-Type` is not JSON, or missing while the
/// request has a body. A form with no fields has an empty body but still names its type: it is
/// refused too, so routes without a body are no target for forms either.
fn check(method: &Method, headers: &HeaderMap, has_body: bool) -> Result<(), ApiError> {
    if is_safe(method) {
        return Ok(());
    }
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (None, _) if !has_body => Ok(()),
        (None, _) => Err(ApiError::UnsupportedMediaType(format!(
            "the request has a body but no Content-Type: send it as JSON with 'Content-Type: {JSON}' (curl: -H 'Content-Type: {JSON}')"
        ))),
        (Some(_), Some(_)) => Err(ApiError::UnsupportedMediaType(format!(
            "send exactly one Content-Type header, 'Content-Type: {JSON}'"
        ))),
        (Some(value), None) if is_json(value.as_bytes()) => Ok(()),
        (Some(value), None) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{}' is not accepted: the body of a change must be JSON, sent with 'Content-Type: {JSON}' (curl: -H 'Content-Type: {JSON}')",
            quoted(value.as_bytes())
        ))),
    }
}

/// Methods that change nothing (RFC 9110 "safe"); every other method counts as a change.
fn is_safe(method: &Method) -> bool {
    [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE].contains(method)
}

/// Whether a `Content-Type` value is `application/json`, whatever its parameters and case.
fn is_json(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| {
        let essence = text.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case(JSON)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(header::CONTENT_TYPE, value);
            }
        }
        headers
    }

    fn allowed(method: Method, values: &[&str], has_body: bool) -> bool {
        check(&method, &typed(values), has_body).is_ok()
    }

    #[test]
    fn json_with_any_parameters_and_case() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ; foo=bar",
        ] {
            assert!(allowed(Method::POST, &[value], true), "{value}");
            assert!(allowed(Method::PATCH, &[value], true), "{value}");
        }
    }

    #[test]
    fn anything_else_on_a_change_is_refused() {
        for value in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonp",
            "application/json-seq",
            "application/merge-patch+json",
            "application/json, text/plain",
            "",
        ] {
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let refused = check(&method, &typed(&[value]), true);
                assert!(
                    matches!(&refused, Err(error) if error.code() == "unsupported_media_type"),
                    "{method} {value}"
                );
            }
            // Even without a body: an empty form still names its type.
            assert!(!allowed(Method::DELETE, &[value], false), "{value}");
        }
        assert!(!allowed(
            Method::POST,
            &["application/json", "text/plain"],
            true
        ));
        assert!(!allowed(Method::POST, &[], true));
        assert!(!allowed(
            Method::from_bytes(b"PURGE").unwrap_or_default(),
            &[],
            true
        ));
    }

    #[test]
    fn changes_without_body_or_type_and_reads_pass() {
        assert!(allowed(Method::DELETE, &[], false));
        assert!(allowed(Method::POST, &[], false));
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(allowed(method.clone(), &["text/plain"], true), "{method}");
            assert!(allowed(method, &[], true));
        }
    }

    #[test]
    fn refusals_say_what_to_send() {
        for (values, has_body) in [(vec!["text/plain"], true), (vec![], true)] {
            let message = check(&Method::POST, &typed(&values), has_body)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default();
            assert!(
                message.contains("Content-Type: application/json"),
                "{message}"
            );
        }
    }
}
