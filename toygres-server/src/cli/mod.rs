//! The client subcommands of `toygres` (`create`, `list`, `get`, `delete`, `stop`, `start`,
//! `restart`, `set`, `resize`, `reset-password`, `backup`, `backups`, `verify-backup`, `op ...`):
//! they talk
//! to a running server over HTTP, print tables or the server's JSON, and exit with the codes of
//! [`exit`].
//!
//! - [`client`]: the typed HTTP client and its errors.
//! - [`model`]: the parts of the API's JSON the tables show.
//! - [`output`]: tables, key/value details and JSON on stdout.
//! - [`render`]: instances and operations as tables and details.
//! - [`progress`]: a progress bar on a terminal, plain lines otherwise.
//! - [`wait`]: polling an operation until it ends, honouring `Retry-After`.
//! - [`password`]: reading a password from stdin.
//! - [`instances`], [`changes`], [`backups`] and [`operations`]: the commands themselves.

pub mod backups;
pub mod changes;
pub mod client;
pub mod exit;
pub mod instances;
pub mod model;
pub mod operations;
pub mod output;
pub mod password;
pub mod progress;
pub mod render;
pub mod wait;

use clap::{Args, Subcommand, ValueEnum};
use client::ApiClient;
use exit::CliError;
use output::OutputFormat;

/// Default server URL when `TOYGRES_URL` is unset.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How to reach the server and how to print; shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// Base URL of the Toygres server (http:// or https://).
    #[arg(long, env = "TOYGRES_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// PEM file of the certificate authority (or the self-signed certificate) an https://
    /// server's certificate must chain to, instead of the system's roots.
    #[arg(long, env = "TOYGRES_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// API token, sent as `Authorization: Bearer <token>` (prefer the environment variable:
    /// flags show in `ps`).
    #[arg(long, env = "TOYGRES_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Output: human-readable tables, or the server's JSON for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

impl ClientOptions {
    /// The HTTP client these options describe.
    pub fn client(&self) -> Result<ApiClient, CliError> {
        Ok(ApiClient::with_ca(
            &self.url,
            self.token.clone(),
            self.ca_cert.as_deref(),
        )?)
    }
}

/// Instance states, as `list --state` accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateFilter {
    /// Being created.
    Creating,
    /// Accepting connections.
    Running,
    /// Being stopped.
    Stopping,
    /// Stopped: its server is down, its data kept.
    Stopped,
    /// Being started.
    Starting,
    /// Being restarted or changed.
    Updating,
    /// Being deleted.
    Deleting,
    /// Deleted (listed only when asked for).
    Deleted,
    /// An operation failed.
    Failed,
}

impl StateFilter {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StateFilter::Creating => "creating",
            StateFilter::Running => "running",
            StateFilter::Stopping => "stopping",
            StateFilter::Stopped => "stopped",
            StateFilter::Starting => "starting",
            StateFilter::Updating => "updating",
            StateFilter::Deleting => "deleting",
            StateFilter::Deleted => "deleted",
            StateFilter::Failed => "failed",
        }
    }
}

/// How a new instance is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExposeChoice {
    /// Reachable from the backend's network only.
    Internal,
    /// Reachable from outside (a load balancer on Kubernetes).
    Public,
}

impl ExposeChoice {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExposeChoice::Internal => "internal",
            ExposeChoice::Public => "public",
        }
    }
}

