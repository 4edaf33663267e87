//! Volumes: a `hostPath` PersistentVolume for each pending claim of the served namespaces,
//! pre-bound to it (`claimRef`, with the claim's namespace) so the real PV binder completes the
//! binding; volumes whose claim is gone are removed with their folders, as a dynamic
//! provisioner's `Delete` policy would.

use super::{AgentConfig, AgentError, for_each_namespace};
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeSpec,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt as _};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The annotation marking volumes this agent provisioned.
pub const PROVISIONED_BY: &str = "toygres.io/provisioned-by";
/// Its value.
pub const AGENT: &str = "toygres-node-agent";

/// Makes `root` and its `volumes` folder, traversable by the instances' users.
pub fn prepare_root(root: &Path) -> Result<(), AgentError> {
    for dir in [root.to_path_buf(), volumes_dir(root)] {
        std::fs::create_dir_all(&dir)
            .map_err(AgentError::io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(AgentError::io(format!("opening {}", dir.display())))?;
    }
    Ok(())
}

fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

/// The folder of volume `name`.
pub fn volume_dir(root: &Path, name: &str) -> PathBuf {
    volumes_dir(root).join(name)
}

/// One pass over every served namespace: provision for pending claims, remove volumes whose
/// claim is gone.
pub async fn pass(client: &Client, config: &AgentConfig) -> Result<(), AgentError> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let existing = volumes
        .list(&ListParams::default())
        .await
        .map_err(AgentError::api("listing volumes"))?
        .items;
    for_each_namespace(&config.namespaces, |namespace| {
        pass_in(client, config, &volumes, &existing, namespace)
    })
    .await
}

/// The pass for namespace `namespace`, given the `existing` volumes: only volumes whose claim
/// is of this namespace are released here.
async fn pass_in(
    client: &Client,
    config: &AgentConfig,
    volumes: &Api<PersistentVolume>,
    existing: &[PersistentVolume],
    namespace: &str,
) -> Result<(), AgentError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claims = claims
        .list(&ListParams::default())
        .await
        .map_err(AgentError::api(format!("listing claims in {namespace}")))?
        .items;
    for claim in &claims {
        let pending = claim
            .spec
            .as_ref()
            .is_some_and(|spec| spec.volume_name.is_none())
            && claim.metadata.deletion_timestamp.is_none();
        let name = volume_name(claim);
        if pending && !existing.iter().any(|volume| volume.name_any() == name) {
            provision(volumes, config, claim, &name).await?;
        }
    }
    for volume in existing {
        let ours = volume
            .annotations()
            .get(PROVISIONED_BY)
            .is_some_and(|by| by == AGENT);
        let Some(reference) = volume
            .spec
            .as_ref()
            .and_then(|spec| spec.claim_ref.as_ref())
            .filter(|reference| reference.namespace.as_deref() == Some(namespace))
        else {
            continue; // another namespace's (its own pass looks at it), or no claim's
        };
        let claimed = claims
            .iter()
            .any(|claim| claim.metadata.uid.is_some() && claim.metadata.uid == reference.uid);
        if ours && !claimed {
            release(volumes, config, volume).await?;
        }
    }
    Ok(())
}

/// Named after the claim's uid, as dynamic provisioners name theirs: uids are unique across
/// namespaces, so claims of the same name in two namespaces get volumes (and folders) of their
/// own.
fn volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.clone().unwrap_or_default())
}

async fn provision(
    volumes: &Api<PersistentVolume>,
    config: &AgentConfig,
    claim: &PersistentVolumeClaim,
    name: &str,
) -> Result<(), AgentError> {
    let dir = volume_dir(&config.root, name);
    let Some(volume) = volume_for(claim, name, &dir) else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(AgentError::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(AgentError::io(format!("opening {}", dir.display())))?;
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(AgentError::api(format!("provisioning volume {name}"))(
            error,
        )),
    }
}

/// The volume `name` (folder `dir`) for `claim`, pre-bound to it in its namespace; `None` for
/// a claim without a spec.
fn volume_for(claim: &PersistentVolumeClaim, name: &str, dir: &Path) -> Option<PersistentVolume> {
    let spec = claim.spec.as_ref()?;
    let capacity = spec
        .resources
        .as_ref()
        .and_then(|resources| resources.requests.clone())
        .and_then(|requests| requests.get("storage").cloned())
        .map(|storage| BTreeMap::from([("storage".to_string(), storage)]));
    let mut volume = PersistentVolume::default();
    volume.metadata.name = Some(name.to_string());
    // The claim's labels, so what an instance leaves behind is found by them.
    volume.metadata.labels = claim.metadata.labels.clone();
    volume.metadata.annotations = Some(BTreeMap::from([(
        PROVISIONED_BY.to_string(),
        AGENT.to_string(),
    )]));
    volume.spec = Some(PersistentVolumeSpec {
        capacity,
        access_modes: spec.access_modes.clone(),
        storage_class_name: Some(spec.storage_class_name.clone().unwrap_or_default()),
        persistent_volume_reclaim_policy: Some("Retain".into()),
        host_path: Some(HostPathVolumeSource {
            path: dir.display().to_string(),
            type_: Some("Directory".into()),
        }),
        claim_ref: Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        ..PersistentVolumeSpec::default()
    });
    Some(volume)
}

async fn release(
    volumes: &Api<PersistentVolume>,
    config: &AgentConfig,
    volume: &PersistentVolume,
) -> Result<(), AgentError> {
    let name = volume.name_any();
    match volumes.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(AgentError::api(format!("removing volume {name}"))(error)),
    }
    let dir = volume_dir(&config.root, &name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(AgentError::io(format!("removing {}", dir.display()))(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;

    fn claim(namespace: &str, name: &str, uid: &str) -> PersistentVolumeClaim {
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.namespace = Some(namespace.into());
        claim.metadata.name = Some(name.into());
        claim.metadata.uid = Some(uid.into());
        claim.spec = Some(PersistentVolumeClaimSpec::default());
        claim
    }

    #[test]
    fn claims_of_the_same_name_in_two_namespaces_get_volumes_of_their_own() {
        let root = Path::new("/srv/node");
        let first = claim("a", "data-x-0", "11111111-1111-1111-1111-111111111111");
        let second = claim("b", "data-x-0", "22222222-2222-2222-2222-222222222222");
        let (first_name, second_name) = (volume_name(&first), volume_name(&second));
        assert_ne!(first_name, second_name);
        assert_ne!(
            volume_dir(root, &first_name),
            volume_dir(root, &second_name)
        );
        for (claim, name) in [(&first, &first_name), (&second, &second_name)] {
            let volume = volume_for(claim, name, &volume_dir(root, name));
            let reference = volume
                .and_then(|volume| volume.spec)
                .and_then(|spec| spec.claim_ref);
            assert_eq!(
                reference.as_ref().and_then(|r| r.namespace.clone()),
                claim.metadata.namespace
            );
            assert_eq!(reference.and_then(|r| r.uid), claim.metadata.uid);
        }
    }
}
