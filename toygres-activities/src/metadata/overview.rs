//! Aggregate reads for overviews (the console's fleet page): how many operations of each kind
//! and status were accepted since a moment.

use super::{MetadataError, MetadataStore};

/// How many operations of one kind ended up (so far) in one status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OperationCount {
    /// `create`, `delete`, ...
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `failed` or `canceled`, as last recorded.
    pub status: String,
    /// How many.
    pub count: i64,
}

impl MetadataStore {
    /// Operations accepted since `since`, counted by kind and recorded status (through
    /// `operations_created_id`).
    pub async fn operation_counts_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<OperationCount>, MetadataError> {
        Ok(sqlx::query_as(
            "SELECT kind, status, count(*) AS count FROM operations WHERE created_at >= $1 \
             GROUP BY kind, status ORDER BY kind, status",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?)
    }
}
