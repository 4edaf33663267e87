//! `toygres create | list | get | delete`.

use super::changes::{AfterSuccess, Change, follow, latest_instance};
use super::client::InstanceFilter;
use super::exit::CliError;
use super::model::{AcceptedView, InstanceView, parse, parse_items};
use super::output::{OutputFormat, emit, emit_json, json_object, json_page};
use super::wait::{Accepted, wait_for_operation};
use super::{CreateArgs, DeleteArgs, GetArgs, ListArgs, password, render};
use serde_json::{Map, Value};

/// `toygres create`: prints the password once; with `--wait`, exits 1 when the create fails.
///
/// `-o json` prints the server's `202` body; with `--wait`, the same shape with the instance and
/// the operation as they ended. Should waiting stop early (Ctrl-C, server gone), the `202` body
/// is printed instead, so that the password is never lost.
pub async fn create(args: CreateArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let given_password = if args.password_stdin {
        Some(password::read_from_stdin()?)
    } else {
        None
    };
    let body = create_body(&args, given_password.as_deref());
    let reply = client.create_instance(&body).await?;
    let accepted: AcceptedView = parse(&reply.body, "POST /instances")?;
    let format = args.options.output;
    if format == OutputFormat::Table {
        emit(&accepted_text(
            &accepted,
            given_password.is_some(),
            args.wait,
        ))?;
    }
    if !args.wait {
        if format == OutputFormat::Json {
            emit_json(&reply.text)?;
        }
        return Ok(());
    }
    let started = Accepted {
        operation: &accepted.operation,
        retry_after: reply.retry_after,
    };
    let finished = match wait_for_operation(&client, &accepted.operation.id, Some(started)).await {
        Ok(finished) => finished,
        Err(error) => {
            if format == OutputFormat::Json {
                emit_json(&reply.text)?;
            }
            return Err(error);
        }
    };
    match format {
        OutputFormat::Json => {
            let instance = latest_instance(&client, &reply).await;
            let password = reply.body["password"].to_string();
            emit_json(&json_object(&[
                ("instance", &instance),
                ("operation", &finished.text),
                ("password", &password),
            ]))?;
        }
        OutputFormat::Table if finished.operation.succeeded() => {
            let instance = client.get_instance(&accepted.instance.name).await?;
            let instance: InstanceView = parse(&instance.body, "GET /instances/{name}")?;
            emit(&render::instance_details(&instance))?;
        }
        OutputFormat::Table => {}
    }
    finished.into_result().map(|_| ())
}

/// `toygres list`: every page, as one table or as `{"items": [...], "next_cursor": null}`.
pub async fn list(args: ListArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let items = client
        .list_all_instances(InstanceFilter {
            state: args.state.map(|state| state.as_str()),
            namespace: args.namespace.as_deref(),
        })
        .await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&json_page(&items)),
        OutputFormat::Table => {
            let instances: Vec<InstanceView> = parse_items(&items, "GET /instances")?;
            emit(&render::instance_table(&instances))
        }
    }
}

/// `toygres get NAME`.
pub async fn get(args: GetArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let reply = client.get_instance(&args.name).await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&reply.text),
        OutputFormat::Table => {
            let instance: InstanceView = parse(&reply.body, "GET /instances/{name}")?;
            emit(&render::instance_details(&instance))
        }
    }
}

/// `toygres delete NAME`: with `--wait`, exits 1 when the delete fails.
pub async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let reply = client
        .delete_instance(&args.name, args.final_backup)
        .await?;
    follow(Change {
        client: &client,
        reply,
        what: "DELETE /instances/{name}",
        doing: "Deleting",
        wait: args.wait,
        format: args.options.output,
        after: AfterSuccess::Message(format!("Instance {} deleted.", args.name)),
    })
    .await
}

