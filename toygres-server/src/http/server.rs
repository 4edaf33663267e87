//! Serving the router over HTTP/1.1, in plain TCP or TLS: one task per connection, bounded
//! request heads (size, count, read time), TLS handshakes off the accept loop with a deadline,
//! and a graceful shutdown that lets requests in progress finish.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Largest request head (request line and headers); larger gets `431` and the connection closes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most headers in one request; more gets `431`.
pub const MAX_HEADERS: usize = 64;
/// How long a client may take to send a request head, and how long an idle keep-alive
/// connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to complete a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections with requests in progress.
const DRAIN_LIMIT: Duration = Duration::from_secs(35);

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// stops accepting and waits for open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, app, stop).await,
                Some(acceptor) => match handshake(&acceptor, stream, peer).await {
                    Some(stream) => serve_connection(stream, app, stop).await,
                    None => drop(stop),
                },
            }
        });
    }
    drop(listener);
    drop(stop_rx);
    // Every connection task holds a receiver: `closed` resolves once the last one ends.
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN_LIMIT, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN_LIMIT:?}; closing them");
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

async fn serve_connection<S>(stream: S, app: Router, mut stop: watch::Receiver<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        outcome = connection.as_mut() => {
            if let Err(error) = outcome {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error during shutdown");
    }
}
