//! Maps Kubernetes API failures onto [`BackendError`]: what a retry may fix is transient.

use crate::backend::BackendError;

/// Whether the API answered 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Whether the API answered 409 because the object exists.
pub fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// Classifies a failed call: throttling, conflicts, server errors and transport failures may
/// pass on a retry; any other API refusal (forbidden, invalid, ...) will not. A refusal by
/// the authorizer says how to give the permission back.
pub fn classify(what: &str, error: kube::Error) -> BackendError {
    let message = format!("{what}: {error}");
    match &error {
        kube::Error::Api(status)
            if status.code == 409 || status.code == 429 || status.code >= 500 =>
        {
            BackendError::Transient(message)
        }
        kube::Error::Api(status) if status.code == 403 => BackendError::Permanent(format!(
            "{message}. Toygres holds its permissions in a namespace through a RoleBinding of \
             the ClusterRole toygres-instances: if the namespace was removed from \
             TOYGRES_K8S_NAMESPACES or its RoleBinding deleted, bind it there again \
             (deploy/README.md) and retry"
        )),
        kube::Error::Api(_) => BackendError::Permanent(message),
        _ => BackendError::Transient(message),
    }
}
