//! What a server without tokens answers. It has no authentication, so two browser attacks must
//! be stopped here:
//! - DNS rebinding: a page of `evil.example` whose name the attacker now resolves to 127.0.0.1
//!   reads and changes everything, same-origin as far as the browser knows. Its requests say
//!   `Host: evil.example`.
//! - Cross-site requests: a page of any site sends a form or a `text/plain` POST to
//!   `http://127.0.0.1:8080` (no preflight needed). Its requests say `Origin: http://evil.example`.
//!
//! [`require_loopback`] answers `403 forbidden` to a request whose `Host` (and absolute-form
//! target) is not a loopback name or address (`localhost`, `127.0.0.0/8`, `[::1]`, any port),
//! or whose `Origin`, when present, is not the server's own: its scheme, a loopback host, and
//! the port the request was addressed to (a forwarder such as `ssh -L` may change the port, never
//! the name). Subdomains of `localhost` are not accepted: resolvers are not bound to keep them on
//! loopback, and nobody needs them here. With tokens the layer is not installed: a page has no
//! token to send.

use super::auth::Authentication;
use super::error::{ApiError, quoted};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The scheme the API is served with: part of the server's own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The rule of a server without tokens: requests addressed to loopback, from its own origin.
#[derive(Debug, Clone)]
pub struct LoopbackOnly {
    scheme: Scheme,
}

impl LoopbackOnly {
    /// The rule a server with `authentication`, served over `scheme`, needs: none with tokens.
    pub fn for_server(authentication: &Authentication, scheme: Scheme) -> Option<Self> {
        match authentication {
            Authentication::Disabled => Some(Self { scheme }),
            Authentication::Tokens(_) => None,
        }
    }

    /// `Ok` when the request is addressed to loopback and, if it names an origin, comes from
    /// this server's own.
    fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let addressed = addressed(uri, headers)?;
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (None, _) => return Ok(()),
            (Some(_), Some(_)) => return Err(Refusal::SeveralOrigins),
            (Some(origin), None) => origin,
        };
        let own = format!("{}://{}", self.scheme.as_str(), addressed);
        if origin.as_bytes() == b"null" {
            return Err(Refusal::NullOrigin { own });
        }
        let default_port = self.scheme.default_port();
        let is_own = origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(self.scheme.as_str()))
            .and_then(|(_, authority)| Authority::parse(authority))
            .is_some_and(|origin| {
                origin.is_loopback()
                    && origin.port.unwrap_or(default_port) == addressed.port.unwrap_or(default_port)
            });
        if is_own {
            Ok(())
        } else {
            Err(Refusal::ForeignOrigin {
                origin: quoted(origin.as_bytes()),
                own,
            })
        }
    }
}

/// The authority the request is addressed to: its one `Host`, which must be loopback, and an
/// absolute-form target's authority (which then counts, RFC 9112 3.2.2), which must be too.
fn addressed(uri: &Uri, headers: &HeaderMap) -> Result<Authority, Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => return Err(Refusal::NoHost),
        (Some(_), Some(_)) => return Err(Refusal::SeveralHosts),
        (Some(host), None) => host,
    };
    let host = host
        .to_str()
        .ok()
        .and_then(Authority::parse)
        .filter(Authority::is_loopback)
        .ok_or_else(|| Refusal::ForeignHost(quoted(host.as_bytes())))?;
    match uri.authority() {
        None => Ok(host),
        Some(target) => Authority::parse(target.as_str())
            .filter(Authority::is_loopback)
            .ok_or_else(|| Refusal::ForeignTarget(quoted(target.as_str().as_bytes()))),
    }
}

/// Middleware: answers `403` to what [`LoopbackOnly`] refuses (a no-op without the rule, that
/// is with tokens); logs and counts each refusal (`toygres_http_cross_site_refusals_total`).
pub async fn require_loopback(
    State(rule): State<Option<LoopbackOnly>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(rule) = rule else {
        return next.run(request).await;
    };
    match rule.check(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::info!(reason = %refusal, "request refused");
            metrics::counter!("toygres_http_cross_site_refusals_total", "reason" => refusal.header())
                .increment(1);
            ApiError::Forbidden(refusal.to_string()).into_response()
        }
    }
}

