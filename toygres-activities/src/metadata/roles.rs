//! What the upgrade of instances made before the control plane had roles of its own reads and
//! writes (see `toygres_server::plane::upgrade`).

use super::records::InstanceRecord;
use super::{MetadataError, MetadataStore};
use crate::seal::SealedSecret;

impl MetadataStore {
    /// Running instances that no operation holds and that lack the control plane's roles.
    pub async fn instances_without_control_plane_roles(
        &self,
    ) -> Result<Vec<InstanceRecord>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT * FROM instances WHERE state = 'running' AND active_operation_id IS NULL \
             AND roles_version < $1 ORDER BY id",
        )
        .bind(crate::roles::ROLES_VERSION)
        .fetch_all(self.pool())
        .await?)
    }

    /// Stores sealed passwords for the control plane's roles of instance `instance_id` unless
    /// it has some already, and returns the ones it has (so an interrupted upgrade goes on with
    /// the passwords it may already have set). `None` when the instance is gone.
    pub async fn keep_control_plane_passwords(
        &self,
        instance_id: i64,
        admin: &SealedSecret,
        monitor: &SealedSecret,
    ) -> Result<Option<(SealedSecret, SealedSecret)>, MetadataError> {
        let stored: Option<(String, String)> = sqlx::query_as(
            "UPDATE instances SET \
               sealed_admin_password = COALESCE(sealed_admin_password, $2), \
               sealed_monitor_password = COALESCE(sealed_monitor_password, $3) \
             WHERE id = $1 RETURNING sealed_admin_password, sealed_monitor_password",
        )
        .bind(instance_id)
        .bind(admin.as_str())
        .bind(monitor.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(stored.map(|(admin, monitor)| {
            (
                SealedSecret::from_stored(admin),
                SealedSecret::from_stored(monitor),
            )
        }))
    }

    /// Records that instance `instance_id` has the control plane's roles now, and that monitor
    /// `monitor_id` (which checks it as `toygres_monitor`) takes over from `previous_monitor`.
    /// Applies only while the instance runs, idle, without the roles. Returns whether it did.
    pub async fn record_control_plane_roles(
        &self,
        instance_id: i64,
        previous_monitor: Option<&str>,
        monitor_id: &str,
        message: &str,
    ) -> Result<bool, MetadataError> {
        let mut tx = self.pool().begin().await?;
        let changed: Option<InstanceRecord> = sqlx::query_as(
            "UPDATE instances SET roles_version = $4, monitor_id = $3, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND active_operation_id IS NULL \
               AND roles_version < $4 AND monitor_id IS NOT DISTINCT FROM $2 RETURNING *",
        )
        .bind(instance_id)
        .bind(previous_monitor)
        .bind(monitor_id)
        .bind(crate::roles::ROLES_VERSION)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(instance) = &changed {
            super::transitions::insert_event(&mut tx, instance, "security", message, None).await?;
        }
        tx.commit().await?;
        Ok(changed.is_some())
    }
}
