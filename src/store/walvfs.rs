//! A VFS that hands the WAL appends of a transaction to the operating system in one write.
//!
//! SQLite writes each WAL frame with two `pwrite`s: its 24-byte header, then the page. An
//! authentication adds about three frames (a token's row, an audit row and an audit index
//! entry at random places), so the writer made some six system calls per request, and the
//! kernel copied into each 4 KiB page of the file four times over; `pwrite` was a fifth of the
//! writer thread's time under load.
//!
//! This VFS is SQLite's default one (`unix`) with the WAL file's writes gathered: consecutive
//! writes collect in a buffer, and the buffer goes to the file in one write
//! - as soon as the page of a commit frame is in it (the frame header's second field, the
//!   database size after the commit, is non-zero only in commit frames), so that a committed
//!   transaction is in the file before SQLite publishes it to other connections and before
//!   the writer answers anyone: `kill -9` loses no acknowledged write, exactly as before;
//! - when the connection releases the WAL's write lock (a shared-memory lock of the database
//!   file, which is linked to its WAL file for this): what is left then belongs to a
//!   transaction that rolled back after its cache spilled frames past the log's end, and it
//!   must reach the file before another connection may write there;
//! - before anything else touches the file: a write elsewhere, a read, a sync, a truncation,
//!   its size, a file control, its closing;
//! - once it holds `FLUSH_AT` bytes (a transaction larger than that, like an import).
//!
//! (One write means one call of the default VFS per 124 KiB, the most it takes at once.) As a
//! second guard, the shared-memory barrier SQLite passes just before it publishes a commit
//! writes the buffer out too.
//!
//! The file thus sees the same writes in the same order, only fewer and larger. Two sequences
//! end a commit without a page after its header, and both are covered:
//! - when a transaction overwrote frames it had written before (a cache spill), SQLite rewrites
//!   the checksums of the frames from there on, the commit frame's header last. Such a header
//!   is written where the previous write did not end, and is written out at once;
//! - with `synchronous = FULL` on a disk without power-safe overwrites, SQLite pads the commit
//!   and may split the last padding frame at a sync: the write after a sync is written out
//!   at once (it is still looked at, since after a log restart's synced header it is the
//!   first frame's header, which may be a commit's).
//!
//! Every other file, and every other method of the WAL file, goes to the default VFS unchanged.
//!
//! For the crash tests, the VFS can also keep the files as a disk would hold them after a power
//! cut (`shadow`, on only when its environment variable is set).

mod shadow;

use std::cell::Cell;
use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::{Arc, OnceLock};

use rusqlite::ffi;

/// The name this VFS registers under.
const NAME: &CStr = c"otpgate";

/// The size of a WAL frame's header, and of the WAL file's own header before the first frame.
const FRAME_HEADER: c_int = 24;
const WAL_HEADER: i64 = 32;

/// A buffer this long is written out before its transaction ends.
const FLUSH_AT: usize = 1 << 20;

/// The most one write hands to the default VFS: SQLite's `unix` VFS takes under 128 KiB.
const MOST_PER_WRITE: usize = 124 << 10;

/// The default VFS, which ours wraps.
struct DefaultVfs(*mut ffi::sqlite3_vfs);

// SAFETY: SQLite's VFS objects are shared by every thread of the process by design; this
// pointer is written once, before ours is registered, and only read afterwards.
unsafe impl Send for DefaultVfs {}
unsafe impl Sync for DefaultVfs {}

static DEFAULT: OnceLock<DefaultVfs> = OnceLock::new();

thread_local! {
    /// Writes that reached WAL files from this thread, through this VFS.
    static WAL_WRITES: Cell<u64> = const { Cell::new(0) };
    /// Commit headers written where the previous write did not end (checksum rewrites).
    static REWRITTEN_COMMITS: Cell<u64> = const { Cell::new(0) };
}

/// How many writes reached WAL files from this thread through this VFS: lets a test count.
#[cfg(test)]
fn wal_writes_on_this_thread() -> u64 {
    WAL_WRITES.with(Cell::get)
}

