//! `toygres op get | wait | list`.

use super::exit::CliError;
use super::model::{OperationView, parse, parse_items};
use super::output::{OutputFormat, emit, emit_json, json_page};
use super::wait::wait_for_operation;
use super::{OperationIdArgs, OperationListArgs, render};

/// `toygres op get ID`.
pub async fn get(args: OperationIdArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let reply = client.get_operation(&args.id).await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&reply.text),
        OutputFormat::Table => {
            let operation: OperationView = parse(&reply.body, "GET /operations/{id}")?;
            emit(&render::operation_details(&operation))
        }
    }
}

/// `toygres op wait ID`: prints the operation once it has ended; exits 1 unless it succeeded.
pub async fn wait(args: OperationIdArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let finished = wait_for_operation(&client, &args.id, None).await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&finished.text)?,
        OutputFormat::Table => emit(&render::operation_details(&finished.operation))?,
    }
    finished.into_result().map(|_| ())
}

/// `toygres op list`: every page, newest first.
pub async fn list(args: OperationListArgs) -> Result<(), CliError> {
    let client = args.options.client()?;
    let items = client.list_all_operations(args.instance.as_deref()).await?;
    match args.options.output {
        OutputFormat::Json => emit_json(&json_page(&items)),
        OutputFormat::Table => {
            let operations: Vec<OperationView> = parse_items(&items, "GET /operations")?;
            emit(&render::operation_table(&operations))
        }
    }
}
