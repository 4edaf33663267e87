//! Instances and operations as tables (lists) and details (one resource).

use super::model::{BackupView, InstanceView, OperationView};
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
        "NAMESPACE",
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
            instance.namespace.clone().unwrap_or_else(|| NONE.into()),
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
        .optional("namespace", instance.namespace.clone())
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
        .optional(
            "parameters",
            (!instance.parameters.is_empty()).then(|| {
                instance
                    .parameters
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        )
        .field(
            "protected",
            if instance.deletion_protection {
                "yes (deletes are refused)"
            } else {
                "no"
            },
        )
        .optional(
            "backups",
            instance.backup.as_ref().map(|backup| {
                let last = backup
                    .last_backup_at
                    .as_deref()
                    .map(|at| format!(", last {}", short_time(at)))
                    .unwrap_or_default();
                format!("{}{last}", backup.status)
            }),
        )
        .optional(
            "restore window",
            instance
                .backup
                .as_ref()
                .and_then(|backup| backup.restore_window.as_ref())
                .map(|window| {
                    format!(
                        "{} to {}",
                        short_time(&window.earliest),
                        short_time(&window.latest)
                    )
                }),
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

/// A list of backups as a table, newest first.
pub fn backup_table(backups: &[BackupView]) -> String {
    if backups.is_empty() {
        return "No backups.\n".to_string();
    }
    let mut table = Table::new(&[
        "ID",
        "TYPE",
        "STATUS",
        "STARTED",
        "CONSISTENT AT",
        "SIZE",
        "IN REPO",
        "VERIFIED",
    ]);
    for backup in backups {
        table.push(vec![
            backup.id.clone(),
            backup.r#type.clone(),
            backup_status(backup),
            short_time(&backup.started_at),
            backup
                .consistent_at
                .as_deref()
                .map_or_else(|| NONE.into(), short_time),
            backup.size_bytes.map_or_else(|| NONE.into(), bytes),
            backup.repo_size_bytes.map_or_else(|| NONE.into(), bytes),
            backup
                .verified_at
                .as_deref()
                .map_or_else(|| NONE.into(), short_time),
        ]);
    }
    table.render()
}

/// One backup in detail.
pub fn backup_details(backup: &BackupView) -> String {
    let mut details = Details::new();
    details
        .field("id", &backup.id)
        .field("instance", &backup.instance)
        .field("type", &backup.r#type)
        .field("status", backup_status(backup))
        .optional(
            "error",
            backup
                .error
                .as_ref()
                .map(|error| format!("{}: {}", error.code, error.message)),
        )
        .field("started", short_time(&backup.started_at))
        .optional(
            "consistent at",
            backup.consistent_at.as_deref().map(short_time),
        )
        .optional("size", backup.size_bytes.map(bytes))
        .optional("in repository", backup.repo_size_bytes.map(bytes))
        .optional("label", backup.label.clone())
        .field("operation", &backup.operation_id)
        .optional("expired", backup.expired_at.as_deref().map(short_time))
        .optional("verified", backup.verified_at.as_deref().map(short_time));
    if let Some(Value::Object(found)) = &backup.verification {
        let found = found
            .iter()
            .map(|(key, value)| format!("{}={value}", key.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ");
        details.field("verification", found);
    }
    details.render()
}

/// A backup's status, `expired` once retention removed it.
fn backup_status(backup: &BackupView) -> String {
    match (&backup.expired_at, &backup.error) {
        (Some(_), _) => format!("{} (expired)", backup.status),
        (None, Some(error)) => format!("{} ({})", backup.status, error.code),
        (None, None) => backup.status.clone(),
    }
}

/// A size in bytes, in the largest binary unit that keeps it at 1 or more (`3.8 MiB`).
fn bytes(size: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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
    fn backups_show_sizes_status_and_verification() -> Result<(), ClientError> {
        let backup: BackupView = parse(
            &json!({
                "id": "bk_1", "instance": "db", "type": "full", "status": "succeeded",
                "started_at": "2025-01-31T12:00:00Z", "finished_at": "2025-01-31T12:00:05Z",
                "consistent_at": "2025-01-31T12:00:04Z", "size_bytes": 31_457_280,
                "repo_size_bytes": 3_932_160, "start_lsn": "0/2000028", "stop_lsn": "0/2000100",
                "label": "20250131-120000F", "error": null, "operation_id": "op_1",
                "expired_at": null, "verified_at": "2025-01-31T13:00:00Z",
                "verification": {"restored": true, "tables": 3, "rows": 1000}
            }),
            "test",
        )?;
        let table = backup_table(std::slice::from_ref(&backup));
        assert!(table.starts_with("ID"), "{table}");
        assert!(
            table.contains("30.0 MiB") && table.contains("3.8 MiB"),
            "{table}"
        );
        assert!(table.contains("2025-01-31 12:00:04Z"), "{table}");
        let details = backup_details(&backup);
        assert!(details.contains("20250131-120000F"), "{details}");
        assert!(details.contains("rows=1000"), "{details}");
        let expired = BackupView {
            expired_at: Some("2025-02-07T12:00:00Z".into()),
            ..backup
        };
        assert!(backup_table(&[expired]).contains("succeeded (expired)"));
        assert_eq!(backup_table(&[]), "No backups.\n");
        assert_eq!(bytes(512), "512 B");
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
