//! The upgrade of instances made before the control plane had roles of its own: their owner
//! `postgres` is their bootstrap superuser. Each running, idle such instance gets sealed
//! passwords for `toygres_admin` and `toygres_monitor`, is converted inside
//! ([`toygres_activities::roles::legacy`]: the owner is no superuser afterwards and keeps its
//! password and its objects), and gets a new monitor that checks it as `toygres_monitor`.
//!
//! The reconciler runs it at start-up and on its monitor passes, so an instance that a create
//! of the old kind finishes later is converted too. Every step is idempotent; a failure is
//! logged and tried again on the next pass (docs/operations.md).

use super::{ControlPlane, generate_password, random_id};
use std::time::Duration;
use toygres_activities::backend::Endpoint;
use toygres_activities::metadata::InstanceRecord;
use toygres_activities::roles::{RolePasswords, legacy};
use toygres_activities::seal::SealedSecret;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::monitor_id_for;

/// How long one instance's conversion may take.
const CONVERSION_TIMEOUT: Duration = Duration::from_secs(120);

/// Converts every running, idle instance that lacks the control plane's roles. Returns the
/// names converted; an instance that fails is logged and left for the next pass.
pub async fn convert_legacy_instances(plane: &ControlPlane) -> anyhow::Result<Vec<String>> {
    let mut converted = Vec::new();
    for instance in plane
        .metadata
        .instances_without_control_plane_roles()
        .await?
    {
        match convert(plane, &instance).await {
            Ok(true) => {
                tracing::info!(instance = %instance.name, "the owner is no superuser now; the control plane's roles are in place");
                converted.push(instance.name.clone());
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(instance = %instance.name, error = %format!("{error:#}"), "could not convert an instance made before the control plane had roles of its own; retrying on the next pass")
            }
        }
    }
    Ok(converted)
}

/// Converts one instance; `Ok(false)` when it changed meanwhile (the next pass looks again).
async fn convert(plane: &ControlPlane, instance: &InstanceRecord) -> anyhow::Result<bool> {
    let (Some(host), Some(port)) = (instance.host.clone(), instance.port) else {
        anyhow::bail!("the running instance has no endpoint");
    };
    let Some((admin, monitor)) = plane
        .metadata
        .keep_control_plane_passwords(
            instance.id,
            &plane.secret_key.seal(&generate_password()),
            &plane.secret_key.seal(&generate_password()),
        )
        .await?
    else {
        return Ok(false);
    };
    let open = |sealed: &SealedSecret| plane.secret_key.open(sealed);
    let passwords = RolePasswords {
        owner: open(&SealedSecret::from_stored(instance.sealed_password.clone()))?,
        admin: open(&admin)?,
        monitor: open(&monitor)?,
    };
    let name = InstanceName::parse(&instance.name)?;
    let endpoint = Endpoint {
        host,
        port: u16::try_from(port)?,
    };
    let done = legacy::convert(
        plane.backend.as_ref(),
        toygres_activities::backend::InstanceRef::new(&name, instance.namespace.as_deref()),
        &endpoint,
        &instance.postgres_version,
        &passwords,
        CONVERSION_TIMEOUT,
    )
    .await?;
    let monitor_id = format!("{}-{}", monitor_id_for(&instance.uid), random_id("r"));
    let message = format!(
        "upgraded: the owner is no superuser now; the control plane's roles toygres_admin and \
         toygres_monitor were created; databases handed to the owner: {}{}",
        done.databases.join(", "),
        if done.demoted_roles.is_empty() {
            String::new()
        } else {
            format!(
                "; roles that lost superuser, replication or bypass-RLS: {}",
                done.demoted_roles.join(", ")
            )
        }
    );
    if !plane
        .metadata
        .record_control_plane_roles(
            instance.id,
            instance.monitor_id.as_deref(),
            &monitor_id,
            &message,
        )
        .await?
    {
        return Ok(false);
    }
    // The old monitor checks as the owner; the new one as toygres_monitor.
    if let Some(previous) = &instance.monitor_id
        && let Err(error) = plane
            .client
            .cancel_instance(
                previous.clone(),
                "replaced: the instance has toygres_monitor now".to_string(),
            )
            .await
    {
        tracing::warn!(monitor_id = %previous, %error, "could not cancel the previous monitor; it stops at its next check");
    }
    if let Some(upgraded) = plane.metadata.instance(instance.id).await? {
        plane.start_monitor(&upgraded, &monitor_id).await?;
    }
    Ok(true)
}
