//! The console's pages, one module each, and what they share: the page shell ([`layout`]), small
//! pieces of markup ([`widgets`]) and the problem page ([`Problem`]), which shows an error as
//! the API words it (its code and message), never a blank page.

pub mod backups;
pub mod create;
pub mod fleet;
pub mod instance;
pub mod instance_actions;
pub mod instances;
pub mod layout;
pub mod operation;
pub mod operations;
pub mod sign_in;
pub mod widgets;

use crate::http::api::error::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

/// An error to show: status, the API's code and its message, and where to go from there.
#[derive(Debug)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// The API's error code (`not_found`, `operation_in_progress`, ...).
    pub code: String,
    /// The API's message.
    pub message: String,
    /// A link back (path and label).
    pub back: Option<(String, String)>,
}

impl Problem {
    /// A problem with no link back.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            back: None,
        }
    }

    /// The same problem with a link back to `path`.
    pub fn back_to(mut self, path: impl Into<String>, label: impl Into<String>) -> Self {
        self.back = Some((path.into(), label.into()));
        self
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        let code = error.code().to_string();
        let message = error.to_string();
        // The status the API answers with (an internal error's detail is logged there; its
        // message says only "internal error").
        let status = error.into_response().status();
        Self {
            status,
            code,
            message,
            back: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        problem_page(self)
    }
}

/// A page that shows `problem` (no navigation that needs a session).
pub fn problem_page(problem: Problem) -> Response {
    let title = problem
        .status
        .canonical_reason()
        .unwrap_or("Error")
        .to_string();
    let body = html! {
        div.notice.error role="alert" {
            p { strong { (title) } " " code { (problem.code) } }
            p { (problem.message) }
        }
        p {
            @if let Some((path, label)) = &problem.back {
                a href=(path) { (label) } " · "
            }
            a href="/console/" { "Overview" }
        }
    };
    let mut response = layout::bare(&title, body).into_response();
    *response.status_mut() = problem.status;
    response
}

/// `GET /console/...` that is no page: a 404 page.
pub async fn not_found() -> Response {
    problem_page(Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such page",
    ))
}
