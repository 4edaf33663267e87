//! A connection to a pod's port through the API server (`pods/<pod>/portforward`, a WebSocket),
//! for a server that runs outside the cluster and cannot resolve cluster DNS names.

use super::errors::classify;
use crate::backend::{BackendError, InstanceIo};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::Portforwarder;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a dropped tunnel may take to close its WebSocket before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What the API server reports on the port's error channel.
type PortError = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// One port of one pod, as a byte stream. A failure the API server reports for the port (the
/// pod refused the connection, say) fails every later read and write with its message. Dropping
/// the tunnel closes the forward.
pub struct PodTunnel {
    stream: Box<dyn InstanceIo>,
    port_error: Option<PortErrorState>,
    forwarder: Option<Portforwarder>,
}

impl std::fmt::Debug for PodTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodTunnel").finish_non_exhaustive()
    }
}

impl PodTunnel {
    /// Opens a forward to `port` of pod `pod` through `pods`.
    pub async fn open(pods: &Api<Pod>, pod: &str, port: u16) -> Result<Self, BackendError> {
        let what = format!("port-forwarding to port {port} of pod {pod}");
        let mut forwarder = pods
            .portforward(pod, &[port])
            .await
            .map_err(|error| classify_upgrade(&what, error))?;
        let stream = forwarder
            .take_stream(port)
            .ok_or_else(|| BackendError::Transient(format!("{what}: no stream for the port")))?;
        let port_error = forwarder
            .take_error(port)
            .map(|future| PortErrorState::Waiting(Box::pin(future)));
        Ok(Self {
            stream: Box::new(stream),
            port_error,
            forwarder: Some(forwarder),
        })
    }

    /// A tunnel from its parts (tests drive it over an in-memory stream).
    #[cfg(test)]
    pub(crate) fn from_parts(stream: Box<dyn InstanceIo>, port_error: Option<PortError>) -> Self {
        Self {
            stream,
            port_error: port_error.map(PortErrorState::Waiting),
            forwarder: None,
        }
    }

    /// Fails with the API server's message once it reported one for the port, and with the
    /// same message every time after: the finished future is never polled again.
    fn check_port_error(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(port_error) = self.port_error.as_mut() else {
            return Ok(());
        };
        let message = match port_error {
            PortErrorState::Reported(message) => message.clone(),
            PortErrorState::Waiting(future) => match future.as_mut().poll(cx) {
                Poll::Pending => return Ok(()),
                // The forward ended without an error: reads see the end of the stream.
                Poll::Ready(None) => {
                    self.port_error = None;
                    return Ok(());
                }
                Poll::Ready(Some(message)) => {
                    *port_error = PortErrorState::Reported(message.clone());
                    message
                }
            },
        };
        Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("the API server could not forward the port: {message}"),
        ))
    }
}

/// The port's error channel: still waiting, or the message it reported.
enum PortErrorState {
    /// Not resolved yet.
    Waiting(PortError),
    /// Resolved with this message; every later read and write fails with it.
    Reported(String),
}

/// A refused upgrade carries only its status: 403 means the Role lacks `pods/portforward`, 404
/// that the pod is gone; anything else may pass on a retry.
fn classify_upgrade(what: &str, error: kube::Error) -> BackendError {
    use kube::client::UpgradeConnectionError::ProtocolSwitch;
    match &error {
        kube::Error::UpgradeConnection(ProtocolSwitch(status)) if status.as_u16() == 403 => {
            BackendError::Permanent(format!(
                "{what}: forbidden ({status}); the server's Role must allow get and create on \
                 pods/portforward"
            ))
        }
        kube::Error::UpgradeConnection(ProtocolSwitch(status)) => {
            BackendError::Transient(format!("{what}: the API server answered {status}"))
        }
        _ => classify(what, error),
    }
}

impl AsyncRead for PodTunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_port_error(cx)?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PodTunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_port_error(cx)?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for PodTunnel {
    fn drop(&mut self) {
        // Dropping the stream (after this) lets the forwarder close the WebSocket; cut it if
        // the API server does not finish the close in time.
        let Some(forwarder) = self.forwarder.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(CLOSE_GRACE).await;
                    forwarder.abort();
                });
            }
            Err(_) => forwarder.abort(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PodTunnel, PortError, classify_upgrade};
    use kube::client::UpgradeConnectionError::ProtocolSwitch;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_reported_port_error_fails_every_later_read_and_write() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let port_error: PortError = Box::pin(async { Some("connection refused".to_string()) });
        let mut tunnel = PodTunnel::from_parts(Box::new(ours), Some(port_error));
        let mut buf = [0u8; 8];
        for round in 1..=2 {
            let read = tunnel.read(&mut buf).await;
            let written = tunnel.write(b"ping").await;
            for (what, error) in [("read", read.err()), ("write", written.err())] {
                let error = error.map(|error| (error.kind(), error.to_string()));
                assert_eq!(
                    error,
                    Some((
                        std::io::ErrorKind::ConnectionRefused,
                        "the API server could not forward the port: connection refused".into()
                    )),
                    "{what} of round {round}"
                );
            }
        }
    }

    fn refused(status: u16) -> Result<bool, http::status::InvalidStatusCode> {
        let status = http::StatusCode::from_u16(status)?;
        let error = classify_upgrade(
            "forwarding",
            kube::Error::UpgradeConnection(ProtocolSwitch(status)),
        );
        Ok(error.is_retryable())
    }

    #[test]
    fn a_forbidden_forward_is_final_and_others_are_retried()
    -> Result<(), http::status::InvalidStatusCode> {
        assert!(
            !refused(403)?,
            "the Role lacks pods/portforward: no retry fixes it"
        );
        assert!(refused(404)?, "the pod may not exist yet");
        assert!(refused(500)?);
        assert!(refused(503)?);
        Ok(())
    }
}
