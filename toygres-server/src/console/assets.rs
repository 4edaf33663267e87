//! The console's static files, compiled into the binary: one stylesheet, one script. Pages link
//! them with a version (a hash of the content) in the query, so browsers may keep them for a year
//! and still never run an old script against a new page.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
];

/// A short hash of every asset together: the `v` of their URLs.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    for asset in ASSETS {
        hasher.update(asset.body.as_bytes());
    }
    hasher.finalize()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
});

/// The URL of the asset `name` (`console.css`, `console.js`).
pub fn url(name: &str) -> String {
    format!("/console/assets/{name}?v={}", VERSION.as_str())
}

/// `GET /console/assets/{name}`: the file, cacheable for a year; 404 for any other name.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_version() {
        let css = url("console.css");
        assert!(css.starts_with("/console/assets/console.css?v="));
        assert_eq!(css.len(), "/console/assets/console.css?v=".len() + 12);
    }
}
