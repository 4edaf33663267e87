//! The plans of the hot reads at scale (tests only), and that the rewritten listings return what
//! they did before.
//!
//! A fresh database is filled with ~50,000 instance rows as history accumulates (mostly deleted
//! and failed, names re-used by later incarnations), their operations and events, then analyzed.
//! Each hot read's SQL, the very constant `reads.rs` sends, is prepared as the store's pool
//! prepares it, and explained with realistic parameters twice: as a custom plan (the parameters
//! known, as in a statement's first executions) and as a generic plan (what PostgreSQL may switch
//! to after five). A plan fails when it scans `instances`, `operations` or `instance_events`
//! sequentially, sorts more than one page of rows or sorts incrementally (an index should give
//! the order), or has a scan that reads and discards more rows than one page: an index walked
//! for its order while a filter throws most rows away, as the primary key walked backward for a
//! name did. (Sorting the few operations of one name, found by the index, is fine.)

use super::MetadataStore;
use super::reads::{
    EVENTS, INSTANCE_BY_ID, LATEST_INSTANCE, LIST_INSTANCES_IN_STATE,
    LIST_INSTANCES_IN_STATE_IN_NAMESPACE, LIST_LIVE_INSTANCES, LIST_LIVE_INSTANCES_IN_NAMESPACE,
    LIST_OPERATIONS, LIST_OPERATIONS_OF_INSTANCE, LIVE_INSTANCE, OPERATION,
};
use crate::model::InstanceState;
use crate::testkit;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The tables whose reads must stay indexed.
const HOT_TABLES: &[&str] = &["instances", "operations", "instance_events"];

/// A scan may discard at most this many rows (one page): an index that serves the query
/// discards none.
const MAX_DISCARDED_ROWS: f64 = 100.0;

/// The page the API asks for by default, plus the one row that tells whether more follow.
const PAGE: i64 = 101;

/// Fills the metadata like a control plane with a long history: 50,000 instances (36,000
/// deleted, 10,000 failed, 2,000 running, 2,000 creating), a create operation for each and a
/// delete for each deleted one (86,000), three events each and 5,000 more for one flapping
/// instance (155,000). Row i (its id) is an incarnation of `db-<(i - 1) % 20000 + 1>`: rows
/// 1-30,000 are deleted, and each name's one row above 30,000 is its latest incarnation, in state
/// `['creating', 'failed' x5, 'deleted' x3, 'running'][i % 10]`.
const FILL: &str = r#"
INSERT INTO instances (uid, name, state, backend, postgres_version, storage_gb, expose, host, port,
    sealed_password, error_code, error_message, active_operation_id, last_operation_id,
    created_at, updated_at, deleted_at, namespace)
SELECT 'uid_' || i, 'db-' || n, state, 'local', '15', 10, 'internal', '127.0.0.1', 20000 + n % 1000,
    'sealed', CASE WHEN state = 'failed' THEN 'deploy_failed' END,
    CASE WHEN state = 'failed' THEN 'the deploy failed' END,
    CASE WHEN state = 'creating' THEN 'op_' || substr(md5('c' || i), 1, 24) END,
    'op_' || substr(md5(CASE WHEN state = 'deleted' THEN 'd' ELSE 'c' END || i), 1, 24),
    at, at, CASE WHEN state = 'deleted' THEN at + interval '1 hour' END,
    CASE WHEN n % 50 = 0 THEN 'team-b' ELSE 'toygres' END
FROM (
    SELECT i, ((i - 1) % 20000) + 1 AS n,
        CASE WHEN i <= 30000 THEN 'deleted'
             ELSE (ARRAY['creating', 'failed', 'failed', 'failed', 'failed', 'failed',
                         'deleted', 'deleted', 'deleted', 'running'])[i % 10 + 1] END AS state,
        timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute' AS at
    FROM generate_series(1, 50000) AS i
) AS g
ORDER BY i;

INSERT INTO operations (id, kind, instance_id, instance_name, status, step, progress_done,
    progress_total, error_code, error_message, error_retryable, created_at, started_at, finished_at)
SELECT 'op_' || substr(md5('c' || id), 1, 24), 'create', id, name,
    CASE state WHEN 'creating' THEN 'running' WHEN 'failed' THEN 'failed' ELSE 'succeeded' END,
    'complete', 5, 5, CASE WHEN state = 'failed' THEN 'deploy_failed' END,
    CASE WHEN state = 'failed' THEN 'the deploy failed' END,
    CASE WHEN state = 'failed' THEN false END,
    created_at, created_at, CASE WHEN state <> 'creating' THEN created_at + interval '2 seconds' END