/// How many commit frame headers this thread rewrote (see the module comment): lets a test see
/// that it exercised that path.
#[cfg(test)]
fn rewritten_commits_on_this_thread() -> u64 {
    REWRITTEN_COMMITS.with(Cell::get)
}

/// The directory of the sync shadow (see `shadow`), when that test facility is on.
pub fn sync_shadow_directory() -> Option<&'static std::path::Path> {
    shadow::active().map(shadow::Shadows::directory)
}

/// Registers this VFS as the default for every connection opened from now on; runs once and
/// says whether it is in use. It initialises SQLite, so a page cache must be installed before.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| unsafe { register() })
}

unsafe fn register() -> bool {
    // SAFETY: a null name asks for the default VFS; SQLite initialises itself first.
    let default = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if default.is_null() {
        return false;
    }
    // SAFETY: SQLite's VFS objects live as long as the process.
    let default_vfs = unsafe { *default };
    let Ok(file_size) = c_int::try_from(INNER_AT) else {
        return false;
    };
    if default_vfs.xOpen.is_none() || DEFAULT.set(DefaultVfs(default)).is_err() {
        return false;
    }
    // The test facility reads the environment once, before any file is opened.
    let _ = shadow::active();
    // Every method but `xOpen` is the default VFS's own. SQLite's `unix` VFS reads nothing
    // from the VFS object in them but the longest path name, which this copy keeps.
    let ours = Box::new(ffi::sqlite3_vfs {
        szOsFile: file_size + default_vfs.szOsFile,
        pNext: ptr::null_mut(),
        zName: NAME.as_ptr(),
        xOpen: Some(open),
        ..default_vfs
    });
    // SAFETY: registered VFS objects must live forever; this one is leaked on purpose.
    unsafe { ffi::sqlite3_vfs_register(Box::into_raw(ours), 1) == ffi::SQLITE_OK }
}

/// One open file: SQLite's header, the default VFS's file, and for a WAL file its buffer.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the same allocation at `INNER_AT`.
    inner: *mut ffi::sqlite3_file,
    /// Some for a WAL file.
    wal: Option<Box<Pending>>,
    /// A database file's open WAL file, and a WAL file's database file (each null when
    /// there is none): the database file's shared-memory methods mark where a transaction
    /// ends, and write the WAL's buffer out.
    link: *mut File,
    /// The file's sync shadow, only while that test facility is on.
    shadow: Option<Arc<shadow::Tracked>>,
}

/// Where the default VFS's file starts in the allocation SQLite makes for ours.
const INNER_AT: usize = std::mem::size_of::<File>().next_multiple_of(16);

