//! The actions of `/console/instances/{name}`: the forms the page shows for the instance's
//! state (stop, start, restart, parameters, deletion protection, a new password, a backup, a
//! restore into a new instance, delete), and the handlers of the ones that change it. Each
//! handler checks the CSRF token and the viewer's role, calls the service layer as the REST API
//! does, and leads to the operation's page; a refusal (409, 422, ...) shows the instance's page
//! again with the API's message.

use super::super::ConsoleState;
use super::super::guard::{Fields, Viewer};
use super::super::service::Action;
use super::layout::{self, Section};
use super::widgets::copyable;
use super::{Problem, instance};
use crate::http::api::error::ApiError;
use crate::http::api::instances::validate_password;
use crate::http::api::types::Instance;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;
use toygres_activities::validation::InstanceName;

/// Which form a refusal belongs to (it is shown next to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The typed confirmation of a delete.
    Delete,
    /// Any other action.
    Other,
}

/// A refused action: where to show it and the API's words.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The form it belongs to.
    pub form: Form,
    /// The message (the API's, with its code).
    pub message: String,
}

type FormResult = Result<axum::Form<Vec<(String, String)>>, FormRejection>;

/// `POST /console/instances/{name}/{action}` for `stop`, `start` and `restart`.
pub async fn act(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    let action = Action::parse(&action).ok_or_else(|| {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "no such action")
            .back_to(format!("/console/instances/{name}"), name.to_string())
    })?;
    let accepted = state.service.act(&name, action).await;
    to_operation(
        &state,
        &viewer,
        &name,
        accepted.map(|operation| operation.id),
    )
    .await
}

/// `POST /console/instances/{name}/parameters`: `parameter` and `value` set one; `reset` (a
/// name) returns one to the server's default.
pub async fn parameters(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    let change = match (fields.filled("reset"), fields.filled("parameter")) {
        (Some(reset), _) => Ok((reset.to_string(), None)),
        (None, Some(parameter)) => match fields.filled("value") {
            Some(value) => Ok((parameter.to_string(), Some(value.to_string()))),
            None => Err(ApiError::invalid(
                format!("parameters.{parameter}"),
                "give a value (or reset the parameter to the server's default)",
            )),
        },
        (None, None) => Err(ApiError::invalid(
            "parameters",
            "give a parameter's name and value",
        )),
    };
    let accepted = match change {
        Ok((parameter, value)) => {
            let parameters = BTreeMap::from([(parameter, value)]);
            state.service.set_parameters(&name, parameters).await
        }
        Err(error) => Err(error),
    };
    to_operation(
        &state,
        &viewer,
        &name,
        accepted.map(|operation| operation.id),
    )
    .await
}

/// `POST /console/instances/{name}/deletion-protection`: `enabled` is `on` or `off`.
pub async fn deletion_protection(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    let accepted = match fields.get("enabled") {
        Some("on") => state.service.protect(&name, true).await,
        Some("off") => state.service.protect(&name, false).await,
        _ => Err(ApiError::invalid(
            "deletion_protection",
            "must be true or false",
        )),
    };
    to_operation(
        &state,
        &viewer,
        &name,
        accepted.map(|operation| operation.id),
    )
    .await
}

/// `POST /console/instances/{name}/reset-password`: a new password (the one typed, or a
/// generated one), shown on the answer's page once, with the reset's steps live. Never in a URL:
/// this page is the answer to the post itself.
pub async fn reset_password(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(name): Path<String>,
    form: FormResult,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let name = instance::parse_name(&name)?;
    let password = fields
        .get("password")
        .filter(|password| !password.is_empty())
        .map(str::to_string);
    let reset = match &password {
        Some(password) => validate_password(password),
        None => Ok(()),
    };
    let reset = match reset {
        Ok(()) => state.service.reset_password(&name, password).await,
        Err(error) => Err(error),
    };
    let reset = match reset {
        Ok(reset) => reset,
        Err(error) => return Ok(refused(&state, &viewer, &name, Form::Other, error).await),
    };
    Ok(layout::page(
        &viewer,
        Section::Instances,
        &format!("New password of {name}"),
        html! {
            div.heading { h1 { "New password of " (name) } }
            section.card aria-labelledby="password" {
                h2 #password { "Password of " code { (reset.user) } }
                div.notice.warn role="note" {
                    strong { "Copy it now: it is shown this once and never again. " }
                    "Toygres keeps it only sealed; no page, API answer or log shows it again. "
                    "The old password stops working once the steps below are done."
                }
                p.secret { (copyable("new-password", &reset.password, "password")) }
            }
            section.card aria-labelledby="progress" {
                h2 #progress { "Progress" }
                div #operation-progress data-live=(format!("/console/live/operations/{}", reset.operation.id)) {
                    (super::operation::steps(&reset.operation))
                }
                p {
                    a href=(format!("/console/instances/{name}")) { "Back to " (name) }
                    " · "
                    a href=(format!("/console/operations/{}", reset.operation.id)) { "Open the operation" }
                }
            }
        },
    ))
}

