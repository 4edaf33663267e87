//! Server parameters an instance's owner may set: checked against the server version's own
//! `pg_settings` ([`Catalog`], read from a running server by [`catalog`]), never a hand-kept
//! list of names, types or ranges. A few settings that decide where the server listens, who may
//! connect, what code it loads or where its WAL goes belong to the control plane and are
//! refused by name ([`MANAGED`]).
//!
//! Parameters whose context is `postmaster` take effect at a server start: the control plane
//! passes them on the server's command line ([`crate::backend::Backend::restart`]), so a value
//! the server cannot start with is rolled back by restarting with the previous ones. The others
//! are set with `ALTER SYSTEM` and a reload ([`apply`]).

pub mod apply;
pub mod catalog;
mod value;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use value::{Unit, parse_bool, to_base_units};

/// Settings the control plane decides: listening, authentication, TLS, code loading, WAL
/// archiving and recovery, and the server's own files and logs.
pub const MANAGED: &[&str] = &[
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
    "hba_file",
    "ident_file",
    "config_file",
    "data_directory",
    "external_pid_file",
    "password_encryption",
    "krb_server_keyfile",
    "shared_preload_libraries",
    "session_preload_libraries",
    "local_preload_libraries",
    "dynamic_library_path",
    "jit_provider",
    "archive_mode",
    "archive_command",
    "archive_library",
    "archive_timeout",
    "archive_cleanup_command",
    "restore_command",
    "recovery_end_command",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "wal_level",
    "logging_collector",
    "log_directory",
    "log_filename",
    "log_destination",
    "event_source",
];

/// Name prefixes of settings the control plane decides (TLS, recovery targets).
const MANAGED_PREFIXES: &[&str] = &["ssl", "recovery_target"];

/// The fewest connections an owner may configure: the control plane's health checks, resets
/// and backups need slots of their own.
pub const MIN_MAX_CONNECTIONS: f64 = 10.0;

/// One row of `pg_settings`: what a value of the setting must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingSpec {
    /// `bool`, `integer`, `real`, `string` or `enum`.
    pub vartype: String,
    /// The unit of plain numbers (`8kB`, `ms`, ...), if any.
    pub unit: Option<String>,
    /// Smallest value, in [`SettingSpec::unit`].
    pub min_val: Option<f64>,
    /// Largest value, in [`SettingSpec::unit`].
    pub max_val: Option<f64>,
    /// Allowed values of an `enum`.
    pub enumvals: Vec<String>,
    /// When a change takes effect: `postmaster` (a restart), `sighup`, `superuser`, `user`, ...
    pub context: String,
    /// The settings group, as `pg_settings.category` says.
    pub category: String,
}

impl SettingSpec {
    /// Whether a change takes effect only when the server starts.
    pub fn needs_restart(&self) -> bool {
        self.context == "postmaster"
    }
}

/// Every setting a server version knows, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Settings by name (lowercase, as `pg_settings` lists them).
    pub settings: BTreeMap<String, SettingSpec>,
}

/// A checked change of one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterChange {
    /// The setting's name, lowercase.
    pub name: String,
    /// The new value as given (trimmed); `None` returns it to the server's default.
    pub value: Option<String>,
    /// Whether it takes effect only at a server start.
    pub restart: bool,
}

/// Why a parameter change is refused; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    /// The server version has no such setting.
    #[error("'{0}' is not a parameter of this PostgreSQL version")]
    Unknown(String),
    /// The control plane decides this setting.
    #[error("'{0}' is managed by toygres and cannot be changed")]
    Managed(String),
    /// The setting cannot be changed at all (`internal`) or is a developer option.
    #[error("'{name}' cannot be set: {why}")]
    NotSettable {
        /// The setting.
        name: String,
        /// Why.
        why: String,
    },
    /// The value does not fit the setting.
    #[error("'{name}': {why}")]
    BadValue {
        /// The setting.
        name: String,
        /// What is wrong and what would fit.
        why: String,
    },
}

impl ParameterError {
    /// The parameter the error is about.
    pub fn name(&self) -> &str {
        match self {
            ParameterError::Unknown(name) | ParameterError::Managed(name) => name,
            ParameterError::NotSettable { name, .. } | ParameterError::BadValue { name, .. } => {
                name
            }
        }
    }
}

