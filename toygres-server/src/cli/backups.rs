//! `toygres backup | backups | verify-backup`: take a backup now, list an instance's backups,
//! prove that one restores. A backup or a verify is followed like every other change: say what
//! was accepted, wait with `--wait` (exit 1 when it fails), print the server's JSON with
//! `-o json`.

use super::client::{ApiClient, Reply};
use super::exit::CliError;
use super::model::{BackupAcceptedView, BackupView, parse, parse_items};
use super::output::{OutputFormat, emit, emit_json, json_object, json_page, note};
use super::wait::{Accepted, wait_for_operation};
use super::{BackupArgs, BackupsArgs, VerifyBackupArgs, render};
use serde_json::{Map, Value};

/// `toygres backup NAME [--type full|diff|incr] [--wait]`.
pub async fn backup(args: BackupArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let mut body = Map::new();
    if let Some(kind) = args.r#type {
        body.insert("type".into(), kind.as_str().into());
    }
    let reply = client.take_backup(&args.name, &Value::Object(body)).await?;
    follow(
        &client,
        reply,
        "POST /instances/{name}/backups",
        "Backing up",
        args.wait,
        args.options.output,
    )
    .await
}

/// `toygres verify-backup NAME ID [--wait]`.
pub async fn verify(args: VerifyBackupArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let reply = client.verify_backup(&args.name, &args.id).await?;
    follow(
        &client,
        reply,
        "POST /instances/{name}/backups/{id}/verify",
        "Verifying",
        args.wait,
        args.options.output,
    )
    .await
}

/// `toygres backups NAME`: every page, as one table or as `{"items": [...], "next_cursor": null}`.
pub async fn list(args: BackupsArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let items = client.list_all_backups(&args.name).await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&json_page(&items)),
        OutputFormat::Table => {
            let backups: Vec<BackupView> = parse_items(&items, "GET /instances/{name}/backups")?;
            emit(&render::backup_table(&backups))
        }
    }
}

/// Says what was accepted and, when `wait`, follows the operation to its end and shows the
/// backup as it ended (`-o json`: `{"backup", "operation"}` as the server sent them).
async fn follow(
    client: &ApiClient,
    reply: Reply,
    what: &str,
    doing: &str,
    wait: bool,
    format: OutputFormat,
) -> Result<(), CliError> {
    let accepted: BackupAcceptedView = parse(&reply.body, what)?;
    let operation_id = &accepted.operation.id;
    if format == OutputFormat::Table {
        let mut text = format!(
            "{doing} instance {} (backup {}, operation {operation_id}).\n",
            accepted.backup.instance, accepted.backup.id
        );
        if !wait {
            text.push_str(&format!("Follow it with: toygres op wait {operation_id}\n"));
        }
        emit(&text)?;
    }
    if !wait {
        if format == OutputFormat::Json {
            emit_json(&reply.text)?;
        }
        return Ok(());
    }
    let started = Accepted {
        operation: &accepted.operation,
        retry_after: reply.retry_after,
    };
    let finished = match wait_for_operation(client, operation_id, Some(started)).await {
        Ok(finished) => finished,
        Err(error) => {
            if format == OutputFormat::Json {
                emit_json(&reply.text)?;
            }
            return Err(error);
        }
    };
    let latest = latest_backup(client, &accepted.backup).await;
    match format {
        OutputFormat::Json => {
            let backup = latest.as_ref().map_or_else(
                || reply.body["backup"].to_string(),
                |(text, _)| text.clone(),
            );
            emit_json(&json_object(&[
                ("backup", &backup),
                ("operation", &finished.text),
            ]))?;
        }
        OutputFormat::Table => {
            let backup = latest.map_or(accepted.backup, |(_, backup)| backup);
            emit(&render::backup_details(&backup))?;
        }
    }
    finished.into_result().map(|_| ())
}

/// The backup as it is now (the server's JSON and what the CLI reads of it), or `None`, said
/// on stderr, when it cannot be read.
async fn latest_backup(client: &ApiClient, accepted: &BackupView) -> Option<(String, BackupView)> {
    let found = match client.list_all_backups(&accepted.instance).await {
        Ok(items) => items,
        Err(error) => {
            note(&format!(
                "toygres: showing the backup as accepted: cannot read it now: {error}"
            ));
            return None;
        }
    };
    found.into_iter().find_map(|item| {
        let backup: BackupView = serde_json::from_str(item.get()).ok()?;
        (backup.id == accepted.id).then(|| (item.get().to_string(), backup))
    })
}
