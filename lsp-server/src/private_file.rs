//! Secrets in the data dir (the wallet's and the Lightning node's seeds): written whole, readable
//! by the LSP's user alone.
//!
//! [`write`] goes through a temporary file created with mode 0600, an fsync and a rename, then
//! syncs the directory: a crash leaves either no file or the whole file, never a half-written
//! seed, and the file is never readable by others, not even for a moment.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file operation that failed, with what was being done and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub(crate) struct FileError {
    /// What was being done, e.g. "create".
    pub(crate) action: &'static str,
    /// The file or directory.
    pub(crate) path: PathBuf,
    /// The OS error.
    #[source]
    pub(crate) source: std::io::Error,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_path_buf();
    move |source| FileError {
        action,
        path,
        source,
    }
}

/// Writes `contents` to `path` (in `dir`) with mode 0600, atomically and durably.
pub(crate) fn write(dir: &Path, path: &Path, contents: &str) -> Result<(), FileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover from a crash may have other permissions: start afresh.
    if let Err(source) = std::fs::remove_file(&tmp) {
        if source.kind() != std::io::ErrorKind::NotFound {
            return Err(io("remove", &tmp)(source));
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(io("create", &tmp))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    // Make the rename itself durable.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))?;
    Ok(())
}

/// A secret should be readable by the LSP's user alone; says so (without stopping) if not.
pub(crate) fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "a seed file is readable by other users; run chmod 600 on it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_whole_files_only_the_owner_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.seed");
        // A leftover temporary file from a crash is replaced, not reused.
        std::fs::write(dir.path().join("x.seed.tmp"), "stale").unwrap();
        super::write(dir.path(), &path, "abc").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
        assert!(!dir.path().join("x.seed.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
