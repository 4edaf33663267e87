//! The web console, served by `toygres serve` under `/console/` (and `/`, which leads there):
//! server-rendered pages (maud) with small live parts (one embedded script that refreshes
//! fragments and copies text), no CDN, no Node.js.
//!
//! - [`service`]: the one adapter over the control plane (the REST API's service layer, shapes
//!   and errors); no SQL here.
//! - [`session`]: sign-in with an API token into a signed, HttpOnly, SameSite=Strict cookie, and
//!   the CSRF token bound to it.
//! - [`guard`]: what every console response and every console change goes through: the
//!   Content-Security-Policy and other headers, the same-origin rule for changes, the viewer
//!   (who is signed in) and the CSRF check.
//! - [`pages`]: one module per page, and the layout and widgets they share.
//! - [`assets`]: the stylesheet and the script, compiled in.
//!
//! The console is mounted next to the REST API ([`crate::http::api::router`]) but outside the
//! API's own layers: it authenticates with its session cookie (never a bearer token, and the API
//! never accepts the cookie), and its forms are `application/x-www-form-urlencoded`, which the
//! API's JSON rule would refuse. What protects its forms instead: the cookie is never sent
//! cross-site (SameSite=Strict), every change carries the session's CSRF token, and a change
//! must come from the console's own origin. The server-wide layers (without tokens: loopback
//! `Host` and own `Origin`; body limit, timeout) cover it like every route.

pub mod assets;
pub mod guard;
pub mod pages;
pub mod service;
pub mod session;

use crate::http::api::AppState;
use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use service::Service;
use session::Sessions;
use std::sync::Arc;

/// What every console handler can reach.
#[derive(Clone)]
pub struct ConsoleState {
    /// The adapter over the control plane.
    pub service: Service,
    /// Issues and checks sessions.
    pub sessions: Arc<Sessions>,
}

impl ConsoleState {
    /// The console's state for a server with the API state `api`.
    pub fn new(api: &AppState) -> Self {
        Self {
            service: Service::new(api.plane.clone()),
            sessions: Arc::new(Sessions::new(
                &api.plane.secret_key,
                api.authentication.clone(),
                api.scheme,
            )),
        }
    }
}

/// Every console route, with its headers, same-origin rule and request metrics. Merge it into
/// the server's router outside the API's authentication and JSON layers (see the module doc).
pub fn router(api: &AppState) -> Router {
    let state = ConsoleState::new(api);
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::fleet::page))
        .route(
            "/console/instances",
            get(pages::instances::page).post(pages::create::submit),
        )
        .route("/console/create", get(pages::create::form))
        .route("/console/instances/{name}", get(pages::instance::page))
        .route(
            "/console/instances/{name}/delete",
            post(pages::instance::delete),
        )
        .route(
            "/console/instances/{name}/parameters",
            post(pages::instance_actions::parameters),
        )
        .route(
            "/console/instances/{name}/deletion-protection",
            post(pages::instance_actions::deletion_protection),
        )
        .route(
            "/console/instances/{name}/reset-password",
            post(pages::instance_actions::reset_password),
        )
        .route(
            "/console/instances/{name}/backups",
            post(pages::backups::take),
        )
        .route(
            "/console/instances/{name}/backups/{id}/verify",
            post(pages::backups::verify),
        )
        // stop, start, restart (the routes above win over this one).
        .route(
            "/console/instances/{name}/{action}",
            post(pages::instance_actions::act),
        )
        .route("/console/operations", get(pages::operations::page))
        .route("/console/operations/{id}", get(pages::operation::page))
        .route(
            "/console/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/console/sign-out", post(pages::sign_in::sign_out))
        .route("/console/live/fleet", get(pages::fleet::live))
        .route("/console/live/instances", get(pages::instances::live))
        .route("/console/live/instances/{name}", get(pages::instance::live))
        .route("/console/live/operations", get(pages::operations::live))
        .route("/console/live/operations/{id}", get(pages::operation::live))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/{*rest}", get(pages::not_found))
        .route_layer(axum::middleware::from_fn(guard::same_origin_changes))
        .route_layer(axum::middleware::from_fn(crate::http::metrics::track_http))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .with_state(state)
}