FROM instances ORDER BY id;

INSERT INTO operations (id, kind, instance_id, instance_name, status, step, progress_done,
    progress_total, created_at, started_at, finished_at)
SELECT 'op_' || substr(md5('d' || id), 1, 24), 'delete', id, name, 'succeeded', 'mark_deleted', 5, 5,
    deleted_at - interval '1 minute', deleted_at - interval '1 minute', deleted_at
FROM instances WHERE state = 'deleted' ORDER BY id;

INSERT INTO instance_events (instance_id, instance_name, at, kind, message)
SELECT id, name, created_at + k * interval '1 second', 'state_changed', 'step ' || k
FROM instances, generate_series(1, 3) AS k ORDER BY id, k;

INSERT INTO instance_events (instance_id, instance_name, at, kind, message)
SELECT i.id, i.name, i.created_at + k * interval '1 minute', 'health',
    CASE WHEN k % 2 = 0 THEN 'healthy' ELSE 'unhealthy' END
FROM instances AS i, generate_series(1, 5000) AS k WHERE i.name = 'db-9' AND i.state = 'running'
ORDER BY k;

ANALYZE;
"#;

/// A parameter of a hot read, rendered as a SQL literal for `EXECUTE`.
enum Arg {
    Text(String),
    Int(i64),
    Null,
}

impl Arg {
    fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    fn literal(&self) -> String {
        match self {
            Self::Text(value) => format!("'{}'", value.replace('\'', "''")),
            Self::Int(value) => value.to_string(),
            Self::Null => "NULL".into(),
        }
    }
}

/// One hot read with the parameters the store would bind.
struct Case {
    what: &'static str,
    sql: &'static str,
    args: Vec<Arg>,
}

/// A fresh, migrated database with the [`FILL`] in it.
async fn filled_store() -> Result<MetadataStore, Box<dyn std::error::Error + Send + Sync>> {
    let url = testkit::fresh_database().await?;
    let store = MetadataStore::connect(&url, 1).await?;
    store.migrate().await?;
    sqlx::raw_sql(FILL).execute(store.pool()).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
        .fetch_one(store.pool())
        .await?;
    assert_eq!(count, 50_000, "the fill made the rows it describes");
    Ok(store)
}

#[tokio::test]
async fn hot_reads_are_served_by_indexes_at_50k_instances() -> TestResult {
    let store = filled_store().await?;
    let cases = cases(&store).await?;

    let mut conn = store.pool().acquire().await?;
    let mut failures = Vec::new();
    for case in &cases {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let plan = explain(&mut conn, case, mode).await?;
            let mut found = Vec::new();
            check(&plan, &mut found);
            if !found.is_empty() {
                failures.push(format!(
                    "{} ({mode}): {}\n  {}\n  plan: {plan}",
                    case.what,
                    found.join("; "),
                    case.sql
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} plans are not served by an index:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n")
    );
    Ok(())
}

/// Paging through every listing with the store gives exactly the rows, in the order, that the
/// queries before the rewrite (`CASE` on the state filter, `$n IS NULL OR` on the instance and the
/// cursors) gave in one go.
#[tokio::test]
async fn rewritten_listings_page_through_the_same_rows_as_before() -> TestResult {
    let store = filled_store().await?;
    let pool = store.pool();

    let mut filters = vec![None];
    filters.extend(InstanceState::ALL.iter().copied().map(Some));
    for filter in filters {
        let before: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM instances \
             WHERE (CASE WHEN $1::text IS NULL THEN state <> 'deleted' ELSE state = $1 END) \
               AND (name, id) > ($2, $3) ORDER BY name, id",
        )
        .bind(filter.map(InstanceState::as_str))
        .bind("")
        .bind(0_i64)
        .fetch_all(pool)
        .await?;
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_instances(filter, None, after, 500).await?;
            paged.extend(page.items.iter().map(|record| record.id));
            match page.items.last() {
                Some(last) if page.has_more => after = Some((last.name.clone(), last.id)),
                _ => break,
            }
        }
        let filled = matches!(
            filter.map(InstanceState::as_str),
            None | Some("creating" | "running" | "deleted" | "failed")
        );
        assert!(
            !filled || !before.is_empty(),
            "{filter:?}: the fill has such rows"
        );
        assert_eq!(paged, before, "instances, state filter {filter:?}");
    }

    for name in [None, Some("db-6"), Some("db-9")] {
        let before: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM operations WHERE ($1::text IS NULL OR instance_name = $1) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(name)
        .fetch_all(pool)
        .await?;
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_operations(name, cursor, 500).await?;
            paged.extend(page.items.iter().map(|record| record.id.clone()));
            match page.items.last() {
                Some(last) if page.has_more => cursor = Some((last.created_at, last.id.clone())),
                _ => break,
            }
        }
        assert!(!before.is_empty(), "{name:?}: the fill has operations");
        assert_eq!(paged, before, "operations of {name:?}");
    }

    let running_id: i64 =
        sqlx::query_scalar("SELECT id FROM instances WHERE name = 'db-9' AND state = 'running'")
            .fetch_one(pool)
            .await?;
    let before: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM instance_events WHERE instance_id = $1 ORDER BY id DESC",
    )
    .bind(running_id)
    .fetch_all(pool)
    .await?;
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.events(running_id, cursor, 500).await?;
        paged.extend(page.items.iter().map(|record| record.id));
        match page.items.last() {
            Some(last) if page.has_more => cursor = Some(last.id),
            _ => break,
        }
    }
    assert_eq!(
        before.len(),
        5_003,
        "three state events and 5,000 health events"
    );
    assert_eq!(paged, before, "events of db-9");
    Ok(())
}