/// Whether the control plane decides setting `name`.
pub fn is_managed(name: &str) -> bool {
    MANAGED.contains(&name)
        || MANAGED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

impl Catalog {
    /// Checks that `name` may be set to `value` (`None`: back to the default) on this version.
    pub fn check(
        &self,
        name: &str,
        value: Option<&str>,
    ) -> Result<ParameterChange, ParameterError> {
        let name = name.trim().to_ascii_lowercase();
        if is_managed(&name) {
            return Err(ParameterError::Managed(name));
        }
        let spec = self
            .settings
            .get(&name)
            .ok_or_else(|| ParameterError::Unknown(name.clone()))?;
        if spec.context == "internal" {
            return Err(ParameterError::NotSettable {
                name,
                why: "it is fixed when the server is built or initialized".into(),
            });
        }
        if spec.category.starts_with("Developer Options") {
            return Err(ParameterError::NotSettable {
                name,
                why: "developer options can damage data".into(),
            });
        }
        let restart = spec.needs_restart();
        let Some(value) = value else {
            return Ok(ParameterChange {
                name,
                value: None,
                restart,
            });
        };
        let value = value.trim().to_string();
        value::check(spec, &value).map_err(|why| ParameterError::BadValue {
            name: name.clone(),
            why,
        })?;
        if name == "max_connections"
            && value
                .parse::<f64>()
                .is_ok_and(|connections| connections < MIN_MAX_CONNECTIONS)
        {
            return Err(ParameterError::BadValue {
                name,
                why: format!(
                    "must be at least {MIN_MAX_CONNECTIONS}: the control plane needs connections of its own"
                ),
            });
        }
        Ok(ParameterChange {
            name,
            value: Some(value),
            restart,
        })
    }
}

/// The parameters after `changes`: set values replace, `None` removes.
pub fn merged(
    current: &BTreeMap<String, String>,
    changes: &[ParameterChange],
) -> BTreeMap<String, String> {
    let mut merged = current.clone();
    for change in changes {
        match &change.value {
            Some(value) => merged.insert(change.name.clone(), value.clone()),
            None => merged.remove(&change.name),
        };
    }
    merged
}

/// Of `parameters`, those that take effect at a server start (they go on its command line).
/// A name the catalog does not know (a version change) is left to `ALTER SYSTEM`'s checks.
pub fn start_parameters(
    parameters: &BTreeMap<String, String>,
    catalog: &Catalog,
) -> BTreeMap<String, String> {
    parameters
        .iter()
        .filter(|(name, _)| {
            catalog
                .settings
                .get(name.as_str())
                .is_some_and(SettingSpec::needs_restart)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A few real rows of PostgreSQL 15's `pg_settings`.
    pub(crate) fn catalog() -> Catalog {
        let spec = |vartype: &str,
                    unit: Option<&str>,
                    min: Option<f64>,
                    max: Option<f64>,
                    enumvals: &[&str],
                    context: &str,
                    category: &str| SettingSpec {
            vartype: vartype.into(),
            unit: unit.map(str::to_string),
            min_val: min,
            max_val: max,
            enumvals: enumvals.iter().map(|v| v.to_string()).collect(),
            context: context.into(),
            category: category.into(),
        };
        let mut settings = BTreeMap::new();
        let memory = "Resource Usage / Memory";
        settings.insert(
            "max_connections".into(),
            spec(
                "integer",
                None,
                Some(1.0),
                Some(262143.0),
                &[],
                "postmaster",
                "Connections",
            ),
        );
        settings.insert(
            "shared_buffers".into(),
            spec(
                "integer",
                Some("8kB"),
                Some(16.0),
                Some(1073741823.0),
                &[],
                "postmaster",
                memory,
            ),
        );
        settings.insert(
            "work_mem".into(),
            spec(
                "integer",
                Some("kB"),
                Some(64.0),
                Some(2147483647.0),
                &[],
                "user",
                memory,
            ),
        );
        settings.insert(
            "statement_timeout".into(),
            spec(
                "integer",
                Some("ms"),
                Some(0.0),
                Some(2147483647.0),
                &[],
                "user",
                "Client",
            ),
        );
        settings.insert(
            "random_page_cost".into(),
            spec(
                "real",
                None,
                Some(0.0),
                Some(1.79769e308),
                &[],
                "user",
                "Query Tuning",
            ),
        );
        settings.insert(
            "log_statement".into(),
            spec(
                "enum",
                None,
                None,
                None,
                &["none", "ddl", "mod", "all"],
                "superuser",
                "Reporting",
            ),
        );
        settings.insert(
            "jit".into(),
            spec("bool", None, None, None, &[], "user", "Query Tuning"),
        );
        settings.insert(
            "application_name".into(),
            spec("string", None, None, None, &[], "user", "Reporting"),
        );
        settings.insert(
            "block_size".into(),
            spec(
                "integer",
                None,
                Some(8192.0),
                Some(8192.0),
                &[],
                "internal",
                "Preset Options",
            ),
        );
        settings.insert(
            "zero_damaged_pages".into(),
            spec(
                "bool",
                None,
                None,
                None,
                &[],
                "superuser",
                "Developer Options",
            ),
        );
        settings.insert(
            "port".into(),
            spec(
                "integer",
                None,
                Some(1.0),
                Some(65535.0),
                &[],
                "postmaster",
                "Connections",
            ),
        );
        Catalog { settings }
    }

    #[test]
    fn values_that_fit_are_accepted_and_say_when_they_apply() -> Result<(), ParameterError> {
        let catalog = catalog();
        assert!(catalog.check("max_connections", Some("200"))?.restart);
        assert!(!catalog.check("work_mem", Some("64MB"))?.restart);
        assert_eq!(
            catalog.check("Work_Mem", Some(" 8MB "))?,
            ParameterChange {
                name: "work_mem".into(),
                value: Some("8MB".into()),
                restart: false
            }
        );
        catalog.check("shared_buffers", Some("128MB"))?;
        catalog.check("statement_timeout", Some("5min"))?;
        catalog.check("random_page_cost", Some("1.1"))?;
        catalog.check("log_statement", Some("DDL"))?;
        catalog.check("jit", Some("off"))?;
        catalog.check("application_name", Some("orders"))?;
        assert_eq!(catalog.check("work_mem", None)?.value, None);
        Ok(())
    }

    #[test]
    fn unknown_managed_and_fixed_settings_are_refused_by_name() {
        let catalog = catalog();
        assert_eq!(
            catalog.check("no_such_thing", Some("1")),
            Err(ParameterError::Unknown("no_such_thing".into()))
        );
        assert_eq!(
            catalog.check("port", Some("5433")),
            Err(ParameterError::Managed("port".into()))
        );
        assert_eq!(
            catalog.check("ssl_ciphers", Some("x")),
            Err(ParameterError::Managed("ssl_ciphers".into()))
        );
        assert!(matches!(
            catalog.check("block_size", Some("8192")),
            Err(ParameterError::NotSettable { .. })
        ));
        assert!(matches!(
            catalog.check("zero_damaged_pages", Some("on")),
            Err(ParameterError::NotSettable { .. })
        ));
    }

    #[test]
    fn values_out_of_range_or_of_the_wrong_kind_are_refused() {
        let catalog = catalog();
        for (name, value) in [
            ("max_connections", "999999999"),
            ("max_connections", "lots"),
            ("max_connections", "5"),
            ("work_mem", "1kB"),
            ("work_mem", "64 parsecs"),
            ("work_mem", "5min"),
            ("statement_timeout", "-1"),
            ("log_statement", "everything"),
            ("jit", "maybe"),
            ("shared_buffers", "64kB"),
        ] {
            let refused = catalog.check(name, Some(value));
            assert!(
                matches!(&refused, Err(ParameterError::BadValue { name: n, .. }) if n == name),
                "{name} = {value}: {refused:?}"
            );
        }
    }

    #[test]
    fn changes_merge_and_split_by_when_they_apply() {
        let catalog = catalog();
        let current = BTreeMap::from([
            ("work_mem".to_string(), "4MB".to_string()),
            ("max_connections".to_string(), "50".to_string()),
        ]);
        let changes = [
            ParameterChange {
                name: "work_mem".into(),
                value: None,
                restart: false,
            },
            ParameterChange {
                name: "shared_buffers".into(),
                value: Some("64MB".into()),
                restart: true,
            },
        ];
        let after = merged(&current, &changes);
        assert_eq!(
            after,
            BTreeMap::from([
                ("max_connections".to_string(), "50".to_string()),
                ("shared_buffers".to_string(), "64MB".to_string()),
            ])
        );
        assert_eq!(start_parameters(&after, &catalog), after);
        assert!(!start_parameters(&current, &catalog).contains_key("work_mem"));
    }
}