/// The WAL writes not yet handed to the file.
struct Pending {
    bytes: Vec<u8>,
    /// The file offset of `bytes[0]`.
    at: i64,
    /// Where the last write through this file ended (-1 before the first).
    last_end: i64,
    /// Where the page of the last commit frame header goes, until it is written.
    commit_page: Option<i64>,
    /// The next write is written out at once (it follows a sync).
    write_through: bool,
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(default) = DEFAULT.get().map(|vfs| vfs.0) else {
        return ffi::SQLITE_CANTOPEN;
    };
    // SAFETY: SQLite allocated `szOsFile` bytes for `file`, aligned for any type; ours starts
    // with a `File` and leaves the default VFS its own size at `INNER_AT`.
    let inner = unsafe { file.cast::<u8>().add(INNER_AT).cast::<ffi::sqlite3_file>() };
    let ours = file.cast::<File>();
    // Until the default VFS has opened the file, SQLite must not call our methods on it.
    unsafe { ptr::addr_of_mut!((*ours).base.pMethods).write(ptr::null()) };
    // SAFETY: the default VFS's `xOpen` was checked at registration.
    let opened = unsafe {
        match (*default).xOpen {
            Some(open) => open(default, name, inner, flags, out_flags),
            None => ffi::SQLITE_CANTOPEN,
        }
    };
    if opened != ffi::SQLITE_OK {
        // SQLite will not close a file whose methods are null, so close the default one here.
        unsafe {
            let methods = (*inner).pMethods;
            if !methods.is_null()
                && let Some(close) = (*methods).xClose
            {
                close(inner);
            }
        }
        return opened;
    }
    let shadow = match shadow::active() {
        Some(shadows)
            if flags & (ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_WAL) != 0
                && !name.is_null() =>
        {
            // SAFETY: a file's name is a C string that outlives the file.
            let path = unsafe { CStr::from_ptr(name) }.to_bytes();
            match shadows.track(path) {
                Ok(tracked) => Some(tracked),
                Err(error) => {
                    tracing::error!(%error, "the sync shadow of a database file cannot be made");
                    unsafe {
                        if let Some(close) = (*(*inner).pMethods).xClose {
                            close(inner);
                        }
                    }
                    return ffi::SQLITE_CANTOPEN;
                }
            }
        }
        _ => None,
    };
    let wal = (flags & ffi::SQLITE_OPEN_WAL != 0).then(|| {
        Box::new(Pending {
            bytes: Vec::new(),
            at: 0,
            last_end: -1,
            commit_page: None,
            write_through: false,
        })
    });
    // SQLite opens a WAL after its database file, and closes it before; each is ours when the
    // other is (one connection opens both through one VFS).
    let database = if wal.is_some() {
        // SAFETY: `name` is the name SQLite passed to open this WAL file.
        let database = unsafe { ffi::sqlite3_database_file_object(name) }.cast::<File>();
        let is_ours =
            !database.is_null() && unsafe { ptr::eq((*database).base.pMethods, &METHODS) };
        if is_ours { database } else { ptr::null_mut() }
    } else {
        ptr::null_mut()
    };
    // SAFETY: `ours` is valid for writes of a `File` (see above); nothing was there to drop.
    unsafe {
        ours.write(File {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            inner,
            wal,
            link: database,
            shadow,
        });
        if !database.is_null() {
            (*database).link = ours;
        }
    }
    ffi::SQLITE_OK
}

/// SAFETY (for every method below): SQLite passes back only files that `open` opened and
/// `close` has not closed, from one thread at a time per file.
unsafe fn parts<'a>(file: *mut ffi::sqlite3_file) -> (&'a mut File, &'a ffi::sqlite3_io_methods) {
    unsafe {
        let ours = &mut *file.cast::<File>();
        let methods = &*(*ours.inner).pMethods;
        (ours, methods)
    }
}

/// Hands a WAL file's buffer to the file in one write; answers SQLite's result code.
unsafe fn flush(file: &mut File, methods: &ffi::sqlite3_io_methods) -> c_int {
    match file.wal.as_deref_mut() {
        Some(pending) => unsafe { write_out(pending, file.inner, methods, file.shadow.as_deref()) },
        None => ffi::SQLITE_OK,
    }
}

/// Hands `pending` to the default VFS's file `inner` (and notes it in the file's `shadow`).
unsafe fn write_out(
    pending: &mut Pending,
    inner: *mut ffi::sqlite3_file,
    methods: &ffi::sqlite3_io_methods,
    shadow: Option<&shadow::Tracked>,
) -> c_int {
    if pending.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let Some(write) = methods.xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut written = ffi::SQLITE_OK;
    let mut at = pending.at;
    for chunk in pending.bytes.chunks(MOST_PER_WRITE) {
        // SAFETY: the chunk is readable for its length, which MOST_PER_WRITE keeps in range.
        written = unsafe {
            write(
                inner,
                chunk.as_ptr().cast::<c_void>(),
                chunk.len() as c_int,
                at,
            )
        };
        WAL_WRITES.with(|count| count.set(count.get() + 1));
        if written != ffi::SQLITE_OK {
            break;
        }
        if let Some(shadow) = shadow {
            shadow.wrote(at, chunk.len());
        }
        at += chunk.len() as i64;
    }
    pending.bytes.clear();
    if pending.bytes.capacity() > 2 * FLUSH_AT {
        pending.bytes.shrink_to(FLUSH_AT);
    }
    written
}

