//! `/console/create` and `POST /console/instances`: the create form with the API's fields and
//! its validation messages next to each field, and an optional restore from another instance's
//! backups (a backup or a point in time); after an accepted create, the password shown once
//! (with a copy button and a plain warning) and the operation's steps advancing live.

use super::super::ConsoleState;
use super::super::guard::{Fields, Viewer};
use super::Problem;
use super::layout::{self, Section};
use super::widgets::copyable;
use crate::http::api::error::ApiError;
use crate::http::api::instances::{validate_dns_label, validate_password};
use crate::plane::{CreateRequest, RestoreRequest};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use std::collections::HashMap;
use toygres_activities::model::Expose;
use toygres_activities::validation::InstanceName;

/// What the form shows: the values typed (never the password) and a message per field.
#[derive(Debug, Default)]
struct FormState {
    name: String,
    postgres_version: String,
    storage_gb: String,
    expose: String,
    dns_label: String,
    restore_instance: String,
    restore_backup_id: String,
    restore_point_in_time: String,
    /// Per field (the API's name, such as `restore_from.instance`), its message.
    errors: Vec<(String, String)>,
    /// An error that belongs to no field (a 409, an internal error), as the API words it.
    general: Option<String>,
}

impl FormState {
    /// The error of the field with the form id `id`.
    fn error(&self, id: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| form_id(name) == id)
            .map(|(_, message)| message.as_str())
    }

    /// Whether the form restores (its version then defaults to the source's).
    fn restores(&self) -> bool {
        !self.restore_instance.is_empty()
    }
}

/// The form's id of an API field (`restore_from.instance` is `restore_instance`).
fn form_id(field: &str) -> &str {
    match field {
        "restore_from" | "restore_from.instance" => "restore_instance",
        "restore_from.backup_id" => "restore_backup_id",
        "restore_from.point_in_time" => "restore_point_in_time",
        other => other,
    }
}

