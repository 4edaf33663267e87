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
/// pod refused the connection, say) fails the next read or write with its message. Dropping
/// the tunnel closes the forward.
pub struct PodTunnel {
    stream: Box<dyn InstanceIo>,
    port_error: Option<PortError>,
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
            .map(|future| Box::pin(future) as PortError);
        Ok(Self {
            stream: Box::new(stream),
            port_error,
            forwarder: Some(forwarder),
        })
    }

    /// Fails with the API server's message once it reported one for the port.
    fn check_port_error(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(port_error) = self.port_error.as_mut() else {
            return Ok(());
        };
        match port_error.as_mut().poll(cx) {
            Poll::Pending => Ok(()),
            // The forward ended without an error: reads see the end of the stream.
            Poll::Ready(None) => {
                self.port_error = None;
                Ok(())
            }
            Poll::Ready(Some(message)) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("the API server could not forward the port: {message}"),
            )),
        }
    }
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
    use super::classify_upgrade;
    use kube::client::UpgradeConnectionError::ProtocolSwitch;

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
