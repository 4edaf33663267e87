//! The `Idempotency-Key` header: a key and a hash of the request it came with.

use super::error::ApiError;
use crate::service::Idempotency;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// Reads the key (1-255 visible ASCII characters) and hashes `route` with the body's fields.
pub fn from_headers(
    headers: &HeaderMap,
    route: &str,
    body: &Map<String, Value>,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )
    };
    let key = raw.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(Idempotency {
        key: key.to_string(),
        request_hash: request_hash(route, body),
    }))
}

/// A hash of the route and the body's fields, independent of key order and whitespace.
fn request_hash(route: &str, body: &Map<String, Value>) -> String {
    let mut fields: Vec<(&String, &Value)> =
        body.iter().filter(|(_, value)| !value.is_null()).collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    for (name, value) in fields {
        hasher.update(b"\n");
        hasher.update(name.as_bytes());
        hasher.update(b"=");
        hasher.update(value.to_string().as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_hash_ignores_order_and_nulls_but_not_values() {
        let a = request_hash(
            "POST /instances",
            &map(json!({"name": "a", "storage_gb": 5})),
        );
        let b = request_hash(
            "POST /instances",
            &map(json!({"storage_gb": 5, "name": "a", "password": null})),
        );
        let c = request_hash(
            "POST /instances",
            &map(json!({"name": "a", "storage_gb": 6})),
        );
        let d = request_hash(
            "DELETE /instances/a",
            &map(json!({"name": "a", "storage_gb": 5})),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