/// `GET /console/create`; `?restore_from=NAME` (and `backup_id=bk_...`) fills in a restore
/// of that instance (its version by default: the source's).
pub async fn form(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    if !viewer.may_change() {
        return Err(read_only());
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let restore_instance = query.get("restore_from").cloned().unwrap_or_default();
    let defaults = FormState {
        postgres_version: if restore_instance.is_empty() {
            state.service.versions().last().cloned().unwrap_or_default()
        } else {
            String::new()
        },
        storage_gb: "10".into(),
        expose: "internal".into(),
        restore_instance,
        restore_backup_id: query.get("backup_id").cloned().unwrap_or_default(),
        ..FormState::default()
    };
    Ok(render(&state, &viewer, &defaults, StatusCode::OK))
}

/// `POST /console/instances`: validates as the API does, creates, and shows the password once.
pub async fn submit(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    form: Result<axum::Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Problem> {
    let fields = Fields::from_form(form)?;
    viewer.check_change(&state, &fields)?;
    let mut shown = FormState {
        name: fields.get("name").unwrap_or_default().trim().to_string(),
        postgres_version: fields
            .get("postgres_version")
            .unwrap_or_default()
            .to_string(),
        storage_gb: fields
            .get("storage_gb")
            .unwrap_or_default()
            .trim()
            .to_string(),
        expose: fields.get("expose").unwrap_or("internal").to_string(),
        dns_label: fields
            .get("dns_label")
            .unwrap_or_default()
            .trim()
            .to_string(),
        restore_instance: fields.filled("restore_instance").unwrap_or_default().into(),
        restore_backup_id: fields
            .filled("restore_backup_id")
            .unwrap_or_default()
            .into(),
        restore_point_in_time: fields
            .filled("restore_point_in_time")
            .unwrap_or_default()
            .into(),
        ..FormState::default()
    };
    let request = match validate(&fields, &mut shown.errors) {
        Some(request) if shown.errors.is_empty() => request,
        _ => {
            return Ok(render(
                &state,
                &viewer,
                &shown,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
    };
    match state.service.create(request).await {
        Ok(created) => Ok(layout::page(
            &viewer,
            Section::Create,
            &format!("Creating {}", created.instance.name),
            html! {
                div.heading { h1 { "Creating " (created.instance.name) } }
                section.card aria-labelledby="password" {
                    h2 #password { "Password of " code { (created.instance.user) } }
                    div.notice.warn role="note" {
                        strong { "Copy it now: it is shown this once and never again. " }
                        "Toygres keeps it only sealed; no page, API answer or log shows it again."
                    }
                    p.secret { (copyable("created-password", &created.password, "password")) }
                }
                section.card aria-labelledby="progress" {
                    h2 #progress { "Progress" }
                    div #operation-progress data-live=(format!("/console/live/operations/{}", created.operation.id)) {
                        (super::operation::steps(&created.operation))
                    }
                    p {
                        a href=(format!("/console/instances/{}", created.instance.name)) { "Open the instance" }
                        " · "
                        a href=(format!("/console/operations/{}", created.operation.id)) { "Open the operation" }
                    }
                }
            },
        )),
        Err(ApiError::Invalid { field, message }) => {
            shown.errors.push((field, message));
            Ok(render(
                &state,
                &viewer,
                &shown,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(error @ (ApiError::NameInUse | ApiError::OperationInProgress(_))) => {
            shown.errors.push(("name".into(), error.to_string()));
            Ok(render(&state, &viewer, &shown, StatusCode::CONFLICT))
        }
        Err(error) => {
            let problem = Problem::from(error);
            shown.general = Some(format!("{} ({})", problem.message, problem.code));
            Ok(render(&state, &viewer, &shown, problem.status))
        }
    }
}

/// The request the form describes, collecting every field's error in the API's words.
fn validate(fields: &Fields, errors: &mut Vec<(String, String)>) -> Option<CreateRequest> {
    let mut record = |error: ApiError| {
        if let ApiError::Invalid { field, message } = error {
            errors.push((field, message));
        }
    };
    let name = match InstanceName::parse(fields.get("name").unwrap_or_default().trim()) {
        Ok(name) => Some(name),
        Err(error) => {
            record(ApiError::invalid("name", error.to_string()));
            None
        }
    };
    let password = fields
        .get("password")
        .filter(|password| !password.is_empty())
        .map(str::to_string);
    if let Some(password) = &password
        && let Err(error) = validate_password(password)
    {
        record(error);
    }
    let storage_gb = match fields.filled("storage_gb") {
        None => 10,
        Some(raw) => match raw.parse::<u32>() {
            Ok(value) if (1..=1024).contains(&value) => value,
            _ => {
                record(ApiError::invalid(
                    "storage_gb",
                    "must be an integer from 1 to 1024",
                ));
                10
            }
        },
    };
    let expose = match fields.filled("expose") {
        None => Expose::Internal,
        Some(raw) => Expose::parse(raw).unwrap_or_else(|| {
            record(ApiError::invalid(
                "expose",
                "must be 'internal' or 'public'",
            ));
            Expose::Internal
        }),
    };
    let dns_label = fields.filled("dns_label").map(str::to_string);
    if let Some(label) = &dns_label
        && let Err(error) = validate_dns_label(label)
    {
        record(error);
    }
    let restore = match restore_from(fields) {
        Ok(restore) => Some(restore),
        Err(error) => {
            record(error);
            None
        }
    };
    Some(CreateRequest {
        name: name?,
        password,
        postgres_version: fields.filled("postgres_version").map(str::to_string),
        storage_gb,
        expose,
        dns_label,
        // The server's default namespace (the API and the CLI name others).
        namespace: None,
        // Parameters and deletion protection are set from the instance's page once it runs.
        parameters: Default::default(),
        deletion_protection: false,
        restore_from: restore?,
        idempotency: None,
    })
}

/// The restore the form asks for: none without a source instance; then at most one of a
/// backup id and a point in time (RFC 3339), as the API reads `restore_from`.
fn restore_from(fields: &Fields) -> Result<Option<RestoreRequest>, ApiError> {
    let backup_id = fields.filled("restore_backup_id").map(str::to_string);
    let point_in_time = fields.filled("restore_point_in_time");
    let Some(instance) = fields.filled("restore_instance") else {
        if backup_id.is_some() || point_in_time.is_some() {
            return Err(ApiError::invalid(
                "restore_from.instance",
                "is required (a name) to restore a backup or a point in time",
            ));
        }
        return Ok(None);
    };
    let instance = InstanceName::parse(instance)
        .map_err(|error| ApiError::invalid("restore_from.instance", error.to_string()))?;
    let point_in_time = point_in_time
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .map(|at| at.to_utc())
                .map_err(|_| {
                    ApiError::invalid(
                        "restore_from.point_in_time",
                        "must be an RFC 3339 time such as 2026-12-03T09:00:00Z",
                    )
                })
        })
        .transpose()?;
    Ok(Some(RestoreRequest {
        instance,
        backup_id,
        point_in_time,
    }))
}

fn read_only() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "this token is read-only: sign in with an admin token to create instances",
    )
    .back_to("/console/instances", "Instances")
}

fn render(
    state: &ConsoleState,
    viewer: &Viewer,
    shown: &FormState,
    status: StatusCode,
) -> Response {
    let mut response = layout::page(
        viewer,
        Section::Create,
        "Create an instance",
        html! {
            div.heading { h1 { "Create an instance" } }
            @if let Some(general) = &shown.general {
                div.notice.error role="alert" { (general) }
            }
            @if !shown.errors.is_empty() {
                div.notice.error role="alert" {
                    "The instance was not created: "
                    @for (index, (field, message)) in shown.errors.iter().enumerate() {
                        @if index > 0 { "; " }
                        a href=(format!("#{}", form_id(field))) { (field) } ": " (message)
                    }
                }
            }
            form.stack.card method="post" action="/console/instances" novalidate {
                input type="hidden" name="csrf" value=(viewer.csrf);
                (field(shown, "name", "Name", "A DNS label: 1-40 lowercase letters, digits or '-', starting with a letter.", html! {
                    input #name type="text" name="name" value=(shown.name) required autocomplete="off" spellcheck="false"
                        maxlength="40" aria-describedby="name-hint" aria-invalid=[shown.error("name").map(|_| "true")];
                }))
                (field(shown, "postgres_version", "PostgreSQL version", &format!("The versions the {} backend offers.", state.service.backend_kind()), html! {
                    select #postgres_version name="postgres_version" aria-describedby="postgres_version-hint" {
                        @if shown.restores() {
                            option value="" selected[shown.postgres_version.is_empty()] { "the source's version" }
                        }
                        @for version in state.service.versions().iter().rev() {
                            option value=(version) selected[*version == shown.postgres_version] { (version) }
                        }
                    }
                }))
                (field(shown, "storage_gb", "Storage (GiB)", "1 to 1024.", html! {
                    input #storage_gb type="number" name="storage_gb" value=(shown.storage_gb) min="1" max="1024"
                        aria-describedby="storage_gb-hint" aria-invalid=[shown.error("storage_gb").map(|_| "true")];
                }))
                (field(shown, "expose", "Exposure", "Internal: reachable inside the backend's network; public: from outside.", html! {
                    select #expose name="expose" aria-describedby="expose-hint" {
                        option value="internal" selected[shown.expose != "public"] { "internal" }
                        option value="public" selected[shown.expose == "public"] { "public" }
                    }
                }))
                (field(shown, "dns_label", "DNS label (optional)", "For public instances: 1-63 lowercase letters, digits or '-'.", html! {
                    input #dns_label type="text" name="dns_label" value=(shown.dns_label) autocomplete="off" spellcheck="false"
                        maxlength="63" aria-describedby="dns_label-hint" aria-invalid=[shown.error("dns_label").map(|_| "true")];
                }))
                (field(shown, "password", "Password (optional)", "12-128 printable characters. Leave empty to have one generated (32 letters and digits).", html! {
                    input #password type="password" name="password" autocomplete="new-password"
                        aria-describedby="password-hint" aria-invalid=[shown.error("password").map(|_| "true")];
                }))
                @if state.service.archives() {
                    (restore_fields(shown))
                }
                div { button type="submit" { "Create" } }
            }
        },
    );
    *response.status_mut() = status;
    response
}

/// The optional restore: a source instance, and a backup of it or a moment.
fn restore_fields(shown: &FormState) -> Markup {
    html! {
        fieldset.restore {
            legend { "Restore from (optional)" }
            p.hint { "Start as a copy of another instance's data, from its backups. Leave empty for an empty instance." }
            (field(shown, "restore_instance", "Source instance", "A live instance, or a deleted one whose backups are kept.", html! {
                input #restore_instance type="text" name="restore_instance" value=(shown.restore_instance) autocomplete="off" spellcheck="false"
                    maxlength="40" aria-describedby="restore_instance-hint" aria-invalid=[shown.error("restore_instance").map(|_| "true")];
            }))
            (field(shown, "restore_backup_id", "Backup (optional)", "The end of this backup (bk_...). Give this or a point in time; neither: as recent as possible.", html! {
                input #restore_backup_id type="text" name="restore_backup_id" value=(shown.restore_backup_id) autocomplete="off" spellcheck="false"
                    maxlength="64" aria-describedby="restore_backup_id-hint" aria-invalid=[shown.error("restore_backup_id").map(|_| "true")];
            }))
            (field(shown, "restore_point_in_time", "Point in time (optional)", "RFC 3339, such as 2026-12-03T09:00:00Z, inside the source's restore window (on its page).", html! {
                input #restore_point_in_time type="text" name="restore_point_in_time" value=(shown.restore_point_in_time) autocomplete="off" spellcheck="false"
                    maxlength="64" aria-describedby="restore_point_in_time-hint" aria-invalid=[shown.error("restore_point_in_time").map(|_| "true")];
            }))
        }
    }
}

/// One labelled field with its hint and, when it has one, its error (with the API's field name).
fn field(shown: &FormState, id: &str, label: &str, hint: &str, control: Markup) -> Markup {
    let error = shown.errors.iter().find(|(name, _)| form_id(name) == id);
    html! {
        div.field {
            label for=(id) { (label) }
            (control)
            div.hint #(format!("{id}-hint")) { (hint) }
            @if let Some((name, message)) = error {
                div.error role="alert" { (name) ": " (message) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let pairs = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        match Fields::from_form(Ok(axum::Form(pairs))) {
            Ok(fields) => fields,
            Err(problem) => panic!("{problem:?}"),
        }
    }

    fn field_of(result: Result<Option<RestoreRequest>, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            other => format!("not a 422: {:?}", other.map(|restore| restore.is_some())),
        }
    }

    #[test]
    fn restores_read_as_the_api_reads_them() {
        assert!(matches!(restore_from(&fields(&[])), Ok(None)));
        assert!(matches!(
            restore_from(&fields(&[
                ("restore_instance", " "),
                ("restore_backup_id", "")
            ])),
            Ok(None)
        ));
        let Ok(Some(restore)) = restore_from(&fields(&[
            ("restore_instance", "orders"),
            ("restore_point_in_time", "2026-12-03T10:15:00+01:00"),
        ])) else {
            panic!("a restore to a time");
        };
        assert_eq!(restore.instance.as_str(), "orders");
        assert_eq!(
            restore.point_in_time.map(|at| at.to_rfc3339()),
            Some("2026-12-03T09:15:00+00:00".to_string())
        );
        assert_eq!(
            field_of(restore_from(&fields(&[("restore_backup_id", "bk_x")]))),
            "restore_from.instance"
        );
        assert_eq!(
            field_of(restore_from(&fields(&[("restore_instance", "Bad_Name")]))),
            "restore_from.instance"
        );
        assert_eq!(
            field_of(restore_from(&fields(&[
                ("restore_instance", "orders"),
                ("restore_point_in_time", "yesterday"),
            ]))),
            "restore_from.point_in_time"
        );
        assert_eq!(
            form_id("restore_from.point_in_time"),
            "restore_point_in_time"
        );
        assert_eq!(form_id("restore_from"), "restore_instance");
        assert_eq!(form_id("name"), "name");
    }
}
