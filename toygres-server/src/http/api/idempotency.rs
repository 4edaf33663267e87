//! The `Idempotency-Key` header: the caller's key, whose it is (its scope), and a keyed hash of
//! the request it came with.
//!
//! Keys are scoped per caller: per API token (by an HMAC of the token's id, never the token), or
//! the one local caller of a server without tokens. The request hash is an HMAC-SHA256 under a
//! subkey of the server's secret key, so a reader of the database cannot test guesses of a
//! password in the body against it. A key rotation changes the subkey (`toygres rotate-key`
//! forgets the stored keys).

use super::auth::Caller;
use super::error::ApiError;
use crate::plane::Idempotency;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use toygres_activities::seal::SecretKey;
use toygres_activities::subkey::MacKey;

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// The purpose label of the subkey that keys scopes and request hashes.
const PURPOSE: &str = "toygres idempotency v1";

/// The scope of a server without tokens.
const LOCAL_SCOPE: &str = "local";

/// Reads the key (1-255 visible ASCII characters) of `caller`, and hashes `route` with the body's
/// fields under a subkey of `secret`.
pub fn from_headers(
    headers: &HeaderMap,
    caller: Caller,
    secret: &SecretKey,
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
    let mac = MacKey::derive(secret, PURPOSE);
    Ok(Some(Idempotency {
        scope: scope(&mac, caller),
        key: key.to_string(),
        request_hash: request_hash(&mac, route, body),
    }))
}

/// Whose keys these are: `local`, or `token:` and 128 bits of an HMAC of the token's id.
fn scope(mac: &MacKey, caller: Caller) -> String {
    match caller {
        Caller::Local => LOCAL_SCOPE.to_string(),
        Caller::Token(id) => {
            let tag = mac.mac(&[b"scope\0", id.as_bytes()]);
            format!("token:{}", hex(&tag[..16]))
        }
    }
}

/// An HMAC of the route and the body's fields, independent of key order and whitespace.
fn request_hash(mac: &MacKey, route: &str, body: &Map<String, Value>) -> String {
    let mut fields: Vec<(&String, &Value)> =
        body.iter().filter(|(_, value)| !value.is_null()).collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut canonical = route.to_string();
    for (name, value) in fields {
        canonical.push('\n');
        canonical.push_str(name);
        canonical.push('=');
        canonical.push_str(&value.to_string());
    }
    hex(&mac.mac(&[b"request\0", canonical.as_bytes()]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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
        let mac = MacKey::derive(&SecretKey::generate(), PURPOSE);
        let hash = |route, body| request_hash(&mac, route, &map(body));
        let a = hash("POST /instances", json!({"name": "a", "storage_gb": 5}));
        let b = hash(
            "POST /instances",
            json!({"storage_gb": 5, "name": "a", "password": null}),
        );
        let c = hash("POST /instances", json!({"name": "a", "storage_gb": 6}));
        let d = hash("DELETE /instances/a", json!({"name": "a", "storage_gb": 5}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn the_hash_depends_on_the_server_secret() {
        let body = map(json!({"name": "a", "password": "Guessable-Summer-2026"}));
        let first = MacKey::derive(&SecretKey::generate(), PURPOSE);
        let second = MacKey::derive(&SecretKey::generate(), PURPOSE);
        assert_ne!(
            request_hash(&first, "POST /instances", &body),
            request_hash(&second, "POST /instances", &body)
        );
    }

    #[test]
    fn scopes_name_the_caller_without_the_token() -> Result<(), Box<dyn std::error::Error>> {
        use crate::security::tokens::ApiTokens;
        let (one, two) = ("first-token-0123456789", "second-token-0123456789");
        let tokens = ApiTokens::parse(&format!("admin:{one},admin:{two}"))?;
        let id = |token| {
            tokens
                .identify(token)
                .map(|(_, id)| Caller::Token(id))
                .ok_or("unknown token")
        };
        let mac = MacKey::derive(&SecretKey::generate(), PURPOSE);
        let first = scope(&mac, id(one)?);
        assert_eq!(first, scope(&mac, id(one)?), "stable");
        assert_ne!(first, scope(&mac, id(two)?));
        assert_eq!(scope(&mac, Caller::Local), "local");
        assert!(first.starts_with("token:") && first.len() == "token:".len() + 32);
        assert!(!first.contains(one));
        Ok(())
    }
}
