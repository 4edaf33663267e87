//! The labels every object of an instance carries, and how to read ownership back from them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Marks objects Toygres manages.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const TOYGRES: &str = "toygres";
/// The instance name.
pub const INSTANCE: &str = "toygres.io/instance";
/// The instance incarnation: tells a leftover of an older instance with the same name apart.
pub const UID: &str = "toygres.io/uid";

/// The labels of every object of instance `name`, incarnation `uid`.
pub fn owned(name: &str, uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), TOYGRES.to_string()),
        (INSTANCE.to_string(), name.to_string()),
        (UID.to_string(), uid.to_string()),
    ])
}

/// The pod selector of instance `name` (stable across incarnations: selectors are immutable).
pub fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), TOYGRES.to_string()),
        (INSTANCE.to_string(), name.to_string()),
    ])
}

/// The label selector of every object Toygres manages.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={TOYGRES}")
}

/// The label selector of every object of instance `name`.
pub fn instance_selector(name: &str) -> String {
    format!("{MANAGED_BY}={TOYGRES},{INSTANCE}={name}")
}

/// The label selector of every object of incarnation `uid` of instance `name`.
pub fn incarnation_selector(name: &str, uid: &str) -> String {
    format!("{MANAGED_BY}={TOYGRES},{INSTANCE}={name},{UID}={uid}")
}

/// Who an existing object belongs to, as its labels say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// This incarnation of the instance: adopt it.
    Ours,
    /// An older incarnation of the same instance: replace it.
    Stale,
    /// Not Toygres's, or another instance's: never touch it.
    Foreign,
}

/// Reads the ownership of an object from its labels.
pub fn ownership(meta: &ObjectMeta, name: &str, uid: &str) -> Ownership {
    let Some(labels) = &meta.labels else {
        return Ownership::Foreign;
    };
    let get = |key: &str| labels.get(key).map(String::as_str);
    if get(MANAGED_BY) != Some(TOYGRES) || get(INSTANCE) != Some(name) {
        return Ownership::Foreign;
    }
    if get(UID) == Some(uid) {
        Ownership::Ours
    } else {
        Ownership::Stale
    }
}