const LOOPBACK_ONLY: &str = "without API tokens the server answers only requests addressed to localhost, 127.0.0.0/8 or [::1] (DNS rebinding protection); set TOYGRES_API_TOKENS to serve other names";
const OWN_ORIGIN_ONLY: &str = "without API tokens the server refuses requests that pages of other origins send (cross-site request protection); clients that are not browsers need not send Origin";

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the request has no Host header: {LOOPBACK_ONLY}")]
    NoHost,
    #[error("send exactly one Host header: {LOOPBACK_ONLY}")]
    SeveralHosts,
    #[error("Host '{0}' is not a loopback name or address: {LOOPBACK_ONLY}")]
    ForeignHost(String),
    #[error("the request target names '{0}', not a loopback name or address: {LOOPBACK_ONLY}")]
    ForeignTarget(String),
    #[error("send at most one Origin header: {OWN_ORIGIN_ONLY}")]
    SeveralOrigins,
    #[error(
        "Origin 'null' (a sandboxed frame, a local file or a redirect) is not this server's own origin ({own}): {OWN_ORIGIN_ONLY}"
    )]
    NullOrigin { own: String },
    #[error("Origin '{origin}' is not this server's own origin ({own}): {OWN_ORIGIN_ONLY}")]
    ForeignOrigin { origin: String, own: String },
}

impl Refusal {
    /// The header refused: the `reason` label of the refusal counter.
    fn header(&self) -> &'static str {
        match self {
            Refusal::NoHost
            | Refusal::SeveralHosts
            | Refusal::ForeignHost(_)
            | Refusal::ForeignTarget(_) => "host",
            Refusal::SeveralOrigins
            | Refusal::NullOrigin { .. }
            | Refusal::ForeignOrigin { .. } => "origin",
        }
    }
}

