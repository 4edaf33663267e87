//! The HTTP client of the CLI: one method per endpoint it uses, JSON bodies kept as the server
//! sent them, and typed errors ([`ClientError`]) that say which server and what went wrong.

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::path::Path;
use std::time::Duration;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take (the server gives up on a request after 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);
/// At most this much of an unreadable body goes into an error message.
const BODY_EXCERPT_CHARS: usize = 200;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `TOYGRES_URL` / `--url` is not an `http://` or `https://` URL.
    #[error("invalid server URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// `TOYGRES_CA_CERT` / `--ca-cert` cannot be read or holds no PEM certificate.
    #[error("CA certificate {path}: {reason}")]
    CaCertificate {
        /// The file as given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// No answer: connection refused, name not resolved, or timed out.
    #[error(
        "cannot reach the server at {url}: {detail} (is it running? set its URL with TOYGRES_URL or --url)"
    )]
    Unreachable {
        /// The URL requested.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiFailure),
    /// The server answered something that is not the expected JSON.
    #[error("unexpected reply from {from}: {detail}")]
    InvalidReply {
        /// The URL or request it answered.
        from: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl ClientError {
    /// Whether the same request may succeed if sent again a little later (unreachable, or
    /// 429/502/503/504): a waiting loop keeps polling through these.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api(failure) => matches!(failure.status, 429 | 502..=504),
            ClientError::InvalidUrl { .. }
            | ClientError::Setup(_)
            | ClientError::CaCertificate { .. }
            | ClientError::InvalidReply { .. } => false,
        }
    }

    /// Whether no answer came at all (as opposed to an error status).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// The `Retry-After` the server sent with the error, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Api(failure) => failure.retry_after,
            _ => None,
        }
    }
}

/// An error answer of the API: `{"error": {"code", "message", ...}}` and its status.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ApiFailure {
    /// HTTP status code.
    pub status: u16,
    /// The API's error code (`not_found`, `name_in_use`, ...), or `http_<status>` when the body
    /// is not an API error.
    pub code: String,
    /// The API's message.
    pub message: String,
    /// The blocking operation, for `operation_in_progress`.
    pub operation_id: Option<String>,
    /// The `Retry-After` header, when sent.
    pub retry_after: Option<Duration>,
}

/// A successful answer: the JSON body as sent and as read, and the `Retry-After` header.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The body exactly as the server sent it (what `-o json` prints).
    pub text: String,
    /// The body, read.
    pub body: Value,
    /// How long the server asks to wait before polling, when it says.
    pub retry_after: Option<Duration>,
}

/// Which instances `GET /instances` lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstanceFilter<'a> {
    /// Only those in this state.
    pub state: Option<&'a str>,
    /// Only those in this namespace.
    pub namespace: Option<&'a str>,
}

