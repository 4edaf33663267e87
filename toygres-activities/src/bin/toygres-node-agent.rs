//! `toygres-node-agent`: the test node agent (kubelet and cloud controller of a testbed made by
//! `scripts/kube-testbed.sh`) as a process, for trying the Kubernetes backend by hand.
//!
//! ```text
//! KUBECONFIG=$DIR/admin.kubeconfig toygres-node-agent [--namespace toygres] [--root DIR]
//!     [--ports 26432-26999] [--finalizer-hold-ms 2000] [--region testbed]
//! ```
//! It runs until interrupted, then stops every PostgreSQL it started.

use std::path::PathBuf;
use std::time::Duration;
use toygres_activities::testkit::node_agent::{AgentConfig, NodeAgent};

/// A command-line mistake.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("{0} needs a value")]
    Missing(String),
    #[error("{flag}: {value:?} is not valid")]
    Invalid { flag: String, value: String },
    #[error(
        "unknown argument {0} (see the module docs: --namespace, --root, --ports, --finalizer-hold-ms, --region)"
    )]
    Unknown(String),
}

fn parse(args: impl Iterator<Item = String>) -> Result<AgentConfig, UsageError> {
    let mut config = AgentConfig::new("toygres", PathBuf::from("/tmp/toygres-node-agent"));
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| UsageError::Missing(flag.clone()));
        let invalid = |value: &str| UsageError::Invalid {
            flag: flag.clone(),
            value: value.to_string(),
        };
        match flag.as_str() {
            "--namespace" => config.namespace = value()?,
            "--root" => config.root = PathBuf::from(value()?),
            "--region" => config.region = value()?,
            "--ports" => {
                let text = value()?;
                let (low, high) = text.split_once('-').ok_or_else(|| invalid(&text))?;
                let low: u16 = low.parse().map_err(|_| invalid(&text))?;
                let high: u16 = high.parse().map_err(|_| invalid(&text))?;
                config.ports = low..=high;
            }
            "--finalizer-hold-ms" => {
                let text = value()?;
                config.finalizer_hold =
                    Duration::from_millis(text.parse().map_err(|_| invalid(&text))?);
            }
            _ => return Err(UsageError::Unknown(flag)),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("toygres-node-agent: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    toygres_activities::backend::kubernetes::install_crypto_provider();
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("toygres-node-agent: no cluster (set KUBECONFIG): {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let agent = match NodeAgent::start(client, config).await {
        Ok(agent) => agent,
        Err(error) => {
            eprintln!("toygres-node-agent: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!(
        "toygres-node-agent: node registered, kubelet endpoint on 127.0.0.1:{}",
        agent.kubelet_port()
    );
    let _ = tokio::signal::ctrl_c().await;
    agent.shutdown().await;
    std::process::ExitCode::SUCCESS
}
