//! Instances and operations as tables (lists) and details (one resource).

use super::model::{InstanceView, OperationView};
use super::output::{Details, Table};
use serde_json::Value;

/// Shown for a value that is not known (yet).
const NONE: &str = "-";

/// A list of instances as a table.
pub fn instance_table(instances: &[InstanceView]) -> String {
    if instances.is_empty() {
        return "No instances.\n".to_string();
    }
    let mut table = Table::new(&[
        "NAME",
        "STATE",
        "VERSION",
        "STORAGE",
        "ENDPOINT",
        "LAST OPERATION",
        "CREATED",
    ]);
    for instance in instances {
        let state = match &instance.error {
            Some(error) => format!("{} ({})", instance.state, error.code),
            None => instance.state.clone(),
        };
        table.push(vec![
            instance.name.clone(),
            state,
            instance.postgres_version.clone(),
            format!("{} GiB", instance.storage_gb),
            endpoint(instance),
            instance
                .last_operation_id
                .clone()
                .unwrap_or_else(|| NONE.into()),
            short_time(&instance.created_at),
        ]);
    }
    table.render()
}

/// One instance in detail.
pub fn instance_details(instance: &InstanceView) -> String {
    let mut details = Details::new();
    details
        .field("name", &instance.name)
        .field("state", &instance.state)
        .optional(
            "error",
            instance
                .error
                .as_ref()
                .map(|error| format!("{}: {}", error.code, error.message)),
        )
        .field("backend", &instance.backend)
        .field("postgres version", &instance.postgres_version)
        .field("storage", format!("{} GiB", instance.storage_gb))
        .field("expose", &instance.expose)
        .field("endpoint", endpoint(instance))
        .field("database", &instance.database)
        .field("user", &instance.user)
        .field(
            "connection uri",
            instance
                .connection_uri
                .clone()
                .unwrap_or_else(|| NONE.into()),
        )
        .optional(
            "health",
            instance.health.as_ref().map(|health| health.status.clone()),
        )
        .optional("last operation", instance.last_operation_id.clone())
        .field("created", short_time(&instance.created_at))
        .field("updated", short_time(&instance.updated_at));
    details.render()
}

/// A list of operations as a table.
pub fn operation_table(operations: &[OperationView]) -> String {
    if operations.is_empty() {
        return "No operations.\n".to_string();
    }
    let mut table = Table::new(&[
        "ID", "KIND", "INSTANCE", "STATUS", "STEP", "PROGRESS", "CREATED",
    ]);
    for operation in operations {
        table.push(vec![
            operation.id.clone(),
            operation.kind.clone(),
            operation.instance.clone(),
            operation.status.clone(),
            operation.step.clone().unwrap_or_else(|| NONE.into()),
            progress(operation),
            short_time(&operation.created_at),
        ]);
    }
    table.render()
}

/// One operation in detail.
pub fn operation_details(operation: &OperationView) -> String {
    let mut details = Details::new();
    details
        .field("id", &operation.id)
        .field("kind", &operation.kind)
        .field("instance", &operation.instance)
        .field("status", &operation.status)
        .field(
            "step",
            operation.step.clone().unwrap_or_else(|| NONE.into()),
        )
        .field("progress", progress(operation))
        .optional(
            "error",
            operation.error.as_ref().map(|error| {
                let retry = if error.retryable {
                    "retryable"
                } else {
                    "not retryable"
                };
                format!("{}: {} ({retry})", error.code, error.message)
            }),
        );
    if let Some(Value::Object(result)) = &operation.result {
        for (key, value) in result {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            details.field(key.replace('_', " "), value);
        }
    }
    details
        .field("created", short_time(&operation.created_at))
        .optional("started", operation.started_at.as_deref().map(short_time))
        .optional("finished", operation.finished_at.as_deref().map(short_time));
    details.render()
}

/// `done/total`.
pub fn progress(operation: &OperationView) -> String {
    format!("{}/{}", operation.progress.done, operation.progress.total)
}

/// `host:port`, or `-` before the instance has one.
fn endpoint(instance: &InstanceView) -> String {
    match (&instance.host, instance.port) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        _ => NONE.into(),
    }
}

/// An RFC 3339 time to the second, in UTC (`2025-01-31 12:00:00Z`); unparsable text as is.
fn short_time(raw: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|time| {
            time.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string()
        })
        .unwrap_or_else(|_| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::ClientError;
    use crate::cli::model::parse;
    use serde_json::json;

    fn instance(state: &str, port: Option<u16>) -> Result<InstanceView, ClientError> {
        parse(
            &json!({
                "name": "orders-db", "state": state, "backend": "local",
                "postgres_version": "15", "storage_gb": 10, "expose": "internal",
                "host": port.map(|_| "127.0.0.1"), "port": port, "database": "postgres",
                "user": "postgres",
                "connection_uri": port.map(|p| format!("postgresql://postgres@127.0.0.1:{p}/postgres")),
                "error": if state == "failed" { json!({"code": "deploy_failed", "message": "no port"}) } else { json!(null) },
                "health": {"status": "unknown", "checked_at": null, "latency_ms": null, "consecutive_failures": 0},
                "last_operation_id": "op_1",
                "created_at": "2025-01-31T12:00:00.123456Z", "updated_at": "2025-01-31T12:00:01Z"
            }),
            "test",
        )
    }

    #[test]
    fn instances_show_endpoint_and_error() -> Result<(), ClientError> {
        let table = instance_table(&[instance("running", Some(15432))?, instance("failed", None)?]);
        assert!(table.starts_with("NAME"), "{table}");
        assert!(table.contains("127.0.0.1:15432"), "{table}");
        assert!(table.contains("failed (deploy_failed)"), "{table}");
        assert!(table.contains("2025-01-31 12:00:00Z"), "{table}");
        let details = instance_details(&instance("running", Some(15432))?);
        assert!(
            details.contains("connection uri:    postgresql://postgres@127.0.0.1:15432/postgres"),
            "{details}"
        );
        assert_eq!(instance_table(&[]), "No instances.\n");
        Ok(())
    }

    #[test]
    fn operations_show_result_and_error() -> Result<(), ClientError> {
        let operation: OperationView = parse(
            &json!({
                "id": "op_1", "kind": "create", "instance": "db", "status": "failed",
                "step": "deploy", "progress": {"done": 0, "total": 5},
                "error": {"code": "deploy_failed", "message": "no free port", "retryable": false},
                "result": {"elapsed_ms": 812}, "created_at": "2025-01-31T12:00:00Z",
                "started_at": null, "finished_at": "2025-01-31T12:00:02Z"
            }),
            "test",
        )?;
        let details = operation_details(&operation);
        assert!(
            details.contains("deploy_failed: no free port (not retryable)"),
            "{details}"
        );
        assert!(details.contains("elapsed ms:"), "{details}");
        assert!(!details.contains("started:"), "{details}");
        let table = operation_table(&[operation]);
        assert!(table.contains("op_1") && table.contains("0/5"), "{table}");
        Ok(())
    }
}
