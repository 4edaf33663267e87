//! The parameter catalogs of the PostgreSQL versions the control plane serves, read from the
//! servers themselves (`pg_settings`) the first time a version is needed, then kept in memory.

use super::{ControlPlane, ServiceError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toygres_activities::backend::Endpoint;
use toygres_activities::metadata::InstanceRecord;
use toygres_activities::parameters::{Catalog, ParameterError, catalog};
use toygres_activities::roles::{ADMIN, AdminTarget};
use toygres_activities::seal::SealedSecret;
use toygres_activities::validation::InstanceName;

/// How long reading a catalog from an instance may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Catalogs by major version.
#[derive(Debug, Clone, Default)]
pub struct Catalogs {
    by_version: Arc<Mutex<HashMap<String, Arc<Catalog>>>>,
}

/// A refused parameter as the API's 422 on `parameters.<name>`.
pub fn invalid_parameter(error: ParameterError) -> ServiceError {
    ServiceError::invalid(format!("parameters.{}", error.name()), error.to_string())
}

impl Catalogs {
    fn cached(&self, version: &str) -> Option<Arc<Catalog>> {
        self.by_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(version)
            .cloned()
    }

    fn keep(&self, version: &str, catalog: Catalog) -> Arc<Catalog> {
        let catalog = Arc::new(catalog);
        self.by_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(version.to_string(), catalog.clone());
        catalog
    }

    /// The catalog of `instance`'s version, read from the instance when not known yet.
    pub async fn for_instance(
        &self,
        plane: &ControlPlane,
        instance: &InstanceRecord,
    ) -> Result<Arc<Catalog>, ServiceError> {
        if let Some(catalog) = self.cached(&instance.postgres_version) {
            return Ok(catalog);
        }
        let catalog = read_from(plane, instance).await?;
        Ok(self.keep(&instance.postgres_version, catalog))
    }

    /// The catalog of major `version`: from a running instance of it, or from the control-plane
    /// database when it runs that version.
    pub async fn for_version(
        &self,
        plane: &ControlPlane,
        version: &str,
    ) -> Result<Arc<Catalog>, ServiceError> {
        if let Some(catalog) = self.cached(version) {
            return Ok(catalog);
        }
        if let Some(instance) = plane.metadata.running_instance_of_version(version).await? {
            return self.for_instance(plane, &instance).await;
        }
        let (own_version, catalog) = plane.metadata.own_settings_catalog().await?;
        if own_version == version {
            return Ok(self.keep(version, catalog));
        }
        Err(ServiceError::Unavailable(format!(
            "no running PostgreSQL {version} to check parameters against yet: create the \
             instance without parameters, then set them with PATCH /instances/{{name}}"
        )))
    }
}

/// Reads the catalog from `instance`'s `pg_settings`, as its `toygres_admin`.
async fn read_from(
    plane: &ControlPlane,
    instance: &InstanceRecord,
) -> Result<Catalog, ServiceError> {
    let unavailable = |why: String| {
        ServiceError::Unavailable(format!(
            "could not read the parameters of PostgreSQL {} from {}: {why}; try again",
            instance.postgres_version, instance.name
        ))
    };
    let (Some(host), Some(port), Some(sealed)) = (
        instance.host.clone(),
        instance.port.and_then(|port| u16::try_from(port).ok()),
        instance.sealed_admin_password.clone(),
    ) else {
        return Err(unavailable(
            "it has no endpoint or control-plane role yet".into(),
        ));
    };
    let password = plane
        .secret_key
        .open(&SealedSecret::from_stored(sealed))
        .map_err(|error| ServiceError::Internal(error.to_string()))?;
    let target = AdminTarget {
        name: InstanceName::parse(&instance.name)
            .map_err(|error| ServiceError::Internal(error.to_string()))?,
        namespace: instance.namespace.clone(),
        endpoint: Endpoint { host, port },
        user: ADMIN.to_string(),
        password,
    };
    catalog::read(plane.backend.as_ref(), &target, READ_TIMEOUT)
        .await
        .map_err(|error| unavailable(error.to_string()))
}
