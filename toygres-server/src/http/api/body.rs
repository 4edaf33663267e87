//! Reading request bodies and parameters field by field, so that every rejection names the
//! field and the reason: unknown fields, wrong types, out-of-range numbers.

use super::error::ApiError;
use axum::body::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a JSON object body; an empty body counts as `{}` when `empty_ok`.
pub fn json_object(bytes: &Bytes, empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(Map::new())
        } else {
            Err(ApiError::MalformedJson("the body is empty".into()))
        };
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    let Value::Object(map) = value else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    // A repeated key is valid JSON, but readers disagree on which value wins: refuse it.
    if let Ok(FirstRepeatedKey(Some(key))) = serde_json::from_slice::<FirstRepeatedKey>(bytes) {
        return Err(ApiError::invalid(key, "appears more than once"));
    }
    Ok(map)
}

/// The first key that appears twice in a JSON object, if any.
struct FirstRepeatedKey(Option<String>);

impl<'de> serde::Deserialize<'de> for FirstRepeatedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RepeatedKeyVisitor)
    }
}

struct RepeatedKeyVisitor;

impl<'de> serde::de::Visitor<'de> for RepeatedKeyVisitor {
    type Value = FirstRepeatedKey;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<serde::de::IgnoredAny>()?;
            if repeated.is_none() && !seen.insert(key.clone()) {
                repeated = Some(key);
            }
        }
        Ok(FirstRepeatedKey(repeated))
    }
}

/// Rejects any key of `map` not in `known`.
pub fn only_known(map: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match map.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown field; expected one of: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// An optional string field (`null` counts as absent).
pub fn optional_string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

/// A required string field.
pub fn required_string(map: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    optional_string(map, field)?.ok_or_else(|| ApiError::invalid(field, "is required"))
}

/// An optional integer field within `range`.
pub fn optional_integer(
    map: &Map<String, Value>,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    let message = || {
        format!(
            "must be an integer from {} to {}",
            range.start(),
            range.end()
        )
    };
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(value) if range.contains(&value) => Ok(Some(value)),
            _ => Err(ApiError::invalid(field, message())),
        },
        Some(_) => Err(ApiError::invalid(field, message())),
    }
}

/// An optional boolean field (`null` counts as absent).
pub fn optional_bool(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(ApiError::invalid(field, "must be true or false")),
    }
}

/// The most server parameters one request may set.
pub const MAX_PARAMETERS: usize = 100;

/// An optional object of server parameters, `{"name": value}`: a value is a string, a number
/// or a boolean (as PostgreSQL writes them: `on`/`off`), or, when `nulls` (a change), `null`
/// for the server's default.
pub fn optional_parameters(
    map: &Map<String, Value>,
    field: &str,
    nulls: bool,
) -> Result<Option<std::collections::BTreeMap<String, Option<String>>>, ApiError> {
    let object = match map.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(ApiError::invalid(
                field,
                "must be an object of parameter names and values",
            ));
        }
    };
    if object.len() > MAX_PARAMETERS {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_PARAMETERS} parameters at once"),
        ));
    }
    let mut parameters = std::collections::BTreeMap::new();
    for (name, value) in object {
        let value = match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(true) => Some("on".to_string()),
            Value::Bool(false) => Some("off".to_string()),
            Value::Null if nulls => None,
            _ => {
                let expected = if nulls {
                    "must be a string, a number, a boolean or null (the default)"
                } else {
                    "must be a string, a number or a boolean"
                };
                return Err(ApiError::invalid(format!("{field}.{name}"), expected));
            }
        };
        parameters.insert(name.clone(), value);
    }
    Ok(Some(parameters))
}

/// Rejects query parameters not in `known`.
pub fn only_known_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(ApiError::invalid(
            unknown.clone(),
            format!("unknown parameter; expected one of: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// The `limit` query parameter: 1-500, default 100.
pub fn limit_param(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    match params.get("limit") {
        None => Ok(100),
        Some(raw) => match raw.parse::<i64>() {
            Ok(limit) if (1..=500).contains(&limit) => Ok(limit),
            _ => Err(ApiError::invalid(
                "limit",
                "must be an integer from 1 to 500",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn objects_only() {
        assert!(matches!(
            json_object(&Bytes::from_static(b"{"), false),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            json_object(&Bytes::from_static(b"[1]"), false),
            Err(ApiError::Invalid { .. })
        ));
        assert!(matches!(
            json_object(&Bytes::from_static(b""), false),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(json_object(&Bytes::from_static(b" "), true).is_ok_and(|map| map.is_empty()));
        assert!(matches!(
            json_object(&Bytes::from_static(br#"{"name":"a","x":{"k":1,"k":2},"name":"b"}"#), false),
            Err(ApiError::Invalid { field, .. }) if field == "name"
        ));
    }

    #[test]
    fn fields_are_checked_with_their_names() {
        let body = map(json!({"name": 5, "storage_gb": 1e3, "other": 1}));
        assert!(
            matches!(only_known(&body, &["name", "storage_gb"]), Err(ApiError::Invalid { field, .. }) if field == "other")
        );
        assert!(
            matches!(required_string(&body, "name"), Err(ApiError::Invalid { field, .. }) if field == "name")
        );
        assert!(matches!(
            optional_integer(&body, "storage_gb", 1..=1024),
            Err(ApiError::Invalid { .. })
        ));
        let body = map(
            json!({"storage_gb": 99999999999999999999u128.to_string().parse::<f64>().unwrap_or(0.0)}),
        );
        assert!(optional_integer(&body, "storage_gb", 1..=1024).is_err());
        let body = map(json!({"storage_gb": 10, "password": null}));
        assert!(matches!(
            optional_integer(&body, "storage_gb", 1..=1024),
            Ok(Some(10))
        ));
        assert!(matches!(optional_string(&body, "password"), Ok(None)));
    }

    #[test]
    fn limits() {
        let mut params = HashMap::new();
        assert!(matches!(limit_param(&params), Ok(100)));
        params.insert("limit".to_string(), "0".to_string());
        assert!(limit_param(&params).is_err());
        params.insert("limit".to_string(), "500".to_string());
        assert!(matches!(limit_param(&params), Ok(500)));
        params.insert("limit".to_string(), "abc".to_string());
        assert!(limit_param(&params).is_err());
    }
}
