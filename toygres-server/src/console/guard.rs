//! What every console request goes through:
//! - [`security_headers`]: a Content-Security-Policy that allows only this origin's script and
//!   stylesheet (no inline script or style anywhere), no framing, no referrer, no caching of
//!   pages (a create's answer shows a password once).
//! - [`same_origin_changes`]: a change (any method but `GET`/`HEAD`) must name the console's own
//!   origin in `Origin` (browsers send it with every form post) and, when the browser says so,
//!   come from the same origin (`Sec-Fetch-Site`).
//! - [`Viewer`]: who is signed in (redirected to the sign-in page when nobody is, with tokens;
//!   without tokens, a local session is started), with the CSRF token its forms carry.
//! - [`Fields`] and [`Viewer::check_change`]: a form's fields, its CSRF token and the role.

use super::ConsoleState;
use super::pages::{self, Problem};
use super::session::{CookieKind, Principal, Session};
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The console's Content-Security-Policy: scripts, styles and fetches of this origin only,
/// nothing inline, no plugins, no framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: the security headers of every console response; `Cache-Control: no-store`
/// unless the response chose its own (the assets).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Middleware: refuses (`403`) a console change that does not come from the console's own
/// origin. The `Origin` must be present and name the host the request was addressed to (its
/// `Host`; the scheme is not compared, so a TLS-terminating proxy in front still works), and a
/// `Sec-Fetch-Site` other than `same-origin` is refused.
pub async fn same_origin_changes(request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    match own_origin(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::info!(%reason, "console change refused");
            metrics::counter!("toygres_console_refusals_total", "reason" => "origin").increment(1);
            pages::problem_page(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{reason}: the console accepts changes only from its own pages"),
            ))
        }
    }
}

/// `Ok` when the request names its own origin (see [`same_origin_changes`]).
fn own_origin(headers: &HeaderMap) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(format!(
            "Sec-Fetch-Site is '{}'",
            String::from_utf8_lossy(site.as_bytes())
        ));
    }
    let single = |name: header::HeaderName| {
        let mut values = headers.get_all(&name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok(),
            _ => None,
        }
    };
    let host = single(header::HOST).ok_or("the request has no single Host")?;
    let origin = single(header::ORIGIN).ok_or("the request has no single Origin")?;
    let authority = origin
        .split_once("://")
        .map(|(_, authority)| authority)
        .unwrap_or_default();
    if !authority.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(format!(
            "Origin '{}' is not this console's origin",
            crate::http::api::error::quoted(origin.as_bytes())
        ))
    }
}

/// Who is looking: the session (started just now without tokens) and what its pages need.
pub struct Viewer {
    /// The session.
    pub session: Session,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// Whether the server has tokens (the page then offers sign-out).
    pub signed_in: bool,
    /// A `Set-Cookie` to send with the page (a session started by this request).
    pub set_cookie: Option<HeaderValue>,
}

impl Viewer {
    /// Whether the viewer may change things.
    pub fn may_change(&self) -> bool {
        self.session.principal.may_change()
    }

    /// What the top bar says about the viewer.
    pub fn describe(&self) -> &'static str {
        match self.session.principal {
            Principal::Local => "local access (no tokens)",
            Principal::Token {
                role: crate::security::tokens::Role::Admin,
                ..
            } => "admin token",
            Principal::Token { .. } => "read-only token",
            Principal::SigningIn => "not signed in",
        }
    }

    /// Checks a change: the form's CSRF token is this session's, and the viewer may change
    /// things. Refusals are logged and counted, never with the form's values.
    pub fn check_change(&self, state: &ConsoleState, fields: &Fields) -> Result<(), Problem> {
        check_csrf(state, &self.session, fields)?;
        if !self.may_change() {
            tracing::info!("console change refused: read-only token");
            metrics::counter!("toygres_console_refusals_total", "reason" => "read_only")
                .increment(1);
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token is read-only: sign in with an admin token to change anything",
            ));
        }
        Ok(())
    }
}