/// Writes out the buffer of a database file's WAL file, if it has one open. The callers'
/// methods return no error for it: a failure is logged and drops the buffer.
unsafe fn flush_wal_of(database: &mut File) {
    if database.wal.is_some() || database.link.is_null() {
        return;
    }
    // SAFETY: the link is cleared when the WAL file closes, and the WAL file belongs to the
    // same connection, which SQLite calls from one thread at a time.
    let wal = unsafe { &mut *database.link };
    let methods = unsafe { &*(*wal.inner).pMethods };
    if unsafe { flush(wal, methods) } != ffi::SQLITE_OK {
        tracing::warn!("writing the WAL's buffer out at the end of a transaction failed");
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let Some(write_inner) = methods.xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let Some(pending) = ours.wal.as_deref_mut() else {
        let written = unsafe { write_inner(ours.inner, data, amount, offset) };
        if let (Some(shadow), ffi::SQLITE_OK) = (&ours.shadow, written) {
            shadow.wrote(offset, usize::try_from(amount).unwrap_or(0));
        }
        return written;
    };
    let Ok(length) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) };
    let end = offset + i64::from(amount);
    let previous_end = std::mem::replace(&mut pending.last_end, end);
    let through = std::mem::take(&mut pending.write_through);
    if !pending.bytes.is_empty() && offset != pending.at + pending.bytes.len() as i64 {
        let flushed = unsafe { write_out(pending, ours.inner, methods, ours.shadow.as_deref()) };
        if flushed != ffi::SQLITE_OK {
            return flushed;
        }
    }
    if pending.bytes.is_empty() {
        pending.at = offset;
    }
    pending.bytes.extend_from_slice(bytes);
    let commit_header =
        amount == FRAME_HEADER && offset >= WAL_HEADER && bytes[4..8] != [0, 0, 0, 0];
    let rewritten = commit_header && offset != previous_end;
    let commit_ends = !commit_header && pending.commit_page == Some(offset);
    if commit_header {
        pending.commit_page = Some(end);
    } else if commit_ends {
        pending.commit_page = None;
    }
    if rewritten {
        REWRITTEN_COMMITS.with(|count| count.set(count.get() + 1));
    }
    if through || rewritten || commit_ends || pending.bytes.len() >= FLUSH_AT {
        return unsafe { write_out(pending, ours.inner, methods, ours.shadow.as_deref()) };
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    let closed = match methods.xClose {
        Some(close) => unsafe { close(ours.inner) },
        None => ffi::SQLITE_OK,
    };
    // A WAL file unlinks itself from its database file, which outlives it; a database file's
    // WAL is closed by then.
    if ours.wal.is_some() && !ours.link.is_null() {
        // SAFETY: the database file is open while its WAL file is.
        unsafe { (*ours.link).link = ptr::null_mut() };
    }
    // SAFETY: `open` wrote this `File`; SQLite frees the memory without dropping it, and
    // calls no method of it after this one (the null methods say so).
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!(ours.wal));
        ptr::drop_in_place(ptr::addr_of_mut!(ours.shadow));
        ptr::addr_of_mut!(ours.base.pMethods).write(ptr::null());
    }
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    if flushed != ffi::SQLITE_OK {
        return flushed;
    }
    match methods.xRead {
        Some(read) => unsafe { read(ours.inner, data, amount, offset) },
        None => ffi::SQLITE_IOERR_READ,
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    if flushed != ffi::SQLITE_OK {
        return flushed;
    }
    let truncated = match methods.xTruncate {
        Some(truncate) => unsafe { truncate(ours.inner, size) },
        None => ffi::SQLITE_IOERR_TRUNCATE,
    };
    if let (Some(shadow), ffi::SQLITE_OK) = (&ours.shadow, truncated) {
        shadow.truncated(size);
    }
    truncated
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    if flushed != ffi::SQLITE_OK {
        return flushed;
    }
    if let Some(pending) = ours.wal.as_deref_mut() {
        pending.write_through = true;
    }
    // The shadow takes what this sync is about to make durable, and nothing written after it.
    if let Some(shadow) = &ours.shadow
        && let Err(error) = shadow.capture()
    {
        tracing::error!(%error, "the sync shadow of a database file cannot be written");
        return ffi::SQLITE_IOERR_FSYNC;
    }
    match methods.xSync {
        Some(sync) => unsafe { sync(ours.inner, flags) },
        None => ffi::SQLITE_IOERR_FSYNC,
    }
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    if flushed != ffi::SQLITE_OK {
        return flushed;
    }
    match methods.xFileSize {
        Some(file_size) => unsafe { file_size(ours.inner, size) },
        None => ffi::SQLITE_IOERR_FSTAT,
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    argument: *mut c_void,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    let flushed = unsafe { flush(ours, methods) };
    if flushed != ffi::SQLITE_OK {
        return flushed;
    }
    match methods.xFileControl {
        Some(file_control) => unsafe { file_control(ours.inner, op, argument) },
        None => ffi::SQLITE_NOTFOUND,
    }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xLock {
        Some(lock) => unsafe { lock(ours.inner, level) },
        None => ffi::SQLITE_IOERR_LOCK,
    }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xUnlock {
        Some(unlock) => unsafe { unlock(ours.inner, level) },
        None => ffi::SQLITE_IOERR_UNLOCK,
    }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xCheckReservedLock {
        Some(check) => unsafe { check(ours.inner, out) },
        None => ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
    }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xSectorSize {
        Some(sector_size) => unsafe { sector_size(ours.inner) },
        None => 4096,
    }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xDeviceCharacteristics {
        Some(characteristics) => unsafe { characteristics(ours.inner) },
        None => 0,
    }
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xShmMap {
        Some(shm_map) => unsafe { shm_map(ours.inner, region, size, extend, out) },
        None => ffi::SQLITE_IOERR_SHMMAP,
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    count: c_int,
    flags: c_int,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    // Releasing the WAL's write lock (slot 0) ends a write transaction: what is still in the
    // buffer then belongs to one that rolled back (its cache spilled frames past the log's
    // end). It goes to the file now, as the default VFS would have written it already, and
    // not later over frames that another connection may commit there meanwhile.
    if flags & ffi::SQLITE_SHM_UNLOCK != 0 && offset == 0 {
        unsafe { flush_wal_of(ours) };
    }
    match methods.xShmLock {
        Some(shm_lock) => unsafe { shm_lock(ours.inner, offset, count, flags) },
        None => ffi::SQLITE_IOERR_SHMLOCK,
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (ours, methods) = unsafe { parts(file) };
    // SQLite publishes a commit to other connections right after this barrier; the commit's
    // frames were written out with its last frame, so this finds the buffer empty, and is
    // only a second guard.
    unsafe { flush_wal_of(ours) };
    if let Some(shm_barrier) = methods.xShmBarrier {
        unsafe { shm_barrier(ours.inner) }
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xShmUnmap {
        Some(shm_unmap) => unsafe { shm_unmap(ours.inner, delete) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xFetch {
        Some(fetch) => unsafe { fetch(ours.inner, offset, amount, out) },
        None => {
            // No memory map: SQLite reads the page with xRead instead.
            unsafe { out.write(ptr::null_mut()) };
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    let (ours, methods) = unsafe { parts(file) };
    match methods.xUnfetch {
        Some(unfetch) => unsafe { unfetch(ours.inner, offset, page) },
        None => ffi::SQLITE_OK,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use rusqlite::{Connection, params};

    use super::*;

    fn open(file: &Path) -> Connection {
        assert!(crate::store::install_sqlite_hooks().wal_vfs);
        let conn = Connection::open(file).expect("open");
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        )
        .expect("pragmas");
        conn
    }

    /// A new database through `open`, with checkpoints left to the test and the table `t`;
    /// `more` runs after.
    fn database(dir: &Path, name: &str, more: &str) -> (std::path::PathBuf, Connection) {
        let file = dir.join(name);
        let conn = open(&file);
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL); {more}"
        ))
        .expect("schema");
        (file, conn)
    }

    /// A row's value: 300 bytes that say which row and which version they are.
    fn value(id: i64, version: i64) -> Vec<u8> {
        let seed = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version as u64;
        seed.to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(300)
            .collect()
    }

    fn rows(conn: &Connection) -> BTreeMap<i64, Vec<u8>> {
        let mut statement = conn.prepare("SELECT id, v FROM t").expect("prepare");
        let found = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query");
        found.collect::<rusqlite::Result<_>>().expect("rows")
    }

    #[test]
    fn a_transaction_reaches_the_wal_in_one_write_per_124_kib() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, conn) = database(dir.path(), "one.db", "CREATE INDEX t_v ON t (v);");
        let wal = dir.path().join("one.db-wal");
        for round in 0..20 {
            let (writes, size) = (
                wal_writes_on_this_thread(),
                wal.metadata().expect("wal").len(),
            );
            conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            for i in 0..40 {
                let id = round * 40 + i;
                conn.execute("INSERT INTO t VALUES (?1, ?2)", params![id, value(id, 0)])
                    .expect("insert");
            }
            conn.execute_batch("COMMIT").expect("commit");
            let appended = wal.metadata().expect("wal").len() - size;
            let frames = appended / (1024 + 24);
            assert!(frames >= 10, "round {round} appended only {frames} frames");
            let writes = wal_writes_on_this_thread() - writes;
            let expected = appended.div_ceil(MOST_PER_WRITE as u64);
            assert_eq!(
                writes, expected,
                "round {round}: {frames} frames in {writes} writes"
            );
        }
    }

    #[test]
    fn every_commit_is_seen_at_once_and_recovered_from_the_files_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A small cache makes large transactions spill frames into the WAL before they commit
        // and then overwrite them, so SQLite rewrites checksums. The other connection
        // checkpoints now and then, and the log restarts: its header is written and synced.
        let (file, conn) = database(dir.path(), "spill.db", "CREATE INDEX t_v ON t (v);");
        let other = Connection::open(&file).expect("second connection");
        let (mut model, mut rewrote_last) = (BTreeMap::new(), false);
        for round in 0..=60_i64 {
            let rewritten_before = rewritten_commits_on_this_thread();
            let mut changed = model.clone();
            conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            // Most transactions spill; every third is small, with room in the cache, and does not.
            let size = if round % 3 == 1 { 6 } else { 150 };
            let cache = if size > 30 { 16 } else { 2000 };
            conn.execute_batch(&format!("PRAGMA cache_size = {cache}"))
                .expect("cache size");
            for i in 0..size {
                let id = round * 150 + i;
                conn.execute("INSERT INTO t VALUES (?1, ?2)", params![id, value(id, 0)])
                    .expect("insert");
                changed.insert(id, value(id, 0));
            }
            // Back to the pages written first, which the small cache has spilled by now.
            let again = if size > 30 { round.min(20) } else { 0 };
            for id in (round * 150..round * 150 + 30).chain(0..again) {
                if changed.contains_key(&id) {
                    conn.execute(
                        "UPDATE t SET v = ?2 WHERE id = ?1",
                        params![id, value(id, round)],
                    )
                    .expect("update");
                    changed.insert(id, value(id, round));
                }
            }
            let gone = if size > 30 { (round - 3) * 150 } else { -150 };
            conn.execute(
                "DELETE FROM t WHERE id >= ?1 AND id < ?2 AND id % 2 = 0",
                params![gone, gone + 150],
            )
            .expect("delete");
            changed.retain(|id, _| !(gone..gone + 150).contains(id) || id % 2 != 0);
            if round % 5 == 4 {
                conn.execute_batch("ROLLBACK").expect("rollback");
            } else {
                conn.execute_batch("COMMIT").expect("commit");
                model = changed;
            }
            rewrote_last = rewritten_commits_on_this_thread() > rewritten_before;
            assert!(
                rows(&other) == model,
                "round {round}: the other connection sees another state"
            );
            if round % 7 == 6 {
                other
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .expect("checkpoint");
            }
        }
        assert!(
            rewrote_last,
            "the last transaction did not rewrite its checksums"
        );

        // What a crash right after the last commit leaves: the files as the system holds them.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&file, &copy).expect("copy the database");
        std::fs::copy(
            dir.path().join("spill.db-wal"),
            dir.path().join("copy.db-wal"),
        )
        .expect("copy the WAL");
        let recovered = Connection::open(&copy).expect("open the copy");
        let check: String = recovered
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok");
        assert!(
            rows(&recovered) == model,
            "the copy lost or changed committed rows"
        );
    }

    #[test]
    fn a_commit_padded_to_a_sector_is_whole_for_other_connections() {
        // Without power-safe overwrites and with synchronous = FULL, SQLite pads each commit to
        // the next sector with copies of its last frame, and writes the part past the sync
        // point after syncing.
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(crate::store::install_sqlite_hooks().wal_vfs);
        let file = dir.path().join("padded.db");
        let uri = format!("file:{}?psow=0", file.display());
        let flags = rusqlite::OpenFlags::default() | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&uri, flags).expect("open");
        conn.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);",
        )
        .expect("schema");
        let other = Connection::open_with_flags(&uri, flags).expect("second connection");
        let mut model = BTreeMap::new();
        for round in 0..40_i64 {
            for id in [round, round * 7 % 40] {
                conn.execute(
                    "INSERT OR REPLACE INTO t VALUES (?1, ?2)",
                    params![id, value(id, round)],
                )
                .expect("write");
                model.insert(id, value(id, round));
            }
            assert!(
                rows(&other) == model,
                "round {round}: the other connection sees another state"
            );
        }
        let wal_size = dir
            .path()
            .join("padded.db-wal")
            .metadata()
            .expect("wal")
            .len();
        assert!(
            wal_size > 80 * 4096,
            "the commits were not padded ({wal_size} bytes of WAL)"
        );
    }

    #[test]
    fn a_one_page_commit_right_after_the_log_restarts_is_seen_at_once() {
        // The other connection checkpoints the whole log after every commit, so each of the
        // writer's commits starts the log over: the WAL header, its sync, then one frame.
        let dir = tempfile::tempdir().expect("temp dir");
        let (file, conn) = database(dir.path(), "restart.db", "INSERT INTO t VALUES (1, x'00');");
        let other = Connection::open(&file).expect("second connection");
        for round in 0..30_i64 {
            other
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .expect("checkpoint");
            let size = dir
                .path()
                .join("restart.db-wal")
                .metadata()
                .expect("wal")
                .len();
            conn.execute(
                "UPDATE t SET v = ?1 WHERE id = 1",
                params![value(1, round)[..40].to_vec()],
            )
            .expect("update");
            let seen: Vec<u8> = other
                .query_row("SELECT v FROM t WHERE id = 1", [], |row| row.get(0))
                .expect("read");
            assert_eq!(seen, value(1, round)[..40], "round {round}");
            let now = dir
                .path()
                .join("restart.db-wal")
                .metadata()
                .expect("wal")
                .len();
            assert_eq!(now, size, "round {round}: the log did not start over");
        }
    }

    #[test]
    fn frames_of_a_rolled_back_transaction_never_land_on_a_later_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (file, spilling) = database(dir.path(), "two.db", "");
        let mut model = BTreeMap::new();
        spilling.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for id in 0..400 {
            spilling
                .execute("INSERT INTO t VALUES (?1, ?2)", params![id, value(id, 0)])
                .expect("insert");
            model.insert(id, value(id, 0));
        }
        // Copied into the database file, so that reading a page does not touch the WAL.
        spilling
            .execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("commit");
        let committing = open(&file);
        // A transaction that changes every page once, in a cache far too small for it, so its
        // frames spill past the log's end and are not read again; it rolls back…
        spilling
            .execute_batch(
                "PRAGMA cache_size = 16; BEGIN IMMEDIATE;
                 UPDATE t SET v = zeroblob(300); ROLLBACK;",
            )
            .expect("a spilled transaction");
        // …then another connection commits frames at the same place of the log.
        committing.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for id in 400..420 {
            committing
                .execute("INSERT INTO t VALUES (?1, ?2)", params![id, value(id, 1)])
                .expect("insert");
            model.insert(id, value(id, 1));
        }
        committing.execute_batch("COMMIT").expect("commit");
        // Whatever the first connection still held would be written out when it closes.
        drop(spilling);
        let check = Connection::open(&file).expect("third connection");
        let integrity: String = check
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity check");
        assert_eq!(integrity, "ok");
        assert!(rows(&check) == model, "the committed rows were overwritten");
    }
}
