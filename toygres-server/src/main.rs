//! The `toygres` binary.

use clap::{Parser, Subcommand};
use toygres_server::cli::{self, ClientCommand, exit::EXIT_CODES_HELP};
use toygres_server::security::key_rotation::{self, RotateKeyArgs};
use toygres_server::serve::config::{LogFormat, ServeConfig};
use tracing_subscriber::EnvFilter;

/// Toygres: PostgreSQL instances on demand. `toygres serve` runs the control plane; the other
/// commands talk to a running one over HTTP.
#[derive(Debug, Parser)]
#[command(name = "toygres", version, after_help = EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: REST API, workflow runtime and (by default) an embedded database.
    Serve(Box<ServeConfig>),
    /// Re-seal every stored instance password with a new key (the server must be stopped;
    /// see docs/security.md).
    RotateKey(RotateKeyArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

fn main() -> std::process::ExitCode {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("toygres: ignoring .env: {error}");
    }
    // kube's TLS needs a process-wide rustls provider: ring, installed once.
    toygres_activities::backend::kubernetes::install_crypto_provider();
    let arguments = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("toygres: cannot start the async runtime: {error}");
            return match arguments.command {
                Command::Client(_) => std::process::ExitCode::from(cli::exit::OTHER),
                Command::Serve(_) | Command::RotateKey(_) => std::process::ExitCode::FAILURE,
            };
        }
    };
    let outcome = match arguments.command {
        Command::Serve(config) => {
            init_logging(config.log_format);
            runtime.block_on(toygres_server::serve::serve(*config))
        }
        Command::RotateKey(args) => {
            init_logging(LogFormat::Pretty);
            runtime
                .block_on(key_rotation::rotate(&args))
                .map(|report| print_rotation(&report))
                .map_err(anyhow::Error::from)
        }
        Command::Client(command) => return cli::run(&runtime, command),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("toygres: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Says what `rotate-key` did, and what the operator does next (never the key itself).
fn print_rotation(report: &key_rotation::RotationReport) {
    println!(
        "re-sealed {} password(s) ({} already sealed with the new key); {} monitor(s) restart at the next server start",
        report.resealed, report.already_resealed, report.monitors_restarted
    );
    if report.idempotency_keys_forgotten > 0 {
        println!(
            "forgot {} idempotency key(s): their request hashes were keyed with the old key, so a retry with one is a new request",
            report.idempotency_keys_forgotten
        );
    }
    match &report.key_file {
        Some(path) => println!(
            "the new key is in {}; the previous one is kept next to it in {} for older backups",
            path.display(),
            key_rotation::PREVIOUS_KEY_FILE
        ),
        None => println!(
            "set TOYGRES_SECRET_KEY to the value of TOYGRES_NEW_SECRET_KEY, then start the server"
        ),
    }
}

/// Installs our subscriber before Duroxide tries to install its own.
fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