/// The hot reads, with parameters taken from the filled data where they must exist.
async fn cases(
    store: &MetadataStore,
) -> Result<Vec<Case>, Box<dyn std::error::Error + Send + Sync>> {
    // Rows 6, 20,006 and 40,006: deleted, deleted, and deleted again.
    let deleted_name = "db-6";
    // Rows 9, 20,009 (deleted) and 40,009: running, with 5,000 health events.
    let running_name = "db-9";
    let running_id: i64 =
        sqlx::query_scalar("SELECT id FROM instances WHERE name = $1 AND state = 'running'")
            .bind(running_name)
            .fetch_one(store.pool())
            .await?;
    let (event_cursor,): (i64,) = sqlx::query_as(
        "SELECT id FROM instance_events WHERE instance_id = $1 ORDER BY id DESC OFFSET 2500 LIMIT 1",
    )
    .bind(running_id)
    .fetch_one(store.pool())
    .await?;
    let (op_at, operation_id): (String, String) = sqlx::query_as(
        "SELECT created_at::text, id FROM operations ORDER BY created_at DESC, id DESC OFFSET 40000 LIMIT 1",
    )
    .fetch_one(store.pool())
    .await?;
    let (name_op_at, name_op_id): (String, String) = sqlx::query_as(
        "SELECT created_at::text, id FROM operations WHERE instance_name = $1 \
         ORDER BY created_at DESC, id DESC OFFSET 1 LIMIT 1",
    )
    .bind(deleted_name)
    .fetch_one(store.pool())
    .await?;
    Ok(vec![
        Case {
            what: "live_instance (GET /instances/{name}, create conflict)",
            sql: LIVE_INSTANCE,
            args: vec![Arg::text(running_name)],
        },
        Case {
            what: "latest_instance, latest row deleted (GET /instances/{name})",
            sql: LATEST_INSTANCE,
            args: vec![Arg::text(deleted_name)],
        },
        Case {
            what: "latest_instance, latest row running (GET /instances/{name})",
            sql: LATEST_INSTANCE,
            args: vec![Arg::text(running_name)],
        },
        Case {
            what: "instance by id",
            sql: INSTANCE_BY_ID,
            args: vec![Arg::Int(running_id)],
        },
        Case {
            what: "list_instances, first page (GET /instances)",
            sql: LIST_LIVE_INSTANCES,
            args: vec![Arg::text(""), Arg::Int(0), Arg::Int(PAGE)],
        },
        Case {
            what: "list_instances, after a cursor (GET /instances?cursor=)",
            sql: LIST_LIVE_INSTANCES,
            args: vec![Arg::text("db-15000"), Arg::Int(45_000), Arg::Int(PAGE)],
        },
        Case {
            what: "list_instances, state=running (GET /instances?state=running)",
            sql: LIST_INSTANCES_IN_STATE,
            args: vec![
                Arg::text("running"),
                Arg::text(""),
                Arg::Int(0),
                Arg::Int(PAGE),
            ],
        },
        Case {
            what: "list_instances, state=deleted after a cursor",
            sql: LIST_INSTANCES_IN_STATE,
            args: vec![
                Arg::text("deleted"),
                Arg::text("db-12000"),
                Arg::Int(12_000),
                Arg::Int(PAGE),
            ],
        },
        Case {
            what: "list_instances of a namespace (GET /instances?namespace=)",
            sql: LIST_LIVE_INSTANCES_IN_NAMESPACE,
            args: vec![
                Arg::text(""),
                Arg::Int(0),
                Arg::Int(PAGE),
                Arg::text("team-b"),
            ],
        },
        Case {
            what: "list_instances of a namespace in a state (GET /instances?namespace=&state=)",
            sql: LIST_INSTANCES_IN_STATE_IN_NAMESPACE,
            args: vec![
                Arg::text("running"),
                Arg::text(""),
                Arg::Int(0),
                Arg::Int(PAGE),
                Arg::text("toygres"),
            ],
        },
        Case {
            what: "operation (GET /operations/{id})",
            sql: OPERATION,
            args: vec![Arg::text(operation_id.clone())],
        },
        Case {
            what: "list_operations, first page (GET /operations)",
            sql: LIST_OPERATIONS,
            args: vec![Arg::Null, Arg::text(""), Arg::Int(PAGE)],
        },
        Case {
            what: "list_operations, after a cursor (GET /operations?cursor=)",
            sql: LIST_OPERATIONS,
            args: vec![Arg::text(op_at), Arg::text(operation_id), Arg::Int(PAGE)],
        },
        Case {
            what: "list_operations of a name, first page (GET /operations?instance=)",
            sql: LIST_OPERATIONS_OF_INSTANCE,
            args: vec![
                Arg::text(deleted_name),
                Arg::Null,
                Arg::text(""),
                Arg::Int(PAGE),
            ],
        },
        Case {
            what: "list_operations of a name, after a cursor",
            sql: LIST_OPERATIONS_OF_INSTANCE,
            args: vec![
                Arg::text(deleted_name),
                Arg::text(name_op_at),
                Arg::text(name_op_id),
                Arg::Int(PAGE),
            ],
        },
        Case {
            what: "events, first page (GET /instances/{name}/events)",
            sql: EVENTS,
            args: vec![Arg::Int(running_id), Arg::Int(i64::MAX), Arg::Int(PAGE)],
        },
        Case {
            what: "events, after a cursor",
            sql: EVENTS,
            args: vec![Arg::Int(running_id), Arg::Int(event_cursor), Arg::Int(PAGE)],
        },
    ])
}

