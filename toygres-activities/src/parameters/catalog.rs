//! Reading a server version's settings from `pg_settings` of a running server.

use super::{Catalog, SettingSpec};
use crate::backend::Backend;
use crate::roles::sql::{AdminSession, describe};
use crate::roles::{AdminTarget, RolesError};
use std::time::Duration;

/// The columns of `pg_settings` a [`Catalog`] holds, all as text (`enumvals` as `text[]`).
pub const QUERY: &str = "SELECT name, vartype, unit, min_val, max_val, enumvals, context, category \
    FROM pg_catalog.pg_settings";

/// One row of [`QUERY`].
pub type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<String>>,
    String,
    String,
);

/// The catalog of rows of [`QUERY`].
pub fn from_rows(rows: impl IntoIterator<Item = Row>) -> Catalog {
    let settings = rows
        .into_iter()
        .map(
            |(name, vartype, unit, min_val, max_val, enumvals, context, category)| {
                let number = |raw: Option<String>| raw.and_then(|raw| raw.parse::<f64>().ok());
                let spec = SettingSpec {
                    vartype,
                    unit,
                    min_val: number(min_val),
                    max_val: number(max_val),
                    enumvals: enumvals.unwrap_or_default(),
                    context,
                    category,
                };
                (name, spec)
            },
        )
        .collect();
    Catalog { settings }
}

/// Reads the catalog of the instance `target` points at, as its superuser `toygres_admin`
/// (who sees every setting), within `timeout`.
pub async fn read(
    backend: &dyn Backend,
    target: &AdminTarget,
    timeout: Duration,
) -> Result<Catalog, RolesError> {
    let work = async {
        let session = AdminSession::open(backend, target, "postgres").await?;
        let rows = session.query(QUERY).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(describe)?,
                    row.try_get(1).map_err(describe)?,
                    row.try_get(2).map_err(describe)?,
                    row.try_get(3).map_err(describe)?,
                    row.try_get(4).map_err(describe)?,
                    row.try_get(5).map_err(describe)?,
                    row.try_get(6).map_err(describe)?,
                    row.try_get(7).map_err(describe)?,
                ))
            })
            .collect::<Result<Vec<Row>, RolesError>>()
            .map(from_rows)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RolesError::Timeout(timeout.as_millis()))?
}
