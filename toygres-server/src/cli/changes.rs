//! `toygres stop | start | restart | set | resize | reset-password`, and how every change of an
//! existing instance is followed (`delete` too): say what was accepted, wait with `--wait`
//! (exit 1 when it fails), print the server's JSON with `-o json`.

use super::client::{ApiClient, Reply};
use super::exit::CliError;
use super::model::{AcceptedView, InstanceView, parse};
use super::output::{OutputFormat, emit, emit_json, json_object, note};
use super::wait::{Accepted, wait_for_operation};
use super::{ActionArgs, ResetPasswordArgs, ResizeArgs, SetArgs, password, render};
use serde_json::{Map, Value};

/// What to print once a change succeeded (tables only).
pub(super) enum AfterSuccess {
    /// A line.
    Message(String),
    /// The instance as it is now.
    Details,
}

/// A change the server accepted, to follow.
pub(super) struct Change<'a> {
    /// The client.
    pub client: &'a ApiClient,
    /// The `202`.
    pub reply: Reply,
    /// What the `202` answered (`PATCH /instances/{name}`, ...), for messages.
    pub what: &'a str,
    /// What the change does, for the first line (`Stopping`).
    pub doing: &'a str,
    /// Whether to wait until it ends.
    pub wait: bool,
    /// How to print.
    pub format: OutputFormat,
    /// What to print once it succeeded.
    pub after: AfterSuccess,
}

/// Says what was accepted and, with `--wait`, follows the operation to its end.
///
/// `-o json` prints the server's `202` body; with `--wait`, the same shape with the instance and
/// the operation as they ended (and the password, when the `202` had one).
pub(super) async fn follow(change: Change<'_>) -> Result<(), CliError> {
    let accepted: AcceptedView = parse(&change.reply.body, change.what)?;
    let operation_id = &accepted.operation.id;
    let name = &accepted.instance.name;
    if change.format == OutputFormat::Table {
        let mut text = format!(
            "{} instance {name} (operation {operation_id}).\n",
            change.doing
        );
        if !change.wait {
            text.push_str(&format!("Follow it with: toygres op wait {operation_id}\n"));
        }
        emit(&text)?;
    }
    if !change.wait {
        if change.format == OutputFormat::Json {
            emit_json(&change.reply.text)?;
        }
        return Ok(());
    }
    let started = Accepted {
        operation: &accepted.operation,
        retry_after: change.reply.retry_after,
    };
    let finished = match wait_for_operation(change.client, operation_id, Some(started)).await {
        Ok(finished) => finished,
        Err(error) => {
            // Waiting stopped early: the `202` still says everything (a password included).
            if change.format == OutputFormat::Json {
                emit_json(&change.reply.text)?;
            }
            return Err(error);
        }
    };
    match change.format {
        OutputFormat::Json => {
            let instance = latest_instance(change.client, &change.reply).await;
            let password = change.reply.body["password"].to_string();
            let mut fields = vec![
                ("instance", instance.as_str()),
                ("operation", &finished.text),
            ];
            if change.reply.body.get("password").is_some() {
                fields.push(("password", &password));
            }
            emit_json(&json_object(&fields))?;
        }
        OutputFormat::Table if finished.operation.succeeded() => match change.after {
            AfterSuccess::Message(message) => emit(&format!("{message}\n"))?,
            AfterSuccess::Details => {
                let instance = change.client.get_instance(name).await?;
                let instance: InstanceView = parse(&instance.body, "GET /instances/{name}")?;
                emit(&render::instance_details(&instance))?;
            }
        },
        OutputFormat::Table => {}
    }
    finished.into_result().map(|_| ())
}

/// The instance as it is now (JSON text as the server sent it), or as the `202` showed it when
/// it cannot be read (said on stderr).
pub(super) async fn latest_instance(client: &ApiClient, accepted: &Reply) -> String {
    let name = accepted.body["instance"]["name"]
        .as_str()
        .unwrap_or_default();
    match client.get_instance(name).await {
        Ok(reply) => reply.text,
        Err(error) => {
            note(&format!(
                "toygres: showing the instance as accepted: cannot read it now: {error}"
            ));
            accepted.body["instance"].to_string()
        }
    }
}

/// `toygres stop | start | restart NAME`.
pub async fn action(args: ActionArgs, action: &str, doing: &str) -> Result<(), CliError> {
    let client = args.options.client()?;
    let reply = client.instance_action(&args.name, action).await?;
    let what = format!("POST /instances/{{name}}/{action}");
    follow(Change {
        client: &client,
        reply,
        what: &what,
        doing,
        wait: args.wait,
        format: args.options.output,
        after: AfterSuccess::Details,
    })
    .await
}

