//! `toygres-node-agent`: the test node agent (kubelet and cloud controller of a testbed made by
//! `scripts/kube-testbed.sh`) as a process, for trying the Kubernetes backend by hand.
//!
//! ```text
//! KUBECONFIG=$DIR/admin.kubeconfig toygres-node-agent [--namespace toygres]... [--root DIR]
//!     [--ports 26432-26999] [--finalizer-hold-ms 2000] [--region testbed]
//! ```
//! `--namespace` may be given several times, or with a comma-separated list
//! (`--namespace a,b`): the one agent (one node, one kubelet endpoint) serves the pods, claims
//! and LoadBalancer Services of all of them. Without it, it serves `toygres`.
//!
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
        "unknown argument {0} (see the module docs: --namespace NS[,NS...] (repeatable), --root, --ports, --finalizer-hold-ms, --region)"
    )]
    Unknown(String),
}

/// The namespaces of one `--namespace` value (`a` or `a,b`); `None` when one is empty.
fn namespaces_of(value: &str) -> Option<Vec<String>> {
    let namespaces: Vec<String> = value.split(',').map(|n| n.trim().to_string()).collect();
    (!namespaces.iter().any(String::is_empty)).then_some(namespaces)
}

fn parse(args: impl Iterator<Item = String>) -> Result<AgentConfig, UsageError> {
    let mut config = AgentConfig::new("toygres", PathBuf::from("/tmp/toygres-node-agent"));
    let mut namespaces: Vec<String> = Vec::new();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| UsageError::Missing(flag.clone()));
        let invalid = |value: &str| UsageError::Invalid {
            flag: flag.clone(),
            value: value.to_string(),
        };
        match flag.as_str() {
            "--namespace" => {
                let text = value()?;
                namespaces.extend(namespaces_of(&text).ok_or_else(|| invalid(&text))?);
            }
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
    // Given ones replace the default, each kept once.
    if !namespaces.is_empty() {
        config.namespaces.clear();
        for namespace in &namespaces {
            config = config.with_namespace(namespace);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<AgentConfig, UsageError> {
        parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn namespaces_are_repeated_or_listed() {
        let config = parsed(&[]).map(|config| config.namespaces);
        assert_eq!(config.ok(), Some(vec!["toygres".to_string()]));
        let config = parsed(&["--namespace", "a", "--namespace", "b,c", "--namespace", "a"])
            .map(|config| config.namespaces);
        assert_eq!(
            config.ok(),
            Some(vec!["a".to_string(), "b".to_string(), "c".to_string()])
        );
        assert!(parsed(&["--namespace", "a,,b"]).is_err());
        assert!(parsed(&["--namespace"]).is_err());
    }
}
