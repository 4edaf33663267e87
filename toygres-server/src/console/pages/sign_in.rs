//! `/console/sign-in` and `/console/sign-out`. With tokens, the console signs in with an API
//! token (posted in a form, never in a URL) into a session cookie; the form's CSRF token is bound
//! to a short pre-session cookie of its own. Without tokens there is nothing to sign in to.

use super::super::ConsoleState;
use super::super::guard::{Fields, Viewer, check_csrf, safe_next};
use super::super::session::{CookieKind, Principal};
use super::Problem;
use super::layout;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::collections::HashMap;

/// `GET /console/sign-in`: the token form (or, without tokens, the overview).
pub async fn form(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if !state.sessions.needs_sign_in() {
        return Redirect::to("/console/").into_response();
    }
    let next = safe_next(params.get("next").map(String::as_str));
    if state.sessions.read(&headers, CookieKind::Session).is_some() {
        return Redirect::to(&next).into_response();
    }
    render(&state, &headers, &next, None, StatusCode::OK)
}

/// `POST /console/sign-in`: a valid token starts a session (a new id: nothing from before the
/// sign-in carries over) and leads to `next`; anything else shows the form again.
pub async fn submit(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Problem> {
    if !state.sessions.needs_sign_in() {
        return Ok(Redirect::to("/console/").into_response());
    }
    let fields = Fields::from_form(form)?;
    let next = safe_next(fields.get("next"));
    let pre_session = state
        .sessions
        .read(&headers, CookieKind::SignIn)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the sign-in form expired (or cookies are off): open the sign-in page again",
            )
            .back_to("/console/sign-in", "Sign in")
        })?;
    check_csrf(&state, &pre_session, &fields)?;
    let presented = fields.get("token").unwrap_or_default().trim();
    let Some(principal) = state.sessions.sign_in(presented) else {
        tracing::info!("console sign-in refused: not a configured token");
        metrics::counter!("toygres_http_auth_refusals_total", "code" => "unauthorized")
            .increment(1);
        return Ok(render(
            &state,
            &headers,
            &next,
            Some("That is not a token this server accepts."),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let (_, cookie) = state.sessions.issue(principal);
    tracing::info!(
        role = match principal {
            Principal::Token { role, .. } => role.as_str(),
            _ => "",
        },
        "console sign-in"
    );
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.sessions.clear(CookieKind::SignIn));
    Ok(response)
}

/// `POST /console/sign-out`: ends the session (CSRF-checked, so no page of another site can
/// sign anyone out).
pub async fn sign_out(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    form: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    check_csrf(&state, &viewer.session, &fields)?;
    state.sessions.revoke(&viewer.session);
    let mut response = Redirect::to(if state.sessions.needs_sign_in() {
        "/console/sign-in"
    } else {
        "/console/"
    })
    .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.sessions.clear(CookieKind::Session),
    );
    Ok(response)
}

fn render(
    state: &ConsoleState,
    headers: &HeaderMap,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (pre_session, cookie): (_, Option<HeaderValue>) =
        match state.sessions.read(headers, CookieKind::SignIn) {
            Some(session) => (session, None),
            None => {
                let (session, cookie) = state.sessions.issue(Principal::SigningIn);
                (session, Some(cookie))
            }
        };
    let csrf = state.sessions.csrf_token(&pre_session);
    let body = html! {
        h1 { "Sign in" }
        section.card {
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="token" { "API token" }
                    input #token type="password" name="token" required autocomplete="off" spellcheck="false"
                        aria-describedby="token-hint" aria-invalid=[error.map(|_| "true")];
                    div.hint #token-hint { "A token of the server's TOYGRES_API_TOKENS. An admin token may change things; a read-only token may only look." }
                    @if let Some(error) = error {
                        div.error role="alert" { (error) }
                    }
                }
                div { button type="submit" { "Sign in" } }
            }
        }
    };
    let mut response = layout::bare_with_cookies("Sign in", body, cookie.as_slice());
    *response.status_mut() = status;
    response
}