/// Arguments of `toygres create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Instance name: lowercase letters, digits and '-', starting with a letter, at most 40.
    pub name: String,

    /// Major PostgreSQL version (default: the newest the backend offers).
    #[arg(long)]
    pub postgres_version: Option<String>,

    /// Storage in GiB, 1-1024 (default 10).
    #[arg(long)]
    pub storage_gb: Option<u32>,

    /// How the instance is exposed (default internal).
    #[arg(long, value_enum)]
    pub expose: Option<ExposeChoice>,

    /// The Kubernetes namespace it goes into, one the server allows (default: the server's
    /// configured one; the local backend has only `default`).
    #[arg(long)]
    pub namespace: Option<String>,

    /// A server parameter, PARAM=VALUE (repeat for more), checked against the version's own
    /// pg_settings.
    #[arg(long = "parameter", value_name = "PARAM=VALUE", value_parser = parse_assignment)]
    pub parameters: Vec<(String, String)>,

    /// Refuse deletes until it is turned off (`toygres set NAME --deletion-protection false`).
    #[arg(long)]
    pub deletion_protection: bool,

    /// Start as a copy of this instance's data, from its backups (as recent as possible
    /// unless --at or --backup says otherwise). The source may be deleted while its backups
    /// are kept.
    #[arg(long, value_name = "INSTANCE")]
    pub restore_from: Option<String>,

    /// With --restore-from: the moment to restore to, RFC 3339 (`2026-12-03T10:15:00Z`),
    /// inside the source's restore window.
    #[arg(
        long,
        value_name = "TIME",
        requires = "restore_from",
        conflicts_with = "backup"
    )]
    pub at: Option<String>,

    /// With --restore-from: restore to the end of this backup of the source (`bk_...`).
    #[arg(long, value_name = "BACKUP_ID", requires = "restore_from")]
    pub backup: Option<String>,

    /// Read the password from stdin instead of letting the server generate one.
    #[arg(long)]
    pub password_stdin: bool,

    /// Wait until the create has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only instances in this state (deleted ones are listed only with `--state deleted`).
    #[arg(long, value_enum)]
    pub state: Option<StateFilter>,

    /// Only instances in this namespace.
    #[arg(long)]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Instance name.
    pub name: String,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Instance name.
    pub name: String,

    /// Take a full backup first (the delete fails, and the instance stays, if it fails).
    #[arg(long)]
    pub final_backup: bool,

    /// Wait until the delete has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres stop`, `start` and `restart`.
#[derive(Debug, Clone, Args)]
pub struct ActionArgs {
    /// Instance name.
    pub name: String,

    /// Wait until it has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres set`.
#[derive(Debug, Clone, Args)]
pub struct SetArgs {
    /// Instance name.
    pub name: String,

    /// Parameters to set, PARAM=VALUE; those that need a restart restart the instance.
    #[arg(value_name = "PARAM=VALUE")]
    pub parameters: Vec<String>,

    /// Return a parameter to the server's default (repeat for more).
    #[arg(long, value_name = "PARAM")]
    pub reset: Vec<String>,

    /// Turn deletion protection on (true) or off (false).
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub deletion_protection: Option<bool>,

    /// Wait until it has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres resize`.
#[derive(Debug, Clone, Args)]
pub struct ResizeArgs {
    /// Instance name.
    pub name: String,

    /// The new storage in GiB (it only grows).
    pub storage_gb: u32,

    /// Wait until it has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres reset-password`.
#[derive(Debug, Clone, Args)]
pub struct ResetPasswordArgs {
    /// Instance name.
    pub name: String,

    /// Read the new password from stdin instead of letting the server generate one.
    #[arg(long)]
    pub password_stdin: bool,

    /// Wait until it has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// A backup's type, as `backup --type` accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupKind {
    /// Everything.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup.
    Incr,
}

impl BackupKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Diff => "diff",
            BackupKind::Incr => "incr",
        }
    }
}

/// Arguments of `toygres backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Instance name.
    pub name: String,

    /// The backup's type (default full).
    #[arg(long = "type", value_enum)]
    pub r#type: Option<BackupKind>,

    /// Wait until it has finished; exit 1 when it fails.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres backups`.