/// `host[:port]` as a request names it; the host lowercased, an IPv6 address in brackets.
#[derive(Debug, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port` (an empty port is the default one);
    /// `None` for anything else (user info, paths, a port that is not a number).
    fn parse(raw: &str) -> Option<Self> {
        let (host, rest) = match raw.strip_prefix('[') {
            Some(bracketed) => {
                let end = bracketed.find(']')?;
                raw.split_at(end + 2)
            }
            None => raw.split_at(raw.find(':').unwrap_or(raw.len())),
        };
        let port = match rest {
            "" | ":" => None,
            _ => {
                let digits = rest.strip_prefix(':')?;
                if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                    return None;
                }
                Some(digits.parse().ok()?)
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `localhost`, an address of 127.0.0.0/8, `[::1]` or `[::ffff:127.x.y.z]`.
    fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        match self
            .host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
        {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok_and(|ip| {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
            }),
            None => self
                .host
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback()),
        }
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(formatter, "{}:{port}", self.host),
            None => formatter.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const RULE: LoopbackOnly = LoopbackOnly {
        scheme: Scheme::Http,
    };

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.append(name.clone(), value);
            }
        }
        headers
    }

    fn host_allowed(host: &str) -> bool {
        RULE.check(
            &Uri::from_static("/instances"),
            &headers(&[(header::HOST, host)]),
        )
        .is_ok()
    }

    fn origin_allowed(host: &str, origin: &str) -> bool {
        RULE.check(
            &Uri::from_static("/instances"),
            &headers(&[(header::HOST, host), (header::ORIGIN, origin)]),
        )
        .is_ok()
    }

    #[test]
    fn loopback_names_and_addresses_with_any_port() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost:",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.255.0.9:1",
            "[::1]",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert!(host_allowed(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for host in [
            "",
            ":8080",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "app.localhost",
            "localhost.",
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0.0.0.0",
            "10.0.0.1:8080",
            "[::]",
            "[fe80::1]",
            "[::ffff:10.0.0.1]",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:80x",
            "127.0.0.1:99999",
            "127.0.0.1:+80",
            "127.0.0.1:8080@evil.example",
            "user@127.0.0.1",
            "127.0.0.1/path",
        ] {
            assert!(!host_allowed(host), "{host}");
        }
        assert!(matches!(
            RULE.check(&Uri::from_static("/"), &HeaderMap::new()),
            Err(Refusal::NoHost)
        ));
        let twice = headers(&[(header::HOST, "127.0.0.1"), (header::HOST, "127.0.0.1")]);
        assert!(matches!(
            RULE.check(&Uri::from_static("/"), &twice),
            Err(Refusal::SeveralHosts)
        ));
    }

    #[test]
    fn an_absolute_target_must_be_loopback_too() {
        let host = headers(&[(header::HOST, "127.0.0.1:8080")]);
        assert!(
            RULE.check(&Uri::from_static("http://localhost:8080/instances"), &host)
                .is_ok()
        );
        assert!(matches!(
            RULE.check(&Uri::from_static("http://evil.example/instances"), &host),
            Err(Refusal::ForeignTarget(target)) if target == "evil.example"
        ));
        assert!(
            RULE.check(&Uri::from_static("http://u@127.0.0.1/instances"), &host)
                .is_err()
        );
    }

    #[test]
    fn only_the_own_origin() {
        for (host, origin) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("127.0.0.1:8080", "http://localhost:8080"),
            ("localhost:8080", "HTTP://LocalHost:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
            ("localhost", "http://localhost"),
            ("localhost:80", "http://localhost"),
            ("localhost", "http://localhost:80"),
            // A forwarder's port: the browser addressed it, so it is the page's own origin.
            ("localhost:9999", "http://localhost:9999"),
        ] {
            assert!(origin_allowed(host, origin), "{host} {origin}");
        }
        for (host, origin) in [
            ("127.0.0.1:8080", "null"),
            ("127.0.0.1:8080", "http://evil.example"),
            ("127.0.0.1:8080", "http://evil.example:8080"),
            ("127.0.0.1:8080", "http://127.0.0.1:8081"),
            ("127.0.0.1:8080", "http://127.0.0.1"),
            ("127.0.0.1:8080", "https://127.0.0.1:8080"),
            ("127.0.0.1:8080", "file://"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080.evil.example"),
            ("127.0.0.1:8080", "http://app.localhost:8080"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", ""),
        ] {
            assert!(!origin_allowed(host, origin), "{host} {origin}");
        }
        let twice = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ]);
        assert!(matches!(
            RULE.check(&Uri::from_static("/"), &twice),
            Err(Refusal::SeveralOrigins)
        ));
        let https = LoopbackOnly {
            scheme: Scheme::Https,
        };
        let own = headers(&[
            (header::HOST, "localhost"),
            (header::ORIGIN, "https://localhost:443"),
        ]);
        assert!(https.check(&Uri::from_static("/"), &own).is_ok());
    }

    #[test]
    fn refusals_name_the_header_and_the_way_out() {
        let refusal = RULE
            .check(
                &Uri::from_static("/"),
                &headers(&[(header::HOST, "evil.example")]),
            )
            .err()
            .map(|refusal| (refusal.header(), refusal.to_string()));
        assert!(
            matches!(&refusal, Some(("host", message)) if message.starts_with("Host 'evil.example' is not a loopback name") && message.contains("DNS rebinding") && message.contains("TOYGRES_API_TOKENS")),
            "{refusal:?}"
        );
        let refusal = RULE
            .check(
                &Uri::from_static("/"),
                &headers(&[
                    (header::HOST, "127.0.0.1:8080"),
                    (header::ORIGIN, "http://evil.example"),
                ]),
            )
            .err()
            .map(|refusal| (refusal.header(), refusal.to_string()));
        assert!(
            matches!(&refusal, Some(("origin", message)) if message.starts_with("Origin 'http://evil.example' is not this server's own origin (http://127.0.0.1:8080)")),
            "{refusal:?}"
        );
    }

    #[test]
    fn tokens_turn_the_rule_off() -> Result<(), crate::security::tokens::TokenConfigError> {
        let tokens = crate::security::tokens::ApiTokens::parse("admin:admin-token-0123456789")?;
        let with_tokens = Authentication::Tokens(std::sync::Arc::new(tokens));
        assert!(LoopbackOnly::for_server(&with_tokens, Scheme::Http).is_none());
        assert!(LoopbackOnly::for_server(&Authentication::Disabled, Scheme::Http).is_some());
        Ok(())
    }
}
