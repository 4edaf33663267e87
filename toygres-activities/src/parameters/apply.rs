//! Setting parameters that a reload applies: `ALTER SYSTEM` as the instance's superuser
//! `toygres_admin`, then `pg_reload_conf()`.

use super::ParameterChange;
use crate::backend::Backend;
use crate::roles::sql::{AdminSession, literal};
use crate::roles::{AdminTarget, RolesError};
use std::time::Duration;

/// The statement that makes `change` the server's setting (or its default again).
pub fn alter_system(change: &ParameterChange) -> Result<String, RolesError> {
    let valid_name = !change.name.is_empty()
        && change
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if !valid_name {
        return Err(RolesError::Postgres(format!(
            "'{}' is not a parameter name",
            change.name
        )));
    }
    Ok(match &change.value {
        Some(value) => format!("ALTER SYSTEM SET {} = {}", change.name, literal(value)),
        None => format!("ALTER SYSTEM RESET {}", change.name),
    })
}

/// Applies `changes` with `ALTER SYSTEM` (each on its own: it cannot run in a transaction) and
/// reloads the configuration, within `timeout`. Idempotent.
pub async fn alter_and_reload(
    backend: &dyn Backend,
    target: &AdminTarget,
    changes: &[ParameterChange],
    timeout: Duration,
) -> Result<(), RolesError> {
    let statements = changes
        .iter()
        .map(alter_system)
        .collect::<Result<Vec<_>, _>>()?;
    let work = async {
        let session = AdminSession::open(backend, target, "postgres").await?;
        for statement in &statements {
            session.execute(statement).await?;
        }
        session.execute("SELECT pg_catalog.pg_reload_conf()").await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RolesError::Timeout(timeout.as_millis()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_values_and_refuse_odd_names() -> Result<(), RolesError> {
        let set = ParameterChange {
            name: "application_name".into(),
            value: Some("it's".into()),
            restart: false,
        };
        assert_eq!(
            alter_system(&set)?,
            "ALTER SYSTEM SET application_name = 'it''s'"
        );
        let reset = ParameterChange {
            value: None,
            ..set.clone()
        };
        assert_eq!(alter_system(&reset)?, "ALTER SYSTEM RESET application_name");
        let odd = ParameterChange {
            name: "work_mem; DROP TABLE t".into(),
            ..set
        };
        assert!(alter_system(&odd).is_err());
        Ok(())
    }
}