#[derive(Debug, Clone, Args)]
pub struct BackupsArgs {
    /// Instance name (a deleted one's backups are listed while they are kept).
    pub name: String,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres verify-backup`.
#[derive(Debug, Clone, Args)]
pub struct VerifyBackupArgs {
    /// Instance name.
    pub name: String,

    /// Backup id (`bk_...`, from `toygres backups NAME`).
    pub id: String,

    /// Wait until it has finished; exit 1 when the backup does not restore.
    #[arg(long)]
    pub wait: bool,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// `PARAM=VALUE` as a pair.
fn parse_assignment(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(name, value)| (name.trim().to_string(), value.to_string()))
        .ok_or_else(|| format!("'{raw}' is not PARAM=VALUE"))
}

/// Arguments of `toygres op get` and `toygres op wait`.
#[derive(Debug, Clone, Args)]
pub struct OperationIdArgs {
    /// Operation id (`op_...`).
    pub id: String,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// Arguments of `toygres op list`.
#[derive(Debug, Clone, Args)]
pub struct OperationListArgs {
    /// Only the operations of this instance.
    #[arg(long)]
    pub instance: Option<String>,

    #[command(flatten)]
    pub options: ClientOptions,
}

/// `toygres op ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum OperationCommand {
    /// Show an operation.
    Get(OperationIdArgs),
    /// Wait until an operation has finished; exit 1 when it failed or was canceled.
    Wait(OperationIdArgs),
    /// List operations, newest first.
    List(OperationListArgs),
}

/// The client subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Create an instance; its password is printed this once.
    Create(CreateArgs),
    /// List instances.
    List(ListArgs),
    /// Show an instance.
    Get(GetArgs),
    /// Delete an instance (a create still running is canceled first).
    Delete(DeleteArgs),
    /// Stop an instance's server; its data, port and connection string are kept.
    Stop(ActionArgs),
    /// Start a stopped instance's server again.
    Start(ActionArgs),
    /// Restart an instance's server.
    Restart(ActionArgs),
    /// Set or reset server parameters, or deletion protection.
    Set(SetArgs),
    /// Grow an instance's storage.
    Resize(ResizeArgs),
    /// Give the owner a new password; it is printed this once.
    ResetPassword(ResetPasswordArgs),
    /// Take a backup of an instance now.
    Backup(BackupArgs),
    /// List an instance's backups, newest first.
    Backups(BackupsArgs),
    /// Prove that a backup restores: restore it into a scratch server and read it all.
    VerifyBackup(VerifyBackupArgs),
    /// Show, wait for or list operations.
    #[command(subcommand)]
    Op(OperationCommand),
}

/// Runs a client subcommand on `runtime` and returns its exit code, after printing any error
/// on stderr.
pub fn run(runtime: &tokio::runtime::Runtime, command: ClientCommand) -> std::process::ExitCode {
    let outcome = runtime.block_on(async {
        match command {
            ClientCommand::Create(args) => instances::create(args).await,
            ClientCommand::List(args) => instances::list(args).await,
            ClientCommand::Get(args) => instances::get(args).await,
            ClientCommand::Delete(args) => instances::delete(args).await,
            ClientCommand::Stop(args) => changes::action(args, "stop", "Stopping").await,
            ClientCommand::Start(args) => changes::action(args, "start", "Starting").await,
            ClientCommand::Restart(args) => changes::action(args, "restart", "Restarting").await,
            ClientCommand::Set(args) => changes::set(args).await,
            ClientCommand::Resize(args) => changes::resize(args).await,
            ClientCommand::ResetPassword(args) => changes::reset_password(args).await,
            ClientCommand::Backup(args) => backups::backup(args).await,
            ClientCommand::Backups(args) => backups::list(args).await,
            ClientCommand::VerifyBackup(args) => backups::verify(args).await,
            ClientCommand::Op(OperationCommand::Get(args)) => operations::get(args).await,
            ClientCommand::Op(OperationCommand::Wait(args)) => operations::wait(args).await,
            ClientCommand::Op(OperationCommand::List(args)) => operations::list(args).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            output::note(&format!("toygres: {error}"));
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
