//! Template clusters: one data dir per offered major version, made once by `initdb` (with
//! Toygres's settings and the control plane's roles, none of them with a password), and copied
//! for every new instance instead of running `initdb` again.
//!
//! ```text
//! <root>/.templates/.lock                  held while one process makes a template
//! <root>/.templates/<major>-<build>/data   the template's data dir (clean shut down)
//! <root>/.templates/<major>-<build>/ready  written once the template is complete
//! ```
//! `<build>` is a digest of the binaries (`postgres --version`, the binary's size and time): a
//! template is remade when the installed binaries change, and templates of older builds of the
//! same major version are removed. A copy uses `copy_file_range`, which shares the blocks
//! (a reflink) on file systems that can (XFS, Btrfs), and is flushed to disk (`syncfs`) before
//! it is renamed into place, as `initdb` flushes what it writes.

use super::{LocalBackend, permanent, transient};
use crate::backend::BackendError;
use crate::fslock::FileLock;
use crate::pgcluster::{Bootstrap, Listen, PgCluster, remove_dir_if_present};
use crate::privilege;
use crate::roles::{ADMIN, sql};
use crate::socket_dir::socket_dir_for;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of the templates, under the backend root.
pub(super) const TEMPLATES: &str = ".templates";
/// Written in a template's folder once it is complete.
const READY: &str = "ready";
/// How long making a template may take to start and stop its server.
const TEMPLATE_START: Duration = Duration::from_secs(60);

impl LocalBackend {
    /// The data dir of the template of major `version`, made when missing (once per build of
    /// the binaries, shared by every process on this root).
    pub(super) async fn template(&self, version: &str) -> Result<PathBuf, BackendError> {
        if let Some(known) = self
            .inner
            .templates
            .lock()
            .ok()
            .and_then(|known| known.get(version).cloned())
            // Still there (someone may have removed it to have it remade).
            .filter(|data| data.with_file_name(READY).exists())
        {
            return Ok(known);
        }
        let bin_dir = self
            .inner
            .binaries
            .bin_dir(version)
            .ok_or_else(|| BackendError::UnsupportedVersion {
                requested: version.to_string(),
                offered: self.inner.binaries.versions().join(", "),
            })?
            .to_path_buf();
        let key = format!("{version}-{}", build_digest(&bin_dir)?);
        let templates = self.inner.root.join(TEMPLATES);
        std::fs::create_dir_all(&templates).map_err(transient)?;
        privilege::keep_for_root(&self.inner.run_as, &templates, 0o711).map_err(permanent)?;
        let _lock = FileLock::acquire(&templates.join(".lock"))
            .await
            .map_err(transient)?;
        let folder = templates.join(&key);
        if !folder.join(READY).exists() {
            self.make_template(version, &bin_dir, &templates, &folder)
                .await?;
        }
        let data = folder.join("data");
        if let Ok(mut known) = self.inner.templates.lock() {
            known.insert(version.to_string(), data.clone());
        }
        Ok(data)
    }

