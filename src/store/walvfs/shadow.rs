//! The sync shadow: a test facility that keeps, beside the files of a database, what a disk would
//! hold after a power cut — each file as it was when it was last synced.
//!
//! It is on only when the environment variable `OTPGATE_TEST_SYNC_SHADOW` names a directory when
//! the VFS is installed; the crash tests set it for the server they start, and nothing else
//! should. Off, it costs a check of an empty `Option` per write, truncation and sync. On, every
//! main database file and WAL file opened through the VFS has a shadow file of the same name in
//! that directory:
//! - at its first open in the process, the shadow is a copy of the file: what is on the disk when
//!   the process starts counts as durable;
//! - each write and truncation through the VFS is noted once it reached the file;
//! - each sync first copies the noted ranges from the file into its shadow and applies the noted
//!   truncations, in order, and only then lets the operating system sync the file.
//!
//! So a shadow never holds a write that no sync covered. It may hold less than a disk would: a
//! write that another thread made between the copy and the sync waits for the next sync, and
//! writes of other processes (console commands) are not seen at all. Either way the shadow errs
//! on the side of losing data. After `kill -9`, putting the shadows in place of the database and
//! its WAL (and deleting the `-shm` file, which SQLite rebuilds) gives the files a power cut would
//! leave if every write since the last sync of each file were dropped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The environment variable that turns the facility on and names the shadows' directory.
pub const VARIABLE: &str = "OTPGATE_TEST_SYNC_SHADOW";

/// The shadows of one process: one per file name, shared by every connection that opens it.
pub struct Shadows {
    directory: PathBuf,
    files: Mutex<HashMap<PathBuf, Arc<Tracked>>>,
}

static SHADOWS: OnceLock<Option<Shadows>> = OnceLock::new();

/// The process's shadows when the facility is on; the environment is read at the first call.
pub fn active() -> Option<&'static Shadows> {
    SHADOWS
        .get_or_init(|| {
            let directory = std::env::var_os(VARIABLE).filter(|value| !value.is_empty())?;
            Some(Shadows::new(PathBuf::from(directory)))
        })
        .as_ref()
}

impl Shadows {
    pub fn new(directory: PathBuf) -> Shadows {
        Shadows {
            directory,
            files: Mutex::default(),
        }
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The shadow of the file at `path` (as SQLite names it), made at its first open.
    pub fn track(&self, path: &[u8]) -> std::io::Result<Arc<Tracked>> {
        let file = PathBuf::from(OsStr::from_bytes(path));
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tracked) = files.get(&file) {
            return Ok(tracked.clone());
        }
        let name = file.file_name().ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidInput, "a database file without a name")
        })?;
        std::fs::create_dir_all(&self.directory)?;
        let shadow = self.directory.join(name);
        match std::fs::copy(&file, &shadow) {
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {
                File::create(&shadow)?;
            }
            Err(error) => return Err(error),
        }
        let tracked = Arc::new(Tracked {
            file: file.clone(),
            shadow,
            changes: Mutex::default(),
        });
        files.insert(file, tracked.clone());
        Ok(tracked)
    }
}

/// One file and its shadow, with the changes not yet copied.
pub struct Tracked {
    file: PathBuf,
    shadow: PathBuf,
    changes: Mutex<Vec<Change>>,
}

/// A change made to a file since its last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Wrote { at: u64, end: u64 },
    Truncated(u64),
}

/// How much one read of a range copies at a time.
const COPY_CHUNK: usize = 64 << 10;

impl Tracked {
    /// Notes a write of `amount` bytes at `offset` that reached the file.
    pub fn wrote(&self, offset: i64, amount: usize) {
        let (Ok(at), Ok(amount)) = (u64::try_from(offset), u64::try_from(amount)) else {
            return;
        };
        let end = at + amount;
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        match changes.last_mut() {
            // Appends, and a page written again, do not grow the list.
            Some(Change::Wrote {
                at: last_at,
                end: last_end,
            }) if at <= *last_end && end >= *last_at => {
                *last_at = (*last_at).min(at);
                *last_end = (*last_end).max(end);
            }
            _ => changes.push(Change::Wrote { at, end }),
        }
    }

    /// Notes that the file was truncated (or extended) to `size` bytes.
    pub fn truncated(&self, size: i64) {
        if let Ok(size) = u64::try_from(size) {
            let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
            changes.push(Change::Truncated(size));
        }
    }

    /// Copies what changed since the last sync into the shadow; runs just before a sync.
    pub fn capture(&self) -> std::io::Result<()> {
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        if changes.is_empty() {
            return Ok(());
        }
        let source = File::open(&self.file)?;
        let shadow = OpenOptions::new().write(true).open(&self.shadow)?;
        let mut buffer = vec![0u8; COPY_CHUNK];
        for change in changes.iter() {
            match *change {
                Change::Truncated(size) => shadow.set_len(size)?,
                Change::Wrote { at, end } => copy_range(&source, &shadow, at, end, &mut buffer)?,
            }
        }
        changes.clear();
        Ok(())
    }
}

/// Copies the bytes `at..end` of `source` into `shadow` at the same place; a range past the
/// source's end (it was truncated since) copies what is left of it.
fn copy_range(
    source: &File,
    shadow: &File,
    mut at: u64,
    end: u64,
    buffer: &mut [u8],
) -> std::io::Result<()> {
    while at < end {
        let wanted = usize::try_from(end - at).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = source.read_at(&mut buffer[..wanted], at)?;
        if read == 0 {
            break;
        }
        shadow.write_all_at(&buffer[..read], at)?;
        at += read as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_at(file: &Path, offset: u64, bytes: &[u8]) {
        let handle = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .expect("open");
        handle.write_all_at(bytes, offset).expect("write");
    }

    #[test]
    fn a_shadow_holds_what_was_there_at_the_last_sync_and_nothing_later() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("data.db");
        write_at(&file, 0, b"durable before the process started");
        let shadows = Shadows::new(dir.path().join("shadow"));
        let tracked = shadows.track(file.as_os_str().as_bytes()).expect("tracked");
        let shadow = dir.path().join("shadow/data.db");
        assert_eq!(
            std::fs::read(&shadow).expect("shadow"),
            b"durable before the process started"
        );

        write_at(&file, 0, b"DURABLE");
        tracked.wrote(0, 7);
        write_at(&file, 34, b", and appended");
        tracked.wrote(34, 14);
        tracked.capture().expect("sync");
        let synced = b"DURABLE before the process started, and appended";
        assert_eq!(std::fs::read(&shadow).expect("shadow"), synced);

        // Written after the last sync, then the process dies: the shadow does not have it.
        write_at(&file, 0, b"lost");
        tracked.wrote(0, 4);
        assert_eq!(std::fs::read(&shadow).expect("shadow"), synced);

        // A truncation is applied in its place among the writes.
        OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open")
            .set_len(4)
            .expect("truncate");
        tracked.truncated(4);
        write_at(&file, 4, b"!");
        tracked.wrote(4, 1);
        tracked.capture().expect("sync");
        assert_eq!(std::fs::read(&shadow).expect("shadow"), b"lost!");

        // A second open of the same file shares the notes rather than copying it again.
        let again = shadows.track(file.as_os_str().as_bytes()).expect("tracked");
        assert!(Arc::ptr_eq(&tracked, &again));
    }
}
