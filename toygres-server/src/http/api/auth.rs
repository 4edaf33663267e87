//! Bearer-token authentication of API requests: which routes are public, which methods a
//! read-only token may use, and the `401`/`403` answers. Tokens are never logged.

use super::error::ApiError;
use crate::security::tokens::{ApiTokens, Role, TokenId};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Routes answered without a token: liveness, readiness and the API's own description.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// How the API authenticates requests.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No token configured: every request is allowed (the server listens on loopback only, and
    /// [`super::cross_site`] answers only requests addressed to loopback from its own origin).
    Disabled,
    /// Every route but [`PUBLIC_PATHS`] needs one of these tokens.
    Tokens(Arc<ApiTokens>),
}

/// Who sent a request, as [`require_token`] found it; in the extensions of every request it let
/// through to a route that is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No token is configured: everyone on loopback is the one local caller.
    Local,
    /// The bearer of this token.
    Token(TokenId),
}

/// Middleware: lets a request through when its route is public, authentication is disabled, or
/// it carries a token whose role allows its method (recording the [`Caller`]); answers
/// `401`/`403` otherwise.
pub async fn require_token(
    State(authentication): State<Authentication>,
    mut request: Request,
    next: Next,
) -> Response {
    let Authentication::Tokens(tokens) = authentication else {
        request.extensions_mut().insert(Caller::Local);
        return next.run(request).await;
    };
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match check(&tokens, request.headers(), request.method()) {
        Ok(id) => {
            request.extensions_mut().insert(Caller::Token(id));
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(reason = %error, "request refused");
            metrics::counter!("toygres_http_auth_refusals_total", "code" => error.code())
                .increment(1);
            error.into_response()
        }
    }
}

/// The id of the token `headers` carry, when it is allowed to use `method`.
fn check(tokens: &ApiTokens, headers: &HeaderMap, method: &Method) -> Result<TokenId, ApiError> {
    let presented = bearer_token(headers)?;
    match tokens.identify(presented) {
        None => Err(ApiError::Unauthorized(
            "the bearer token is not valid".into(),
        )),
        Some((Role::ReadOnly, _)) if !is_read(method) => Err(ApiError::Forbidden(
            "this token is read-only: it may only use GET".into(),
        )),
        Some((_, id)) => Ok(id),
    }
}

/// Methods a read-only token may use.
fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The token of the one `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (Some(value), None) => value,
        (None, _) => {
            return Err(ApiError::Unauthorized(
                "a bearer token is required: send 'Authorization: Bearer <token>'".into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::Unauthorized(
                "send exactly one Authorization header".into(),
            ));
        }
    };
    let malformed =
        || ApiError::Unauthorized("the Authorization header must be 'Bearer <token>'".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ADMIN: &str = "admin-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    fn tokens() -> Result<ApiTokens, crate::security::tokens::TokenConfigError> {
        ApiTokens::parse(&format!("admin:{ADMIN},readonly:{READER}"))
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(header::AUTHORIZATION, value);
            }
        }
        headers
    }

    fn code(outcome: Result<TokenId, ApiError>) -> &'static str {
        match outcome {
            Ok(_) => "ok",
            Err(error) => error.code(),
        }
    }

    #[test]
    fn roles_and_methods() -> Result<(), crate::security::tokens::TokenConfigError> {
        let tokens = tokens()?;
        let admin = headers(&[&format!("Bearer {ADMIN}")]);
        let reader = headers(&[&format!("bearer  {READER}")]);
        assert_eq!(code(check(&tokens, &admin, &Method::GET)), "ok");
        assert_eq!(code(check(&tokens, &admin, &Method::POST)), "ok");
        assert_eq!(code(check(&tokens, &admin, &Method::DELETE)), "ok");
        assert_eq!(code(check(&tokens, &reader, &Method::GET)), "ok");
        assert_eq!(code(check(&tokens, &reader, &Method::HEAD)), "ok");
        assert_eq!(code(check(&tokens, &reader, &Method::POST)), "forbidden");
        assert_eq!(code(check(&tokens, &reader, &Method::DELETE)), "forbidden");
        assert_eq!(code(check(&tokens, &reader, &Method::PUT)), "forbidden");
        Ok(())
    }

    #[test]
    fn missing_malformed_and_wrong_tokens_are_unauthorized()
    -> Result<(), crate::security::tokens::TokenConfigError> {
        let tokens = tokens()?;
        for values in [
            vec![],
            vec![ADMIN],
            vec!["Bearer"],
            vec!["Bearer "],
            vec!["Basic YWRtaW46YWRtaW4="],
            vec!["Bearer not-a-configured-token"],
            vec!["Bearer admin-token-012345678"],
        ] {
            assert_eq!(
                code(check(&tokens, &headers(&values), &Method::GET)),
                "unauthorized",
                "{values:?}"
            );
        }
        let twice = headers(&[&format!("Bearer {ADMIN}"), &format!("Bearer {ADMIN}")]);
        assert_eq!(code(check(&tokens, &twice, &Method::GET)), "unauthorized");
        Ok(())
    }

    #[test]
    fn refusals_never_quote_the_token() -> Result<(), crate::security::tokens::TokenConfigError> {
        let tokens = tokens()?;
        let wrong = "Bearer wrong-token-that-is-long";
        for method in [Method::GET, Method::POST] {
            for value in [wrong.to_string(), format!("Bearer {READER}")] {
                if let Err(error) = check(&tokens, &headers(&[&value]), &method) {
                    let message = error.to_string();
                    assert!(!message.contains("wrong-token") && !message.contains(READER));
                }
            }
        }
        Ok(())
    }
}