/// The body of `POST /instances`: only the fields that were given.
fn create_body(args: &CreateArgs, password: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), args.name.clone().into());
    if let Some(password) = password {
        body.insert("password".into(), password.into());
    }
    if let Some(version) = &args.postgres_version {
        body.insert("postgres_version".into(), version.clone().into());
    }
    if let Some(storage_gb) = args.storage_gb {
        body.insert("storage_gb".into(), storage_gb.into());
    }
    if let Some(expose) = args.expose {
        body.insert("expose".into(), expose.as_str().into());
    }
    if let Some(namespace) = &args.namespace {
        body.insert("namespace".into(), namespace.clone().into());
    }
    if !args.parameters.is_empty() {
        let parameters: Map<String, Value> = args
            .parameters
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into()))
            .collect();
        body.insert("parameters".into(), Value::Object(parameters));
    }
    if args.deletion_protection {
        body.insert("deletion_protection".into(), true.into());
    }
    if let Some(source) = &args.restore_from {
        let mut restore = Map::new();
        restore.insert("instance".into(), source.clone().into());
        if let Some(at) = &args.at {
            restore.insert("point_in_time".into(), at.clone().into());
        }
        if let Some(backup) = &args.backup {
            restore.insert("backup_id".into(), backup.clone().into());
        }
        body.insert("restore_from".into(), Value::Object(restore));
    }
    Value::Object(body)
}

/// What `create` says once the server accepted it, with the password (unless the user gave it).
fn accepted_text(accepted: &AcceptedView, password_given: bool, waiting: bool) -> String {
    let operation_id = &accepted.operation.id;
    let mut text = format!(
        "Creating instance {} (operation {operation_id}).\n",
        accepted.instance.name
    );
    match (&accepted.password, password_given) {
        (_, true) => text.push_str("Password: the one read from stdin.\n"),
        (Some(password), false) => {
            text.push_str(&format!("Password: {password}\n"));
            text.push_str("The password is shown this once and never again: store it now.\n");
        }
        (None, false) => text.push_str("Password: the server did not return one.\n"),
    }
    if !waiting {
        text.push_str(&format!("Follow it with: toygres op wait {operation_id}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ClientOptions;
    use crate::cli::client::ClientError;
    use serde_json::json;

    fn args(name: &str) -> CreateArgs {
        CreateArgs {
            name: name.into(),
            postgres_version: None,
            storage_gb: None,
            expose: None,
            namespace: None,
            parameters: Vec::new(),
            deletion_protection: false,
            restore_from: None,
            at: None,
            backup: None,
            password_stdin: false,
            wait: false,
            options: ClientOptions {
                url: crate::cli::DEFAULT_URL.into(),
                ca_cert: None,
                token: None,
                output: OutputFormat::Table,
            },
        }
    }

    #[test]
    fn create_sends_only_given_fields() {
        assert_eq!(create_body(&args("db"), None), json!({"name": "db"}));
        let full = CreateArgs {
            postgres_version: Some("15".into()),
            storage_gb: Some(5),
            expose: Some(crate::cli::ExposeChoice::Public),
            namespace: Some("team-b".into()),
            ..args("db")
        };
        assert_eq!(
            create_body(&full, Some("s3cret-password")),
            json!({"name": "db", "password": "s3cret-password", "postgres_version": "15",
                   "storage_gb": 5, "expose": "public", "namespace": "team-b"})
        );
        let restored = CreateArgs {
            restore_from: Some("old-db".into()),
            at: Some("2026-12-03T10:15:00Z".into()),
            ..args("db")
        };
        assert_eq!(
            create_body(&restored, None),
            json!({"name": "db", "restore_from": {"instance": "old-db",
                   "point_in_time": "2026-12-03T10:15:00Z"}})
        );
    }

    #[test]
    fn the_password_is_shown_unless_given() -> Result<(), ClientError> {
        let accepted: AcceptedView = parse(
            &json!({
                "instance": {"name": "db", "state": "creating", "backend": "local",
                    "postgres_version": "15", "storage_gb": 10, "expose": "internal",
                    "host": null, "port": null, "database": "postgres", "user": "postgres",
                    "connection_uri": null, "error": null, "health": null,
                    "last_operation_id": "op_1", "created_at": "x", "updated_at": "x"},
                "operation": {"id": "op_1", "kind": "create", "instance": "db",
                    "status": "pending", "step": null, "progress": {"done": 0, "total": 5},
                    "error": null, "result": null, "created_at": "x", "started_at": null,
                    "finished_at": null},
                "password": "generated-secret"
            }),
            "test",
        )?;
        let shown = accepted_text(&accepted, false, false);
        assert_eq!(shown.matches("generated-secret").count(), 1, "{shown}");
        assert!(shown.contains("toygres op wait op_1"), "{shown}");
        let given = accepted_text(&accepted, true, true);
        assert!(!given.contains("generated-secret"), "{given}");
        assert!(!given.contains("op wait"), "{given}");
        Ok(())
    }
}
