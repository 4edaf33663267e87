//! Where a new instance goes: the namespace its create names (or the backend's default),
//! checked by the backend before anything is written anywhere.

use super::{ControlPlane, ServiceError};

impl ControlPlane {
    /// The namespace a create goes into: `requested`, or the backend's default, once the
    /// backend says a new instance may go there (allowed, existing, permitted).
    pub(super) async fn placement(&self, requested: Option<&str>) -> Result<String, ServiceError> {
        let namespace = requested
            .unwrap_or_else(|| self.backend.default_namespace())
            .to_string();
        self.backend.check_placement(&namespace).await?;
        Ok(namespace)
    }
}
