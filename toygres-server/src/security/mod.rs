//! What protects the API, decided once at start-up from the settings: the bearer tokens
//! ([`tokens`]), TLS ([`tls`]) and the rule that only a loopback address may be served without a
//! token; and `toygres rotate-key` ([`key_rotation`]), which re-seals stored passwords.

pub mod key_rotation;
pub mod tls;
pub mod tokens;

use crate::http::api::auth::Authentication;
use crate::serve::config::ServeConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tls::TlsError;
use tokens::{ApiTokens, Role, TokenConfigError};
use tokio_rustls::TlsAcceptor;

/// The API's authentication and, when configured, its TLS acceptor.
#[derive(Clone)]
pub struct ApiSecurity {
    /// Which requests need a token.
    pub authentication: Authentication,
    /// Serves HTTPS when set.
    pub tls: Option<TlsAcceptor>,
}

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ApiSecurityError {
    /// `TOYGRES_API_TOKENS` is malformed.
    #[error(transparent)]
    Tokens(#[from] TokenConfigError),
    /// The TLS certificate or key cannot be used.
    #[error("TOYGRES_TLS_CERT/TOYGRES_TLS_KEY: {0}")]
    Tls(#[from] TlsError),
    /// A non-loopback address without tokens.
    #[error(
        "refusing to listen on {0} without authentication: set TOYGRES_API_TOKENS (see docs/security.md), or listen on a loopback address"
    )]
    NoTokensOffLoopback(SocketAddr),
}

impl ApiSecurity {
    /// Reads the tokens and the TLS files of `config` and checks the listen rule; logs what
    /// protects the API (counts of tokens, never tokens).
    pub fn from_config(config: &ServeConfig) -> Result<Self, ApiSecurityError> {
        let tokens = config
            .api_tokens
            .as_ref()
            .map(|raw| ApiTokens::parse(raw.expose()))
            .transpose()?;
        check_listen(config.listen, tokens.is_some())?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        match &tokens {
            None => tracing::warn!(
                listen = %config.listen,
                "no API token configured: the API runs without authentication (loopback only)"
            ),
            Some(tokens) => tracing::info!(
                admin_tokens = tokens.count(Role::Admin),
                readonly_tokens = tokens.count(Role::ReadOnly),
                "the API requires a bearer token"
            ),
        }
        if tls.is_none() && !config.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %config.listen,
                "the API is served without TLS on a non-loopback address: tokens and passwords cross the network in clear; set TOYGRES_TLS_CERT and TOYGRES_TLS_KEY, or terminate TLS in front"
            );
        }
        Ok(Self {
            authentication: match tokens {
                Some(tokens) => Authentication::Tokens(Arc::new(tokens)),
                None => Authentication::Disabled,
            },
            tls,
        })
    }
}

/// Only a loopback address may be served without tokens.
pub fn check_listen(listen: SocketAddr, has_tokens: bool) -> Result<(), ApiSecurityError> {
    if has_tokens || listen.ip().is_loopback() {
        Ok(())
    } else {
        Err(ApiSecurityError::NoTokensOffLoopback(listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_runs_without_tokens() -> Result<(), std::net::AddrParseError> {
        for raw in ["127.0.0.1:8080", "[::1]:8080", "127.1.2.3:80"] {
            assert!(check_listen(raw.parse()?, false).is_ok(), "{raw}");
        }
        for raw in ["0.0.0.0:8080", "[::]:8080", "10.0.0.5:8080"] {
            let listen: SocketAddr = raw.parse()?;
            assert!(
                matches!(check_listen(listen, false), Err(ApiSecurityError::NoTokensOffLoopback(refused)) if refused == listen),
                "{raw}"
            );
            assert!(check_listen(listen, true).is_ok(), "{raw}");
        }
        Ok(())
    }
}