/// Prepares `case.sql` as is, and explains (with ANALYZE) its execution under `plan_cache_mode`.
async fn explain(
    conn: &mut sqlx::PgConnection,
    case: &Case,
    plan_cache_mode: &str,
) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
    sqlx::raw_sql(&format!("PREPARE hot_read AS {}", case.sql))
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(&format!("SET plan_cache_mode = {plan_cache_mode}"))
        .execute(&mut *conn)
        .await?;
    let args: Vec<String> = case.args.iter().map(Arg::literal).collect();
    let explained = sqlx::raw_sql(&format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE hot_read({})",
        args.join(", ")
    ))
    .fetch_one(&mut *conn)
    .await;
    sqlx::raw_sql("DEALLOCATE hot_read; RESET plan_cache_mode")
        .execute(&mut *conn)
        .await?;
    let row = explained?;
    let document: Value = sqlx::Row::try_get(&row, 0)?;
    Ok(document[0]["Plan"].clone())
}

/// Appends what is wrong with `node` and the nodes below it to `problems`.
fn check(node: &Value, problems: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    let relation = node["Relation Name"].as_str().unwrap_or("");
    let hot = HOT_TABLES.contains(&relation);
    if kind == "Seq Scan" && hot {
        problems.push(format!("a sequential scan of {relation}"));
    }
    if kind == "Incremental Sort" {
        problems.push("an Incremental Sort: the index gives only part of the order".into());
    }
    if kind == "Sort" {
        let sorted = rows_below(node);
        if sorted > PAGE as f64 {
            problems.push(format!(
                "a Sort of {sorted} rows where an index should give the order"
            ));
        }
    }
    if hot {
        let discarded = ["Rows Removed by Filter", "Rows Removed by Index Recheck"]
            .iter()
            .filter_map(|field| node[*field].as_f64())
            .sum::<f64>();
        if discarded > MAX_DISCARDED_ROWS {
            let index = node["Index Name"].as_str().unwrap_or("-");
            problems.push(format!(
                "{kind} of {relation} (index {index}) discards {discarded} rows"
            ));
        }
    }
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            check(child, problems);
        }
    }
}

/// The rows the children of `node` produced, over all their loops (and parallel workers).
fn rows_below(node: &Value) -> f64 {
    node["Plans"].as_array().map_or(0.0, |children| {
        children
            .iter()
            .map(|child| {
                child["Actual Rows"].as_f64().unwrap_or(0.0)
                    * child["Actual Loops"].as_f64().unwrap_or(1.0)
            })
            .sum()
    })
}
