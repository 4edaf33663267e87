//! What the local backend's tests against real clusters share: their result type and the
//! deploy spec of a new instance.

use super::{DeploySpec, PgBinaries};
use crate::model::Expose;
use crate::validation::InstanceName;

/// A test's result.
pub(super) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The spec of instance `name` (incarnation `uid`) of the newest installed version, whose
/// `toygres_admin` gets `admin_password`.
pub(super) fn spec(
    name: &str,
    uid: &str,
    admin_password: &str,
) -> Result<DeploySpec, Box<dyn std::error::Error + Send + Sync>> {
    Ok(DeploySpec {
        name: InstanceName::parse(name)?,
        namespace: None,
        uid: uid.into(),
        postgres_version: PgBinaries::discover(None)
            .newest()
            .ok_or("no PostgreSQL binaries")?,
        storage_gb: 1,
        superuser: crate::roles::ADMIN.into(),
        superuser_verifier: crate::roles::scram_verifier(admin_password),
        expose: Expose::Internal,
        dns_label: None,
    })
}
