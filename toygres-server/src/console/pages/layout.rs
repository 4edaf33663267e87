//! The page shell: head (the embedded stylesheet and script, nothing inline), the top bar with
//! navigation and who is signed in, and the main column.

use super::super::assets;
use super::super::guard::Viewer;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The fleet overview.
    Overview,
    /// Instances (list, one instance).
    Instances,
    /// The create form.
    Create,
    /// Operations.
    Operations,
}

/// A full page for `viewer`, with the session cookie it may have just started.
pub fn page(viewer: &Viewer, section: Section, title: &str, main: Markup) -> Response {
    let entries = [
        (Section::Overview, "/console/", "Overview"),
        (Section::Instances, "/console/instances", "Instances"),
        (Section::Operations, "/console/operations", "Operations"),
    ];
    let markup = document(
        title,
        html! {
            header.top {
                a.brand href="/console/" { "Toygres" }
                nav aria-label="Main" {
                    @for (entry, path, label) in entries {
                        a href=(path) aria-current=[(entry == section).then_some("page")] { (label) }
                    }
                    @if viewer.may_change() {
                        a href="/console/create" aria-current=[(section == Section::Create).then_some("page")] { "Create" }
                    }
                }
                div.who {
                    span { (viewer.describe()) }
                    @if viewer.signed_in {
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
            }
            main #main {
                p #live-note .notice.warn hidden { "Live updates stopped: your session ended. " a href="/console/sign-in" { "Sign in again" } "." }
                (main)
            }
        },
    );
    let mut response = markup.into_response();
    if let Some(cookie) = &viewer.set_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// A page without navigation (sign-in, problems).
pub fn bare(title: &str, main: Markup) -> Markup {
    document(
        title,
        html! {
            header.top { a.brand href="/console/" { "Toygres" } }
            main #main { (main) }
        },
    )
}

/// A page without navigation that also sets `cookies`.
pub fn bare_with_cookies(title: &str, main: Markup, cookies: &[HeaderValue]) -> Response {
    let mut response = bare(title, main).into_response();
    for cookie in cookies {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Toygres" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("console.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (body)
            }
        }
    }
}