    /// Makes the template in `folder` (removing a half-made one, and those of other builds of
    /// the same major version); the caller holds the templates' lock.
    async fn make_template(
        &self,
        version: &str,
        bin_dir: &Path,
        templates: &Path,
        folder: &Path,
    ) -> Result<(), BackendError> {
        let started = std::time::Instant::now();
        let major_prefix = format!("{version}-");
        for entry in std::fs::read_dir(templates).map_err(transient)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&major_prefix)
            {
                self.stop_template(&entry.path(), bin_dir).await;
                remove_dir_if_present(&entry.path())
                    .await
                    .map_err(transient)?;
            }
        }
        // The service user's (initdb and the template's server run as it), private.
        std::fs::create_dir_all(folder).map_err(transient)?;
        privilege::set_mode(folder, 0o700).map_err(permanent)?;
        self.inner.run_as.hand_over(folder).map_err(permanent)?;
        let cluster = template_cluster(folder, bin_dir, self.inner.run_as);
        std::fs::write(folder.join("pg_hba.conf"), template_hba()).map_err(transient)?;
        cluster.init(Bootstrap::Template).await.map_err(transient)?;
        cluster
            .start_waiting(TEMPLATE_START)
            .await
            .map_err(transient)?;
        let configured = self.configure_template(version, &cluster).await;
        cluster.stop().await.map_err(transient)?;
        configured?;
        // What a server started by hand (without Toygres's command line) uses: the rules of
        // every instance, as initdb with scram-sha-256 would have written them.
        std::fs::write(cluster.data_dir.join("pg_hba.conf"), super::HBA_RULES)
            .map_err(transient)?;
        remove_dir_if_present(&socket_dir_for(folder))
            .await
            .map_err(transient)?;
        std::fs::write(folder.join(READY), version).map_err(transient)?;
        tracing::info!(
            version,
            folder = %folder.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "made the template cluster new instances are copied from"
        );
        Ok(())
    }

    /// Sets the control plane's roles up in the template, without passwords (each copy gets
    /// its own at create).
    async fn configure_template(
        &self,
        version: &str,
        cluster: &PgCluster,
    ) -> Result<(), BackendError> {
        let major: u32 = version
            .parse()
            .map_err(|_| BackendError::Permanent(format!("unknown major version {version}")))?;
        let Listen::Socket { dir } = &cluster.listen else {
            return Err(BackendError::Permanent(
                "a template listens on a socket".into(),
            ));
        };
        let client = super::restore::connect(dir, super::restore::SCRATCH_PORT, None)
            .await
            .map_err(super::backups::backup_failure)?;
        let mut script = String::from("BEGIN;\n");
        for statement in sql::template(major) {
            script.push_str(&statement);
            script.push_str(";\n");
        }
        script.push_str("COMMIT;\nCHECKPOINT;");
        client
            .batch_execute(&script)
            .await
            .map_err(|error| BackendError::Permanent(format!("configuring the template: {error}")))
    }

    /// Stops a template's server left running by a process that died while making it.
    async fn stop_template(&self, folder: &Path, bin_dir: &Path) {
        let cluster = template_cluster(folder, bin_dir, self.inner.run_as);
        if cluster.data_dir.join("PG_VERSION").exists() {
            let _ = cluster.stop().await;
        }
    }

    /// Copies the template of `version` into `target` (which must not exist) for a server on
    /// `port`: through a scratch folder beside it, with the port in its `postgresql.conf` (the
    /// command line says it too), flushed to disk, handed to `owner` and renamed into place.
    pub(super) async fn copy_template(
        &self,
        version: &str,
        target: &Path,
        port: u16,
        owner: privilege::RunAs,
    ) -> Result<(), BackendError> {
        let template = self.template(version).await?;
        remove_stale_copies(target).await?;
        let scratch = target.with_extension(format!(
            "copy-{}-{}",
            std::process::id(),
            super::unique_suffix()
        ));
        let copied = {
            let scratch = scratch.clone();
            tokio::task::spawn_blocking(move || -> Result<(), std::io::Error> {
                let started = std::time::Instant::now();
                copy_tree(&template, &scratch)?;
                append_listen(&scratch, port)?;
                let copied = started.elapsed();
                sync_file_system(&scratch)?;
                tracing::debug!(
                    copy_ms = copied.as_millis() as u64,
                    sync_ms = (started.elapsed() - copied).as_millis() as u64,
                    "copied the template"
                );
                Ok(())
            })
            .await
            .map_err(transient)?
        };
        if let Err(error) = copied {
            let _ = remove_dir_if_present(&scratch).await;
            return Err(transient(format!("copying the template: {error}")));
        }
        owner.hand_over_tree(&scratch).map_err(permanent)?;
        std::fs::rename(&scratch, target).map_err(transient)
    }
}

/// The cluster a template is made with: socket only, as the service user.
fn template_cluster(folder: &Path, bin_dir: &Path, run_as: privilege::RunAs) -> PgCluster {
    PgCluster {
        bin_dir: bin_dir.to_path_buf(),
        data_dir: folder.join("data"),
        log_file: folder.join("postgres.log"),
        listen: Listen::Socket {
            dir: socket_dir_for(folder),
        },
        run_as,
        init_as: run_as,
        hba_file: Some(folder.join("pg_hba.conf")),
        settings: Default::default(),
        pinned: Vec::new(),
    }
}

/// Who may connect to a template while it is made: the control plane, over its socket.
fn template_hba() -> String {
    format!("local all {ADMIN} trust\n")
}

/// A digest of the binaries in `bin_dir`: their version and the `postgres` binary's size and
/// modification time (a reinstall of the same version makes a new template too).
fn build_digest(bin_dir: &Path) -> Result<String, BackendError> {
    use std::os::unix::fs::MetadataExt as _;
    let postgres = bin_dir.join("postgres");
    let output = std::process::Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|error| transient(format!("{}: {error}", postgres.display())))?;
    let meta = std::fs::metadata(&postgres).map_err(transient)?;
    let mut digest = Sha256::new();
    digest.update(&output.stdout);
    digest.update(meta.size().to_le_bytes());
    digest.update(meta.mtime().to_le_bytes());
    Ok(digest.finalize()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Appends where a copy listens to its `postgresql.conf` (as initdb's copies had it).
fn append_listen(data_dir: &Path, port: u16) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(data_dir.join("postgresql.conf"))?;
    write!(
        file,
        "# This copy's (also pinned on the postmaster's command line)\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
    )
}

/// Removes scratch copies an interrupted copy into `target` left beside it.
async fn remove_stale_copies(target: &Path) -> Result<(), BackendError> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.copy-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_dir_if_present(&entry.path())
                .await
                .map_err(transient)?;
        }
    }
    Ok(())
}