/// The operation's page once accepted; the instance's page with the API's message otherwise.
pub async fn to_operation(
    state: &ConsoleState,
    viewer: &Viewer,
    name: &InstanceName,
    accepted: Result<String, ApiError>,
) -> Result<Response, Problem> {
    match accepted {
        Ok(id) => Ok(Redirect::to(&format!("/console/operations/{id}")).into_response()),
        Err(error) => Ok(refused(state, viewer, name, Form::Other, error).await),
    }
}

/// The instance's page again, with `error` shown next to `form` and the API's status; the
/// problem page when the instance itself cannot be shown.
pub async fn refused(
    state: &ConsoleState,
    viewer: &Viewer,
    name: &InstanceName,
    form: Form,
    error: ApiError,
) -> Response {
    let problem = Problem::from(error);
    let failure = Failure {
        form,
        message: format!("{} ({})", problem.message, problem.code),
    };
    match instance::with_failure(state, viewer, name, failure, problem.status).await {
        Ok(response) => response,
        Err(other) => other
            .back_to(format!("/console/instances/{name}"), name.to_string())
            .into_response(),
    }
}

/// The actions card of a live instance: the forms the viewer may use in its current state (a
/// delete's refusal shown at its field; the page shows the others at its top).
pub fn section(
    viewer: &Viewer,
    instance: &Instance,
    archives: bool,
    failure: Option<&Failure>,
) -> Markup {
    let name = &instance.name;
    let state = instance.state.as_str();
    let running = state == "running";
    let delete_error = failure
        .filter(|failure| failure.form == Form::Delete)
        .map(|failure| failure.message.as_str());
    html! {
        section.card aria-labelledby="actions" {
            h2 #actions { "Actions" }
            @if !viewer.may_change() {
                p.muted { "You are signed in with a read-only token: actions need an admin token." }
            } @else {
                @if !matches!(state, "running" | "stopped" | "failed") {
                    p.muted { "An operation is running on this instance: its other actions come back when it ends." }
                }
                @if running {
                    (parameters_form(viewer, instance))
                    (password_form(viewer, name))
                }
                @if matches!(state, "running" | "stopped" | "failed") {
                    (protection_form(viewer, instance))
                }
                @if state != "deleted" {
                    @if instance.deletion_protection {
                        p.muted #delete-protected { "Deletion protection is on: turn it off to delete this instance." }
                    } @else {
                        (delete_form(viewer, name, archives && running, delete_error))
                    }
                }
            }
        }
    }
}

/// The buttons at the top of the page: stop or start, restart, a backup, a restore into a new
/// instance (those that apply to its state; none for a read-only viewer).
pub fn quick(viewer: &Viewer, instance: &Instance, archives: bool) -> Markup {
    let name = &instance.name;
    let state = instance.state.as_str();
    let running = state == "running";
    let restorable = archives && instance.backup.restore_window.is_some();
    html! {
        @if viewer.may_change() {
            div.buttons.actions {
                @if running {
                    (button(viewer, name, Action::Stop.as_str(), "Stop", "The server goes down; data, port and connection string stay."))
                    (button(viewer, name, Action::Restart.as_str(), "Restart", "A fast restart; running again once it accepts connections."))
                    @if archives {
                        (button(viewer, name, "backups", "Back up now", "A full backup, now."))
                    }
                } @else if matches!(state, "stopped" | "failed") {
                    (button(viewer, name, Action::Start.as_str(), "Start", "The server comes back with the same data, port and connection string."))
                }
                @if restorable {
                    a.button.quiet #action-restore href=(format!("/console/create?restore_from={name}")) { "Restore to a new instance" }
                }
            }
        }
    }
}