/// A client of one Toygres server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl ApiClient {
    /// A client of the server at `url` (`http://` or `https://` with the system's roots),
    /// sending `token` as a bearer token.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        Self::with_ca(url, token, None)
    }

    /// Like [`ApiClient::new`], but an `https://` server's certificate must chain to the PEM
    /// certificates in `ca_cert` (a private CA, or the server's self-signed certificate)
    /// instead of the system's roots.
    pub fn with_ca(
        url: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let base = Url::parse(url).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http:// or https://"));
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("it has no host"));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("toygres-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            builder = builder.tls_certs_only(read_ca_certificates(path)?);
        }
        let http = builder
            .build()
            .map_err(|error| ClientError::Setup(error.to_string()))?;
        Ok(Self {
            http,
            base,
            token: token.filter(|token| !token.is_empty()),
        })
    }

    /// `POST /instances` with `body`.
    pub async fn create_instance(&self, body: &Value) -> Result<Reply, ClientError> {
        let url = self.url(&["instances"], &[]);
        self.send(Method::POST, url, Some(body)).await
    }

    /// `GET /instances`, one page.
    pub async fn list_instances(
        &self,
        filter: InstanceFilter<'_>,
        cursor: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let url = self.url(
            &["instances"],
            &[
                ("state", filter.state),
                ("namespace", filter.namespace),
                ("cursor", cursor),
            ],
        );
        self.send(Method::GET, url, None).await
    }

    /// `GET /instances/{name}`.
    pub async fn get_instance(&self, name: &str) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name], &[]);
        self.send(Method::GET, url, None).await
    }

    /// `DELETE /instances/{name}`, with `final_backup=true` when asked for.
    pub async fn delete_instance(
        &self,
        name: &str,
        final_backup: bool,
    ) -> Result<Reply, ClientError> {
        let url = self.url(
            &["instances", name],
            &[("final_backup", final_backup.then_some("true"))],
        );
        self.send(Method::DELETE, url, None).await
    }

    /// `POST /instances/{name}/backups` with `body`.
    pub async fn take_backup(&self, name: &str, body: &Value) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name, "backups"], &[]);
        self.send(Method::POST, url, Some(body)).await
    }

    /// `GET /instances/{name}/backups`, one page.
    pub async fn list_backups(
        &self,
        name: &str,
        cursor: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name, "backups"], &[("cursor", cursor)]);
        self.send(Method::GET, url, None).await
    }

    /// `POST /instances/{name}/backups/{id}/verify`.
    pub async fn verify_backup(&self, name: &str, id: &str) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name, "backups", id, "verify"], &[]);
        self.send(Method::POST, url, None).await
    }

    /// Every backup of an instance (all pages of `GET /instances/{name}/backups`), newest
    /// first, each as the server sent it.
    pub async fn list_all_backups(&self, name: &str) -> Result<Vec<Box<RawValue>>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let reply = self.list_backups(name, cursor.as_deref()).await?;
            let what = "GET /instances/{name}/backups";
            match next_page(reply, &mut items, cursor.as_deref(), what)? {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// `POST /instances/{name}/{action}` (`stop`, `start`, `restart`) with no body.
    pub async fn instance_action(&self, name: &str, action: &str) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name, action], &[]);
        self.send(Method::POST, url, None).await
    }

    /// `PATCH /instances/{name}` with `body`.
    pub async fn update_instance(&self, name: &str, body: &Value) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name], &[]);
        self.send(Method::PATCH, url, Some(body)).await
    }

    /// `POST /instances/{name}/reset-password` with `body`.
    pub async fn reset_password(&self, name: &str, body: &Value) -> Result<Reply, ClientError> {
        let url = self.url(&["instances", name, "reset-password"], &[]);
        self.send(Method::POST, url, Some(body)).await
    }

    /// `GET /operations/{id}`.
    pub async fn get_operation(&self, id: &str) -> Result<Reply, ClientError> {
        let url = self.url(&["operations", id], &[]);
        self.send(Method::GET, url, None).await
    }

    /// `GET /operations`, one page.
    pub async fn list_operations(
        &self,
        instance: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let url = self.url(
            &["operations"],
            &[("instance", instance), ("cursor", cursor)],
        );
        self.send(Method::GET, url, None).await
    }

    /// Every instance (all pages of `GET /instances`), optionally in one state, each as the
    /// server sent it.
    pub async fn list_all_instances(
        &self,
        filter: InstanceFilter<'_>,
    ) -> Result<Vec<Box<RawValue>>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let reply = self.list_instances(filter, cursor.as_deref()).await?;
            match next_page(reply, &mut items, cursor.as_deref(), "GET /instances")? {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// Every operation (all pages of `GET /operations`), optionally of one instance, each as
    /// the server sent it.
    pub async fn list_all_operations(
        &self,
        instance: Option<&str>,
    ) -> Result<Vec<Box<RawValue>>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let reply = self.list_operations(instance, cursor.as_deref()).await?;
            match next_page(reply, &mut items, cursor.as_deref(), "GET /operations")? {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// The base URL with `segments` appended (each percent-encoded) and the query parameters
    /// that have a value.
    fn url(&self, segments: &[&str], query: &[(&str, Option<&str>)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.set_query(None);
        let present: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(key, value)| value.map(|value| (*key, value)))
            .collect();
        if !present.is_empty() {
            url.query_pairs_mut().extend_pairs(present);
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        let shown = url.to_string();
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| unreachable(&shown, &error))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|error| unreachable(&shown, &error))?;
        if status.is_success() {
            let body = serde_json::from_str(&text).map_err(|error| ClientError::InvalidReply {
                from: shown.clone(),
                detail: format!("HTTP {status} with a body that is not JSON ({error})"),
            })?;
            return Ok(Reply {
                text,
                body,
                retry_after,
            });
        }
        Err(ClientError::Api(api_failure(status, &text, retry_after)))
    }
}

/// The PEM certificates of `path`; at least one.
fn read_ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let failed = |reason: String| ClientError::CaCertificate {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| failed(format!("not PEM certificates ({error})")))?;
    if certificates.is_empty() {
        return Err(failed("no PEM certificate in this file".to_string()));
    }
    Ok(certificates)
}

/// One page of a list, its items kept as the server sent them.
#[derive(Deserialize)]
struct RawPage {
    items: Vec<Box<RawValue>>,
    next_cursor: Option<String>,
}

/// Moves a page's items into `items` and returns the next cursor (none on the last page). A
/// server that hands back the cursor it was given would loop forever: that is an error.
fn next_page(
    reply: Reply,
    items: &mut Vec<Box<RawValue>>,
    cursor: Option<&str>,
    from: &str,
) -> Result<Option<String>, ClientError> {
    let page: RawPage =
        serde_json::from_str(&reply.text).map_err(|error| ClientError::InvalidReply {
            from: from.to_string(),
            detail: format!("not a page: {error}"),
        })?;
    items.extend(page.items);
    match page.next_cursor {
        Some(next) if Some(next.as_str()) == cursor => Err(ClientError::InvalidReply {
            from: from.to_string(),
            detail: "the next page has the same cursor as this one".to_string(),
        }),
        next => Ok(next),
    }
}

