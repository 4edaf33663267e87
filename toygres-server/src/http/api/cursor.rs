//! Opaque pagination cursors: base64url of a small JSON object only the server reads. Clients
//! can forge one, so a decoded cursor is checked before it reaches a query: no NUL character
//! in any string (PostgreSQL refuses them), and each list checks its own values too.

use super::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Encodes a cursor.
pub fn encode<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes the `cursor` parameter; anything not made by [`encode`] is a 422 on `cursor`.
pub fn decode<T: DeserializeOwned>(raw: Option<&String>) -> Result<Option<T>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if has_nul(&value) {
        return Err(invalid());
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| invalid())
}

/// The 422 for a cursor this server did not issue.
pub fn invalid() -> ApiError {
    ApiError::invalid("cursor", "is not a cursor this server issued")
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let raw = encode(&("orders", 7i64));
        assert_eq!(
            decode::<(String, i64)>(Some(&raw)).ok().flatten(),
            Some(("orders".to_string(), 7))
        );
        assert!(decode::<(String, i64)>(Some(&"!!".to_string())).is_err());
        assert!(decode::<(String, i64)>(Some(&encode(&"x"))).is_err());
        assert!(matches!(decode::<(String, i64)>(None), Ok(None)));
        let forged = URL_SAFE_NO_PAD.encode(br#"["a\u0000b", 1]"#);
        assert!(decode::<(String, i64)>(Some(&forged)).is_err());
    }
}