/// `toygres set NAME PARAM=VALUE ... [--reset PARAM] [--deletion-protection true|false]`.
pub async fn set(args: SetArgs) -> Result<(), CliError> {
    let body = set_body(&args)?;
    let client = args.options.client()?;
    let reply = client.update_instance(&args.name, &body).await?;
    follow(Change {
        client: &client,
        reply,
        what: "PATCH /instances/{name}",
        doing: "Updating",
        wait: args.wait,
        format: args.options.output,
        after: AfterSuccess::Details,
    })
    .await
}

/// `toygres resize NAME STORAGE_GB`.
pub async fn resize(args: ResizeArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let body = serde_json::json!({ "storage_gb": args.storage_gb });
    let reply = client.update_instance(&args.name, &body).await?;
    follow(Change {
        client: &client,
        reply,
        what: "PATCH /instances/{name}",
        doing: "Resizing",
        wait: args.wait,
        format: args.options.output,
        after: AfterSuccess::Details,
    })
    .await
}

/// `toygres reset-password NAME`: prints the new password once (unless read from stdin).
pub async fn reset_password(args: ResetPasswordArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let given = if args.password_stdin {
        Some(password::read_from_stdin()?)
    } else {
        None
    };
    let body = match &given {
        Some(password) => serde_json::json!({ "password": password }),
        None => serde_json::json!({}),
    };
    let reply = client.reset_password(&args.name, &body).await?;
    if args.options.output == OutputFormat::Table {
        let accepted: AcceptedView = parse(&reply.body, "POST /instances/{name}/reset-password")?;
        match (&accepted.password, given.is_some()) {
            (_, true) => emit("New password: the one read from stdin.\n")?,
            (Some(password), false) => emit(&format!(
                "New password: {password}\nThe password is shown this once and never again: store it now.\n"
            ))?,
            (None, false) => emit("New password: the server did not return one.\n")?,
        }
    }
    follow(Change {
        client: &client,
        reply,
        what: "POST /instances/{name}/reset-password",
        doing: "Resetting the owner's password of",
        wait: args.wait,
        format: args.options.output,
        after: AfterSuccess::Message("The old password no longer opens new connections.".into()),
    })
    .await
}

/// The body of `toygres set`: the parameters (`PARAM=VALUE`, `--reset PARAM` as `null`) and
/// deletion protection.
fn set_body(args: &SetArgs) -> Result<Value, CliError> {
    let mut parameters = Map::new();
    for assignment in &args.parameters {
        let (name, value) = assignment.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "'{assignment}' is not PARAM=VALUE (use --reset PARAM for the default)"
            ))
        })?;
        parameters.insert(name.trim().to_string(), value.into());
    }
    for name in &args.reset {
        parameters.insert(name.trim().to_string(), Value::Null);
    }
    let mut body = Map::new();
    if !parameters.is_empty() {
        body.insert("parameters".into(), Value::Object(parameters));
    }
    if let Some(protection) = args.deletion_protection {
        body.insert("deletion_protection".into(), protection.into());
    }
    if body.is_empty() {
        return Err(CliError::Usage(
            "nothing to set: give PARAM=VALUE, --reset PARAM or --deletion-protection".into(),
        ));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ClientOptions;
    use serde_json::json;

    fn args(parameters: &[&str], reset: &[&str], protection: Option<bool>) -> SetArgs {
        SetArgs {
            name: "db".into(),
            parameters: parameters.iter().map(|p| p.to_string()).collect(),
            reset: reset.iter().map(|p| p.to_string()).collect(),
            deletion_protection: protection,
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
    fn set_sends_values_resets_and_protection() -> Result<(), CliError> {
        assert_eq!(
            set_body(&args(
                &["work_mem=64MB", "search_path=a,b"],
                &["jit"],
                Some(true)
            ))?,
            json!({"parameters": {"work_mem": "64MB", "search_path": "a,b", "jit": null},
                   "deletion_protection": true})
        );
        assert_eq!(
            set_body(&args(&[], &[], Some(false)))?,
            json!({"deletion_protection": false})
        );
        assert!(matches!(
            set_body(&args(&["work_mem"], &[], None)),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            set_body(&args(&[], &[], None)),
            Err(CliError::Usage(_))
        ));
        Ok(())
    }
}
