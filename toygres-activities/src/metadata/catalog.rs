//! Where the server finds a running PostgreSQL of a version to read its settings catalog from:
//! a running instance of that version, or the control-plane database itself.

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};
use crate::parameters::{Catalog, catalog};

impl MetadataStore {
    /// A running, idle instance of major `version` that has the control plane's roles.
    pub async fn running_instance_of_version(
        &self,
        version: &str,
    ) -> Result<Option<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT * FROM instances WHERE state = 'running' AND postgres_version = $1 \
             AND roles_version >= $2 AND active_operation_id IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(version)
        .bind(crate::roles::ROLES_VERSION)
        .fetch_optional(self.pool())
        .await?)
    }

    /// The major version of the control-plane database and its settings catalog (as the
    /// metadata role sees it).
    pub async fn own_settings_catalog(&self) -> Result<(String, Catalog), MetadataError> {
        let major: i32 =
            sqlx::query_scalar("SELECT current_setting('server_version_num')::int / 10000")
                .fetch_one(self.pool())
                .await?;
        let rows: Vec<catalog::Row> = sqlx::query_as(catalog::QUERY)
            .fetch_all(self.pool())
            .await?;
        Ok((major.to_string(), catalog::from_rows(rows)))
    }
}