/// Copies the tree `from` into the new folder `to`, keeping modes; files through
/// `copy_file_range` (shared blocks where the file system can), except WAL segments, which are
/// mostly zeros and copied sparsely. Links are not followed (a template has none).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let mode = std::fs::symlink_metadata(from)?.permissions().mode() & 0o7777;
    std::fs::DirBuilder::new().mode(mode).create(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() && from.ends_with("pg_wal") {
            copy_sparse(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the file `from` to the new file `to` (same mode), leaving holes where `from` has
/// blocks of zeros: a template's WAL segment is 16 MB of which the checkpoint uses a part, and
/// reading a hole gives the zeros PostgreSQL expects of unused WAL.
fn copy_sparse(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Seek as _, SeekFrom, Write as _};
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    const BLOCK: usize = 8192;
    let mut source = std::fs::File::open(from)?;
    let mode = source.metadata()?.permissions().mode() & 0o7777;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)?;
    let mut block = vec![0u8; BLOCK];
    let mut length: u64 = 0;
    loop {
        let read = read_block(&mut source, &mut block)?;
        if read == 0 {
            break;
        }
        if block[..read].iter().any(|byte| *byte != 0) {
            target.seek(SeekFrom::Start(length))?;
            target.write_all(&block[..read])?;
        }
        length += read as u64;
    }
    target.set_len(length)
}

/// Fills `block` from `source` as far as it goes; returns how much was read (0 at the end).
fn read_block(source: &mut std::fs::File, block: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read as _;
    let mut filled = 0;
    while filled < block.len() {
        match source.read(&mut block[filled..])? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

/// Flushes the file system holding `path` to disk.
fn sync_file_system(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let folder = std::fs::File::open(path)?;
    // SAFETY: syncfs on a file descriptor we own; it touches no memory of ours.
    if unsafe { libc::syncfs(folder.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_modes_and_contents() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("base/1"))?;
        privilege::set_mode(&from, 0o700)?;
        std::fs::write(from.join("base/1/1259"), b"catalog")?;
        std::fs::write(from.join("PG_VERSION"), b"15\n")?;
        privilege::set_mode(&from.join("PG_VERSION"), 0o600)?;
        let to = dir.path().join("to");
        copy_tree(&from, &to)?;
        assert_eq!(std::fs::read(to.join("base/1/1259"))?, b"catalog");
        assert_eq!(std::fs::read(to.join("PG_VERSION"))?, b"15\n");
        assert_eq!(std::fs::metadata(&to)?.permissions().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(to.join("PG_VERSION"))?
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(copy_tree(&from, &to).is_err(), "the target must be new");
        Ok(())
    }

    #[test]
    fn wal_segments_are_copied_with_holes_and_read_back_the_same()
    -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir()?;
        let from = dir.path().join("from");
        std::fs::create_dir_all(from.join("pg_wal"))?;
        let mut segment = vec![0u8; 1 << 20];
        segment[..100].fill(7);
        segment[500_000..500_010].fill(9);
        std::fs::write(from.join("pg_wal/000000010000000000000001"), &segment)?;
        let to = dir.path().join("to");
        copy_tree(&from, &to)?;
        let copied = to.join("pg_wal/000000010000000000000001");
        assert_eq!(std::fs::read(&copied)?, segment);
        // Two blocks written, the rest holes (512-byte units).
        assert!(std::fs::metadata(&copied)?.blocks() * 512 < 64 * 1024);
        Ok(())
    }

    #[test]
    fn builds_differ_by_binary() -> Result<(), Box<dyn std::error::Error>> {
        let binaries = super::super::PgBinaries::discover(None);
        let newest = binaries.newest().ok_or("no PostgreSQL binaries")?;
        let bin_dir = binaries.bin_dir(&newest).ok_or("no bin dir")?;
        let digest = build_digest(bin_dir)?;
        assert_eq!(digest.len(), 12);
        assert_eq!(digest, build_digest(bin_dir)?, "stable for one build");
        Ok(())
    }
}