/// Checks that `fields` carry the CSRF token of `session`.
pub fn check_csrf(state: &ConsoleState, session: &Session, fields: &Fields) -> Result<(), Problem> {
    let presented = fields.get("csrf").unwrap_or_default();
    if state.sessions.csrf_matches(session, presented) {
        return Ok(());
    }
    tracing::info!("console change refused: no valid CSRF token");
    metrics::counter!("toygres_console_refusals_total", "reason" => "csrf").increment(1);
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the form's CSRF token is missing or belongs to another session: reload the page and try again",
    ))
}

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let sessions = &state.sessions;
        let (session, set_cookie) = match sessions.read(&parts.headers, CookieKind::Session) {
            Some(session) => (session, None),
            None if !sessions.needs_sign_in() => {
                let (session, cookie) = sessions.issue(Principal::Local);
                (session, Some(cookie))
            }
            None => return Err(sign_in_first(parts)),
        };
        Ok(Viewer {
            csrf: sessions.csrf_token(&session),
            signed_in: sessions.needs_sign_in(),
            session,
            set_cookie,
        })
    }
}

/// Without a session: fragments answer `401` (the script stops refreshing), pages lead to the
/// sign-in page and back (a change is not repeated: back to where it was made from).
fn sign_in_first(parts: &Parts) -> Response {
    let path = parts.uri.path();
    if path.starts_with("/console/live/") {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    }
    let next = if parts.method == Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|value| value.as_str())
            .unwrap_or("/console/")
    } else {
        "/console/"
    };
    let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/console/sign-in?{query}")).into_response()
}

/// Where a sign-in may lead: a console page of this server, nothing else.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/console/")
                && !next.contains("//")
                && !next.contains('\\')
                && !next.starts_with("/console/live/")
                && next.chars().all(|c| c.is_ascii_graphic()) =>
        {
            next.to_string()
        }
        _ => "/console/".to_string(),
    }
}

/// The fields of a url-encoded form, each at most once.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The form of a request, or the problem with it (not a url-encoded form, a field twice).
    pub fn from_form(
        form: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
    ) -> Result<Self, Problem> {
        let axum::Form(pairs) = form.map_err(|rejection| {
            Problem::new(
                rejection.status(),
                "invalid_request",
                "the console's forms are sent as application/x-www-form-urlencoded",
            )
        })?;
        for (index, (name, _)) in pairs.iter().enumerate() {
            if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    format!("{name}: the field appears more than once"),
                ));
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, trimmed, or `None` when absent or blank.
    pub fn filled(&self, name: &str) -> Option<&str> {
        self.get(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        headers
    }

    #[test]
    fn changes_come_from_the_own_origin() {
        let own = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(own_origin(&headers(&own)).is_ok());
        let proxied = [
            ("host", "toygres.example"),
            ("origin", "https://Toygres.example"),
        ];
        assert!(own_origin(&headers(&proxied)).is_ok());
        let same_site = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(own_origin(&headers(&same_site)).is_ok());
        for refused in [
            vec![("host", "127.0.0.1:8080")],
            vec![("host", "127.0.0.1:8080"), ("origin", "null")],
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example"),
            ],
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8081"),
            ],
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080.evil"),
            ],
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ],
        ] {
            assert!(own_origin(&headers(&refused)).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn sign_in_leads_only_to_console_pages() {
        assert_eq!(
            safe_next(Some("/console/instances?state=running")),
            "/console/instances?state=running"
        );
        for bad in [
            None,
            Some("https://evil.example/"),
            Some("//evil.example/console/"),
            Some("/console//evil.example"),
            Some("/console/\\evil"),
            Some("/instances"),
            Some("/console/live/fleet"),
            Some("/console/x y"),
        ] {
            assert_eq!(safe_next(bad), "/console/", "{bad:?}");
        }
    }
}
