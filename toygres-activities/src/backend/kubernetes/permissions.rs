//! What the backend may do where: the accesses it needs in each allowed namespace (what
//! `deploy/rbac.yaml`'s ClusterRole `toygres-instances` grants, bound there by a RoleBinding),
//! checked with `SelfSubjectAccessReview`, and whether a new instance may go into a namespace.

use super::KubernetesBackend;
use super::errors::{classify, is_not_found};
use crate::backend::{BackendError, MissingPermission, PlacementError};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use std::time::{Duration, Instant};

/// One access: a verb on a resource of an API group (`""`: the core group), optionally a
/// subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The API group.
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// The subresource, if any.
    pub subresource: Option<&'static str>,
    /// The verb.
    pub verb: &'static str,
}

impl Access {
    /// `resource.group/subresource`, as RBAC error messages write it.
    pub fn resource_name(&self) -> String {
        let mut name = self.resource.to_string();
        if !self.group.is_empty() {
            name = format!("{name}.{}", self.group);
        }
        if let Some(subresource) = self.subresource {
            name = format!("{name}/{subresource}");
        }
        name
    }
}

const fn access(group: &'static str, resource: &'static str, verb: &'static str) -> Access {
    Access {
        group,
        resource,
        subresource: None,
        verb,
    }
}

/// Every access the backend needs in a namespace instances live in.
pub const NEEDED: &[Access] = &[
    access("", "namespaces", "get"),
    access("", "secrets", "create"),
    access("", "secrets", "get"),
    access("", "secrets", "list"),
    access("", "secrets", "delete"),
    access("", "services", "create"),
    access("", "services", "get"),
    access("", "services", "list"),
    access("", "services", "delete"),
    access("", "persistentvolumeclaims", "get"),
    access("", "persistentvolumeclaims", "list"),
    access("", "persistentvolumeclaims", "delete"),
    access("", "persistentvolumeclaims", "patch"),
    access("networking.k8s.io", "networkpolicies", "create"),
    access("networking.k8s.io", "networkpolicies", "get"),
    access("networking.k8s.io", "networkpolicies", "list"),
    access("networking.k8s.io", "networkpolicies", "delete"),
    access("apps", "statefulsets", "create"),
    access("apps", "statefulsets", "get"),
    access("apps", "statefulsets", "list"),
    access("apps", "statefulsets", "delete"),
    access("apps", "statefulsets", "patch"),
    access("apps", "statefulsets", "update"),
    access("", "pods", "get"),
    access("", "pods", "delete"),
    Access {
        group: "",
        resource: "pods",
        subresource: Some("portforward"),
        verb: "get",
    },
    Access {
        group: "",
        resource: "pods",
        subresource: Some("portforward"),
        verb: "create",
    },
];

/// How long a permission check is reused: `/readyz` may be polled often, and a restored
/// RoleBinding is seen within this long.
pub const CHECK_TTL: Duration = Duration::from_secs(3);

/// The last permission check and when it ran.
#[derive(Debug, Default)]
pub(super) struct PermissionCache {
    last: Option<(Instant, Vec<MissingPermission>)>,
}

impl KubernetesBackend {
    /// Asks the API server whether this identity may do `access` in `namespace`.
    async fn allowed(&self, namespace: &str, access: &Access) -> Result<bool, BackendError> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    group: Some(access.group.to_string()),
                    resource: Some(access.resource.to_string()),
                    subresource: access.subresource.map(str::to_string),
                    verb: Some(access.verb.to_string()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|error| classify("asking the API server what Toygres may do", error))?;
        Ok(answer.status.is_some_and(|status| status.allowed))
    }

    /// The accesses of [`NEEDED`] this identity lacks in `namespace`.
    async fn missing_in(&self, namespace: &str) -> Result<Vec<MissingPermission>, BackendError> {
        let answers = futures_util::future::try_join_all(
            NEEDED.iter().map(|access| self.allowed(namespace, access)),
        )
        .await?;
        Ok(NEEDED
            .iter()
            .zip(answers)
            .filter(|(_, allowed)| !allowed)
            .map(|(access, _)| MissingPermission {
                namespace: namespace.to_string(),
                verb: access.verb.to_string(),
                resource: access.resource_name(),
            })
            .collect())
    }

    /// The accesses lacking in every allowed namespace, checked at most every [`CHECK_TTL`].
    pub(super) async fn check_permissions(&self) -> Result<Vec<MissingPermission>, BackendError> {
        if let Ok(cache) = self.permissions.lock()
            && let Some((at, missing)) = &cache.last
            && at.elapsed() < CHECK_TTL
        {
            return Ok(missing.clone());
        }
        let mut missing = Vec::new();
        for namespace in &self.config.namespaces {
            missing.extend(self.missing_in(namespace).await?);
        }
        if let Ok(mut cache) = self.permissions.lock() {
            cache.last = Some((Instant::now(), missing.clone()));
        }
        Ok(missing)
    }

    /// Whether a new instance may go into `namespace` (see
    /// [`crate::backend::Backend::check_placement`]): allowed, and readable (the server may
    /// read a namespace exactly where its RoleBinding is). When it may not read it, the
    /// permission check says what is missing there.
    pub(super) async fn placement(&self, namespace: &str) -> Result<(), PlacementError> {
        if !self
            .config
            .namespaces
            .iter()
            .any(|allowed| allowed == namespace)
        {
            return Err(PlacementError::NotAllowed {
                namespace: namespace.to_string(),
                allowed: self.config.namespaces.join(", "),
            });
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get_opt(namespace).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => return Err(does_not_exist(namespace)),
            Err(error) if is_not_found(&error) => return Err(does_not_exist(namespace)),
            // Forbidden: no RoleBinding there (which a namespace that does not exist cannot
            // hold either), or one without this verb.
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            Err(error) => {
                return Err(classify(&format!("reading namespace {namespace}"), error).into());
            }
        }
        let missing: Vec<MissingPermission> = self.missing_in(namespace).await?;
        if missing.is_empty() {
            return Ok(()); // granted in between
        }
        let listed = missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if missing.len() == NEEDED.len() {
            Err(PlacementError::Missing(format!(
                "namespace {namespace} does not exist, or Toygres holds no RoleBinding in it \
                 (it may not {listed}); create the namespace and bind the ClusterRole \
                 toygres-instances there (deploy/README.md)"
            )))
        } else {
            Err(PlacementError::Forbidden(format!(
                "Toygres may not {listed}; bind the ClusterRole toygres-instances in namespace \
                 {namespace} again (deploy/README.md)"
            )))
        }
    }
}

fn does_not_exist(namespace: &str) -> PlacementError {
    PlacementError::Missing(format!("namespace {namespace} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_named_as_rbac_names_them() {
        assert_eq!(
            access("apps", "statefulsets", "get").resource_name(),
            "statefulsets.apps"
        );
        assert_eq!(access("", "pods", "get").resource_name(), "pods");
        let forward = NEEDED
            .iter()
            .find(|access| access.subresource.is_some())
            .map(Access::resource_name);
        assert_eq!(forward.as_deref(), Some("pods/portforward"));
    }
}