/// A form of one button that posts to `/console/instances/{name}/{path}`.
fn button(viewer: &Viewer, name: &str, path: &str, label: &str, hint: &str) -> Markup {
    html! {
        form method="post" action=(format!("/console/instances/{name}/{path}")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button #(format!("action-{path}")) type="submit" title=(hint) { (label) }
        }
    }
}

fn parameters_form(viewer: &Viewer, instance: &Instance) -> Markup {
    let name = &instance.name;
    let action = format!("/console/instances/{name}/parameters");
    html! {
        h3 { "Server parameters" }
        @if !instance.parameters.is_empty() {
            ul.plain #parameter-resets {
                @for (parameter, value) in &instance.parameters {
                    li {
                        form.inline method="post" action=(action) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="reset" value=(parameter);
                            code { (parameter) " = " (value) } " "
                            button.quiet type="submit" aria-label=(format!("Reset {parameter} to the server's default")) { "Reset" }
                        }
                    }
                }
            }
        }
        form.stack #parameters-form method="post" action=(action) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.field {
                label for="parameter" { "Parameter" }
                input #parameter type="text" name="parameter" required autocomplete="off" spellcheck="false"
                    maxlength="63" aria-describedby="parameter-hint";
                div.hint #parameter-hint { "A name of pg_settings, such as work_mem; checked against the server's own settings. Those that need a restart restart it." }
            }
            div.field {
                label for="parameter-value" { "Value" }
                input #parameter-value type="text" name="value" required autocomplete="off" spellcheck="false" maxlength="1024";
            }
            div { button #action-parameters type="submit" { "Set parameter" } }
        }
    }
}

fn password_form(viewer: &Viewer, name: &str) -> Markup {
    html! {
        h3 { "Password" }
        form.stack #password-form method="post" action=(format!("/console/instances/{name}/reset-password")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.field {
                label for="new-password-input" { "New password (optional)" }
                input #new-password-input type="password" name="password" autocomplete="new-password"
                    aria-describedby="new-password-hint";
                div.hint #new-password-hint { "12-128 printable characters. Leave empty to have one generated; it is shown once." }
            }
            div { button #action-reset-password type="submit" { "Reset password" } }
        }
    }
}

fn protection_form(viewer: &Viewer, instance: &Instance) -> Markup {
    let on = instance.deletion_protection;
    html! {
        form.inline method="post" action=(format!("/console/instances/{}/deletion-protection", instance.name)) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="enabled" value=(if on { "off" } else { "on" });
            span { "Deletion protection is " strong { (if on { "on" } else { "off" }) } ". " }
            button.quiet #action-deletion-protection type="submit" {
                (if on { "Turn deletion protection off" } else { "Turn deletion protection on" })
            }
        }
    }
}

fn delete_form(viewer: &Viewer, name: &str, offer_backup: bool, error: Option<&str>) -> Markup {
    html! {
        form.stack method="post" action=(format!("/console/instances/{name}/delete")) data-confirm=(name) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div.field {
                label for="confirm" { "Delete this instance" }
                div.hint #confirm-hint { "Its server and data are removed; the record stays for audit. Type " code { (name) } " to confirm." }
                input #confirm type="text" name="confirm" autocomplete="off" spellcheck="false" required
                    aria-describedby="confirm-hint" aria-invalid=[error.map(|_| "true")];
                @if let Some(message) = error {
                    div.error role="alert" { (message) }
                }
            }
            @if offer_backup {
                div.field.check {
                    input #final_backup type="checkbox" name="final_backup" value="true";
                    label for="final_backup" { "Take a final full backup first (kept for restores)" }
                }
            }
            div { button.danger type="submit" { "Delete " (name) } }
        }
    }
}
