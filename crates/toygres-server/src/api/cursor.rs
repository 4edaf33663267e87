//! Opaque pagination cursors: base64url of a small JSON object only the server reads.

use super::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes a cursor.
pub fn encode<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes the `cursor` parameter; anything not made by [`encode`] is a 422 on `cursor`.
pub fn decode<T: DeserializeOwned>(raw: Option<&String>) -> Result<Option<T>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let invalid = || ApiError::invalid("cursor", "is not a cursor this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| invalid())
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
    }
}
