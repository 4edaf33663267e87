//! Waiting for an operation: polls `GET /operations/{id}` until it has ended, as often as the
//! server's `Retry-After` says, shows progress on stderr, rides out a short outage of a server
//! it has reached before (a restart resumes the operation), and stops at Ctrl-C.

use super::client::ApiClient;
use super::exit::CliError;
use super::model::{OperationView, parse};
use super::progress::Progress;
use std::time::Duration;
use tokio::time::Instant;

/// Time between polls when the server gave no `Retry-After`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Polls are never closer than this, whatever `Retry-After` says.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Polls are never further apart than this, whatever `Retry-After` says.
const MAX_INTERVAL: Duration = Duration::from_secs(30);
/// How long the server may stay unreachable (or answer 429/502/503/504) before waiting gives up.
pub const OUTAGE_LIMIT: Duration = Duration::from_secs(60);

/// An operation that has ended: the server's JSON and what the CLI reads of it.
#[derive(Debug, Clone)]
pub struct Finished {
    /// `GET /operations/{id}` as the server sent it.
    pub text: String,
    /// The same, read.
    pub operation: OperationView,
}

impl Finished {
    /// `Ok` when the operation succeeded, else the error that makes the CLI exit 1.
    pub fn into_result(self) -> Result<Finished, CliError> {
        if self.operation.succeeded() {
            return Ok(self);
        }
        let operation = &self.operation;
        let (code, message) = match &operation.error {
            Some(error) => (error.code.clone(), error.message.clone()),
            None => (
                operation.status.clone(),
                "no error was recorded".to_string(),
            ),
        };
        Err(CliError::OperationFailed {
            id: operation.id.clone(),
            status: operation.status.clone(),
            step: operation.step.clone(),
            code,
            message,
        })
    }
}

/// The `202 Accepted` that started an operation: where waiting for it starts.
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a> {
    /// The operation as the `202` showed it.
    pub operation: &'a OperationView,
    /// The `Retry-After` of the `202`: the first poll waits that long.
    pub retry_after: Option<Duration>,
}

/// Waits until operation `id` has ended, whether it succeeded or not. With the `202` that
/// started it, progress starts from there and the first poll honours its `Retry-After`;
/// without, the first poll is immediate.
pub async fn wait_for_operation(
    client: &ApiClient,
    id: &str,
    accepted: Option<Accepted<'_>>,
) -> Result<Finished, CliError> {
    let mut progress = Progress::on_stderr();
    let first_delay = match accepted {
        Some(accepted) => {
            progress.update(accepted.operation);
            Some(accepted.retry_after.unwrap_or(DEFAULT_INTERVAL))
        }
        None => None,
    };
    let outcome = tokio::select! {
        outcome = poll(client, id, first_delay, &mut progress) => outcome,
        () = interrupted() => Err(CliError::Interrupted(id.to_string())),
    };
    match &outcome {
        Ok(finished) => progress.finish(&finished.operation),
        Err(_) => progress.abandon(),
    }
    outcome
}

async fn poll(
    client: &ApiClient,
    id: &str,
    first_delay: Option<Duration>,
    progress: &mut Progress,
) -> Result<Finished, CliError> {
    let mut interval = first_delay.unwrap_or(DEFAULT_INTERVAL);
    if first_delay.is_some() {
        tokio::time::sleep(bounded(interval)).await;
    }
    // A server that never answered is not having an outage: it is not there (an error status,
    // even 503, is an answer).
    let mut reached = first_delay.is_some();
    let mut outage_since: Option<Instant> = None;
    loop {
        let delay = match client.get_operation(id).await {
            Ok(reply) => {
                reached = true;
                outage_since = None;
                if let Some(after) = reply.retry_after {
                    interval = after;
                }
                let operation: OperationView = parse(&reply.body, &format!("operation {id}"))?;
                progress.update(&operation);
                if operation.is_finished() {
                    return Ok(Finished {
                        text: reply.text,
                        operation,
                    });
                }
                interval
            }
            Err(error) if error.is_transient() && (reached || !error.is_unreachable()) => {
                let since = match outage_since {
                    Some(since) => since,
                    None => {
                        progress.say(&format!("{error}; still waiting"));
                        *outage_since.insert(Instant::now())
                    }
                };
                if since.elapsed() > OUTAGE_LIMIT {
                    return Err(error.into());
                }
                error.retry_after().unwrap_or(interval)
            }
            Err(error) => return Err(error.into()),
        };
        tokio::time::sleep(bounded(delay)).await;
    }
}

/// A poll interval within [`MIN_INTERVAL`, `MAX_INTERVAL`].
fn bounded(interval: Duration) -> Duration {
    interval.clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Completes at Ctrl-C; never, when the signal cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::exit;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn retry_after_is_bounded() {
        assert_eq!(bounded(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(bounded(Duration::ZERO), MIN_INTERVAL);
        assert_eq!(bounded(Duration::from_secs(3600)), MAX_INTERVAL);
    }

    fn operation(status: &str, done: u32) -> String {
        format!(
            r#"{{"id":"op_1","kind":"create","instance":"db","status":"{status}","step":"deploy","progress":{{"done":{done},"total":5}},"error":null,"result":null,"created_at":"x","started_at":null,"finished_at":null}}"#
        )
    }

    /// A fake server: `/operations/op_1` answers 503 (Retry-After: 2), then running
    /// (Retry-After: 2), then succeeded; it insists on the bearer token.
    async fn fake_server(calls: Arc<AtomicUsize>) -> Result<String, std::io::Error> {
        let app = Router::new().route(
            "/operations/op_1",
            get(move |headers: HeaderMap| {
                let calls = calls.clone();
                async move {
                    if headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        != Some("Bearer t0ken")
                    {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(header::RETRY_AFTER, "0")],
                            String::new(),
                        )
                            .into_response();
                    }
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0 => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::RETRY_AFTER, "2")],
                            r#"{"error":{"code":"unavailable","message":"starting"}}"#.to_string(),
                        )
                            .into_response(),
                        1 => (
                            StatusCode::OK,
                            [(header::RETRY_AFTER, "2")],
                            operation("running", 1),
                        )
                            .into_response(),
                        _ => (
                            StatusCode::OK,
                            [(header::RETRY_AFTER, "2")],
                            operation("succeeded", 5),
                        )
                            .into_response(),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(format!("http://{address}"))
    }

    #[tokio::test]
    async fn polls_as_the_retry_after_header_says() -> TestResult {
        let calls = Arc::new(AtomicUsize::new(0));
        let url = fake_server(calls.clone()).await?;
        let client = ApiClient::new(&url, Some("t0ken".into()))?;
        let started = Instant::now();
        let finished = wait_for_operation(&client, "op_1", None).await?;
        assert!(finished.operation.succeeded());
        assert_eq!(finished.text, operation("succeeded", 5));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits of Retry-After: 2 s, where the default would have been 1 s each.
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_operation_or_a_refused_token_ends_the_wait_at_once() -> TestResult {
        let calls = Arc::new(AtomicUsize::new(0));
        let url = fake_server(calls.clone()).await?;
        let client = ApiClient::new(&url, Some("t0ken".into()))?;
        let missing = wait_for_operation(&client, "op_2", None).await;
        assert!(
            matches!(&missing, Err(error) if error.exit_code() == exit::NOT_FOUND),
            "{missing:?}"
        );
        let client = ApiClient::new(&url, Some("wrong".into()))?;
        let refused = wait_for_operation(&client, "op_1", None).await;
        assert!(
            matches!(&refused, Err(error) if error.exit_code() == exit::AUTH),
            "{refused:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        Ok(())
    }
}