/// A transport error as [`ClientError::Unreachable`], with the most useful cause.
fn unreachable(url: &str, error: &reqwest::Error) -> ClientError {
    let mut detail = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(cause) = source {
        deepest = Some(cause.to_string());
        source = cause.source();
    }
    if let Some(cause) = deepest {
        detail = format!("{detail}: {cause}");
    }
    ClientError::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// Reads an error body; anything that is not an API error still becomes an [`ApiFailure`].
fn api_failure(status: StatusCode, text: &str, retry_after: Option<Duration>) -> ApiFailure {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let detail = parsed.as_ref().map(|body| &body["error"]);
    let field = |name: &str| {
        detail
            .and_then(|detail| detail[name].as_str())
            .map(str::to_string)
    };
    let message = field("message").unwrap_or_else(|| {
        let excerpt: String = text.trim().chars().take(BODY_EXCERPT_CHARS).collect();
        if excerpt.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no message")
                .to_string()
        } else {
            excerpt
        }
    });
    ApiFailure {
        status: status.as_u16(),
        code: field("code").unwrap_or_else(|| format!("http_{}", status.as_u16())),
        message,
        operation_id: field("operation_id"),
        retry_after,
    }
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date (a date in the past means now).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(RETRY_AFTER, value);
        }
        headers
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after(&headers("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&headers(" 0 ")), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() -> Result<(), ClientError> {
        let client = ApiClient::new("http://example.test:8080/toygres/", None)?;
        assert_eq!(
            client
                .url(&["operations", "op_a/../b?c"], &[("instance", Some("x y"))])
                .as_str(),
            "http://example.test:8080/toygres/operations/op_a%2F..%2Fb%3Fc?instance=x+y"
        );
        let client = ApiClient::new("http://127.0.0.1:8080", None)?;
        assert_eq!(
            client
                .url(&["instances"], &[("state", None), ("cursor", None)])
                .as_str(),
            "http://127.0.0.1:8080/instances"
        );
        Ok(())
    }

    #[test]
    fn only_http_and_https_urls() -> Result<(), ClientError> {
        ApiClient::new("https://example.test:8443/toygres", None)?;
        for url in ["ftp://x", "not a url", "unix:/tmp/s"] {
            assert!(
                matches!(
                    ApiClient::new(url, None),
                    Err(ClientError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_ca_file_must_hold_certificates() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n")?;
        for path in [&missing, &empty] {
            assert!(matches!(
                ApiClient::with_ca("https://example.test", None, Some(path)),
                Err(ClientError::CaCertificate { .. })
            ));
        }
        let generated = rcgen::generate_simple_self_signed(vec!["example.test".to_string()])?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, generated.cert.pem())?;
        ApiClient::with_ca("https://example.test", None, Some(&ca))?;
        Ok(())
    }

    #[test]
    fn pages_chain_until_the_last() -> Result<(), ClientError> {
        let page = |text: &str| Reply {
            text: text.to_string(),
            body: Value::Null,
            retry_after: None,
        };
        let mut items = Vec::new();
        let next = next_page(
            page(r#"{"items": [{"b": 1, "a": 2}, 2], "next_cursor": "c1"}"#),
            &mut items,
            None,
            "t",
        )?;
        assert_eq!(next.as_deref(), Some("c1"));
        let last = next_page(
            page(r#"{"items": [3], "next_cursor": null}"#),
            &mut items,
            Some("c1"),
            "t",
        )?;
        assert_eq!(last, None);
        let texts: Vec<&str> = items.iter().map(|item| item.get()).collect();
        assert_eq!(texts, vec![r#"{"b": 1, "a": 2}"#, "2", "3"]);
        assert!(
            next_page(
                page(r#"{"items": [], "next_cursor": "c1"}"#),
                &mut items,
                Some("c1"),
                "t"
            )
            .is_err()
        );
        assert!(next_page(page("[]"), &mut items, None, "t").is_err());
        Ok(())
    }

    #[test]
    fn error_bodies_become_failures() {
        let failure = api_failure(
            StatusCode::CONFLICT,
            r#"{"error":{"code":"operation_in_progress","message":"operation op_1 is in progress","operation_id":"op_1"}}"#,
            None,
        );
        assert_eq!(failure.code, "operation_in_progress");
        assert_eq!(failure.operation_id.as_deref(), Some("op_1"));
        assert_eq!(
            failure.to_string(),
            "operation op_1 is in progress (operation_in_progress, HTTP 409)"
        );
        let failure = api_failure(StatusCode::BAD_GATEWAY, "<html>proxy</html>", None);
        assert_eq!(failure.code, "http_502");
        assert_eq!(failure.message, "<html>proxy</html>");
        let failure = api_failure(StatusCode::SERVICE_UNAVAILABLE, "", None);
        assert_eq!(failure.message, "Service Unavailable");
    }
}
