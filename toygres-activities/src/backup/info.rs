//! Reading `pgbackrest info --output=json`: the backups of a stanza.

use super::BackupError;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The annotation that ties a pgBackRest backup to the Toygres backup row that asked for it.
pub const ANNOTATION: &str = "toygres-backup-id";

/// One backup as pgBackRest describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct BackupSummary {
    /// pgBackRest's label.
    pub label: String,
    /// `full`, `diff` or `incr`.
    pub kind: String,
    /// When it started copying.
    pub started_at: DateTime<Utc>,
    /// Its consistent point.
    pub stopped_at: DateTime<Utc>,
    /// WAL position where it started.
    pub start_lsn: Option<String>,
    /// WAL position where it stopped.
    pub stop_lsn: Option<String>,
    /// Size of the database it copied.
    pub size_bytes: i64,
    /// Size in the repository.
    pub repo_size_bytes: i64,
    /// The Toygres backup id it was annotated with.
    pub backup_id: Option<String>,
    /// Whether pgBackRest found errors (page checksums) in it.
    pub error: bool,
}

#[derive(Deserialize)]
struct Stanza {
    #[serde(default)]
    backup: Vec<Backup>,
}

#[derive(Deserialize)]
struct Backup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: Timestamps,
    #[serde(default)]
    lsn: Option<Lsn>,
    info: Info,
    #[serde(default)]
    annotation: Option<BTreeMap<String, String>>,
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Deserialize)]
struct Timestamps {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct Lsn {
    start: Option<String>,
    stop: Option<String>,
}

#[derive(Deserialize)]
struct Info {
    size: i64,
    repository: Repository,
}

#[derive(Deserialize)]
struct Repository {
    #[serde(default)]
    delta: i64,
}

/// The backups of the (one) stanza in `json`, oldest first.
pub fn parse(json: &str) -> Result<Vec<BackupSummary>, BackupError> {
    let stanzas: Vec<Stanza> =
        serde_json::from_str(json).map_err(|error| BackupError::Output(error.to_string()))?;
    let time = |seconds: i64| {
        DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| BackupError::Output(format!("bad timestamp {seconds}")))
    };
    let mut backups = Vec::new();
    for backup in stanzas.into_iter().flat_map(|stanza| stanza.backup) {
        let (start_lsn, stop_lsn) = backup
            .lsn
            .map(|lsn| (lsn.start, lsn.stop))
            .unwrap_or_default();
        backups.push(BackupSummary {
            started_at: time(backup.timestamp.start)?,
            stopped_at: time(backup.timestamp.stop)?,
            backup_id: backup
                .annotation
                .as_ref()
                .and_then(|notes| notes.get(ANNOTATION).cloned()),
            label: backup.label,
            kind: backup.kind,
            start_lsn,
            stop_lsn,
            size_bytes: backup.info.size,
            repo_size_bytes: backup.info.repository.delta,
            error: backup.error.unwrap_or(false),
        });
    }
    Ok(backups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = r#"[{"archive":[{"id":"15-1","max":"000000010000000000000008","min":"000000010000000000000001"}],
      "backup":[{"archive":{"start":"000000010000000000000007","stop":"000000010000000000000008"},
        "backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
        "info":{"delta":23295578,"repository":{"delta":3079525,"size":3079525},"size":23295578},
        "label":"20261203-091726F","lsn":{"start":"0/7000028","stop":"0/8000088"},"prior":null,
        "reference":null,"timestamp":{"start":1796289446,"stop":1796289473},"type":"full",
        "annotation":{"toygres-backup-id":"bk_abc"}}],
      "cipher":"none","name":"ins_x","status":{"code":0,"message":"ok"}}]"#;

    #[test]
    fn reads_labels_sizes_times_and_our_annotation() -> Result<(), BackupError> {
        let backups = parse(INFO)?;
        assert_eq!(backups.len(), 1);
        let backup = &backups[0];
        assert_eq!(backup.label, "20261203-091726F");
        assert_eq!(backup.kind, "full");
        assert_eq!(backup.backup_id.as_deref(), Some("bk_abc"));
        assert_eq!(backup.size_bytes, 23295578);
        assert_eq!(backup.repo_size_bytes, 3079525);
        assert_eq!(backup.stop_lsn.as_deref(), Some("0/8000088"));
        assert_eq!(backup.stopped_at.timestamp(), 1796289473);
        assert!(parse("[{\"backup\": [], \"name\": \"x\"}]")?.is_empty());
        assert!(parse("not json").is_err());
        Ok(())
    }
}
