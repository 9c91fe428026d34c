//! The store owns every SQL statement of otpgate and the SQLite file they run against.
//!
//! Concurrency design: SQLite allows many readers and one writer. The store mirrors that.
//! - One **writer thread** owns the only read-write connection. Callers send it jobs over a
//!   channel; it takes every job that is waiting (up to a batch limit), runs each inside its own
//!   savepoint of one `BEGIN IMMEDIATE` transaction, commits once, and only then answers each
//!   caller. This is group commit: under load many writes share one commit (and one fsync when
//!   `synchronous = FULL`), and no two of our connections ever race for the write lock, so
//!   "database is locked" cannot happen between them. A job that fails rolls back only its own
//!   savepoint. Between its jobs it keeps the rows only administration changes (`hot`), for
//!   the authentications it judges. The answers of a batch reach each async runtime in one
//!   message (`answers`).
//! - A fixed set of **reader threads**, each owning one read-only connection, takes read jobs
//!   from one shared queue. In WAL mode readers never wait for the writer; connections are opened
//!   once, so a burst of requests costs no file opening or schema parsing.
//! - Nothing here runs on the async executor threads but the API key check
//!   (`api_key_generation`: one row, on a connection of its own taken without waiting): reads
//!   go to the reader threads, writes to the writer thread, and callers only await a oneshot
//!   answer.

mod admins;
mod answers;
mod api_keys;
pub mod approvals;
mod audit;
pub mod auth;
pub mod bot;
#[cfg(test)]
mod compare_and_set;
pub mod delivery_settings;
pub mod directories;
mod directory;
pub mod directory_sync;
mod hot;
pub mod logins;
mod message;
pub mod outbox;
mod overview;
mod pcache;
pub mod portal;
pub mod radius;
pub mod resources;
mod sessions;
pub mod settings;
pub mod tokens;
mod transactions;
pub mod users;
mod walvfs;

pub use admins::{Admin, AdminChange, NewAdmin};
pub use api_keys::ApiKeyRecord;
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use directory::{NewResource, NewToken, NewUser, Resource, Token, User};
pub use message::Message;
pub use overview::{ChannelHealth, Dashboard, HourlyAuthentications, Overview, TokenCounts};
pub use overview::{DeniedApproval, DeniedApprovals};
pub use sessions::{NewSession, Session, SessionKind, SessionStage};
pub use settings::{GeneralSettings, SendLimits};

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use answers::{Outbox, Route};
use hot::HotRows;

refinery::embed_migrations!("migrations");

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "otpgate.db";

/// The page size of a new database file, in bytes.
const PAGE_SIZE: i64 = 1024;

/// How many jobs one transaction of the writer may carry.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error(
        "the database {path} has schema version {found}, newer than this otpgate knows ({known}); \
         install the newer otpgate again or restore a backup made with this version"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0} is not an otpgate database")]
    NotOtpgate(String),
    #[error("the database integrity check failed: {0}")]
    Corrupt(String),
    #[error("the store is shut down")]
    Closed,
    #[error("{0}")]
    Conflict(String),
    /// Users whose logins are one login under the Unicode comparison; the message names them.
    #[error("{0}")]
    LoginsCollide(String),
}

impl StoreError {
    /// True when the error is a violated UNIQUE constraint, which callers turn into "already exists".
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<StoreError> for crate::domain::RuleError {
    /// A violated UNIQUE constraint is a clash with what is stored, not a failure.
    fn from(error: StoreError) -> crate::domain::RuleError {
        if error.is_unique_violation() {
            return crate::domain::Refused::Conflict(
                "an object with this name exists already".into(),
            )
            .into();
        }
        crate::domain::RuleError::Failed(error.into())
    }
}

/// The durability of a commit. `Normal` survives a crash of the process (including `kill -9`);
/// `Full` also survives a power loss, at the price of an fsync per group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub synchronous: Synchronous,
    pub readers: usize,
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

type Completion = Box<dyn FnOnce(Option<&StoreError>, &mut Outbox) + Send>;

/// One unit of work for the writer thread.
trait WriteJob: Send {
    /// Runs the statements; answers whether they succeeded and how to report the outcome
    /// once the transaction's fate is known.
    fn run(self: Box<Self>, conn: &Connection, kept: Kept) -> (bool, Completion);
    /// Reports an error without running (the transaction could not start).
    fn fail(self: Box<Self>, error: &StoreError);
}

type Job = Box<dyn WriteJob>;

/// What the writer lends a job besides the connection: the rows it keeps, and the audit lines
/// written after the batch's last job (`audit::Lines::AfterBatch`), which `run_batch` drops
/// with the job's savepoint when the job fails.
struct Kept<'a> {
    hot: &'a mut HotRows,
    lines: &'a mut Vec<AuditEntry>,
}

struct Pending<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T>>,
    route: Route,
}

/// A job that reads through the writer's kept rows (`hot`).
struct PendingKept<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T>>,
    route: Route,
}

/// Answers a job's caller, by its route, once the transaction's fate is known.
fn completion<T: Send + 'static>(
    result: Result<T>,
    answer: oneshot::Sender<Result<T>>,
    route: Route,
) -> (bool, Completion) {
    let ok = result.is_ok();
    let completion: Completion = Box::new(move |commit_error, outbox| {
        let outcome = match (commit_error, result) {
            (Some(e), _) => Err(StoreError::Conflict(format!("commit failed: {e}"))),
            (None, result) => result,
        };
        outbox.post(
            route,
            Box::new(move || {
                let _ = answer.send(outcome);
            }),
        );
    });
    (ok, completion)
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, kept: Kept) -> (bool, Completion) {
        let Pending {
            work,
            answer,
            route,
        } = *self;
        // It may change what the kept rows hold.
        kept.hot.unconfirm();
        completion(work(conn), answer, route)
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        let _ = self.answer.send(Err(StoreError::Conflict(format!(
            "cannot start a transaction: {error}"
        ))));
    }
}

impl<T, F> WriteJob for PendingKept<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &mut HotRows, &mut Vec<AuditEntry>) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, kept: Kept) -> (bool, Completion) {
        let PendingKept {
            work,
            answer,
            route,
        } = *self;
        completion(work(conn, kept.hot, kept.lines), answer, route)
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        let _ = self.answer.send(Err(StoreError::Conflict(format!(
            "cannot start a transaction: {error}"
        ))));
    }
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    /// Every request reads these senders, so they sit behind `RwLock`s: readers never wait for
    /// each other, and only `close` takes them for writing. Behind a `Mutex`, one executor
    /// thread waited for the other whenever the other was preempted inside `send`.
    jobs: RwLock<Option<std_mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    reads: RwLock<Option<std_mpsc::Sender<ReadJob>>>,
    reader_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<(std_mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// The connections of the API key check (`api_keys::generation`), which runs on the
    /// caller's thread: each is taken with `try_lock`, so no caller ever waits for another.
    key_watches: RwLock<Vec<Mutex<Connection>>>,
    /// Where the next key check starts looking for a free connection.
    next_key_watch: std::sync::atomic::AtomicUsize,
    /// Moves whenever the RADIUS clients change (see `radius`).
    radius_generation: std::sync::atomic::AtomicU64,
}

/// A handle to the database. Cheap to clone; every clone talks to the same writer thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn configure(conn: &Connection, options: &StoreOptions) -> Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    // The query planner stability guarantee: plans never depend on bound values. Without it,
    // SQLite marks statements with joins, subqueries or ORDER BY to be compiled again whenever
    // a parameter changes, so a cached statement on the authentication path was recompiled on
    // every request (measured: 10 to 30 µs each instead of under 1 µs).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -8000;"
    ))?;
    Ok(())
}

/// What otpgate gives SQLite for every connection, and whether each is in use.
#[derive(Debug, Clone, Copy)]
pub struct SqliteHooks {
    /// The page cache of [`pcache`].
    pub page_cache: bool,
    /// The VFS of [`walvfs`], which writes a transaction's WAL frames in one write.
    pub wal_vfs: bool,
}

/// Installs the hooks of [`SqliteHooks`] for every connection opened from now on; runs once.
/// The page cache takes effect only before the process opens its first connection (later,
/// SQLite keeps its default cache, which is as correct, only slower for the writer), and it
/// goes first because registering the VFS initialises SQLite.
pub fn install_sqlite_hooks() -> SqliteHooks {
    let page_cache = pcache::install();
    SqliteHooks {
        page_cache,
        wal_vfs: walvfs::install(),
    }
}

#[doc(hidden)]
pub use pcache::moves_through_lock_byte_page;

/// The highest schema version this binary carries.
pub fn known_schema_version() -> i64 {
    migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version recorded in a database, or None for a database without otpgate history.
fn recorded_schema_version(conn: &Connection) -> Result<Option<i64>> {
    let has_history: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history')",
        [],
        |row| row.get(0),
    )?;
    if !has_history {
        return Ok(None);
    }
    Ok(conn.query_row(
        "SELECT MAX(version) FROM refinery_schema_history",
        [],
        |row| row.get::<_, Option<i64>>(0),
    )?)
}

impl Store {
    /// Opens (creating if needed) the database at `path`, refuses one written by a newer
    /// otpgate, applies pending migrations, and starts the writer thread.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store> {
        install_sqlite_hooks();
        if let Some(directory) = walvfs::sync_shadow_directory() {
            tracing::warn!(
                directory = %directory.display(),
                "test facility on (OTPGATE_TEST_SYNC_SHADOW): every synced state of the database \
                 and its WAL is copied to this directory; never use it in production"
            );
        }
        make_private(path)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(options.busy_timeout)?;
        // A new database gets 1 KiB pages (an existing one keeps its own: SQLite ignores this
        // once the file has pages). An authentication changes a token's row and an audit index
        // entry at random places, so each one adds about two whole pages to the WAL, which the
        // checkpoints then sync and copy. At 4 KiB pages that was 100 MB/s under full load, and
        // the writer stalled on the disk behind it; see "Performance" in the README.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Migration(format!(
                "could not switch the database to WAL mode (it stays in {mode} mode)"
            )));
        }
        configure(&conn, &options)?;
        if let Some(found) = recorded_schema_version(&conn)? {
            let known = known_schema_version();
            if found > known {
                return Err(StoreError::NewerSchema {
                    path: path.display().to_string(),
                    found,
                    known,
                });
            }
        }
        users::refuse_logins_that_collide(&conn, path)?;
        migrations::runner()
            .set_abort_divergent(true)
            .run(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        users::fill_login_keys(&mut conn, path)?;

        // Checkpoints copy the WAL back into the database file and fsync it: a background
        // thread does that, so that the writer never stalls behind one.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let mut checkpoint_conn = Connection::open(path)?;
        checkpoint_conn.busy_handler(Some(wait_briefly))?;
        let gate = Arc::new(Mutex::new(()));
        let writer_gate = gate.clone();
        let (stop_checkpoints, stopped) = std_mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run_checkpointer(checkpoint_conn, gate, stopped))
            .map_err(|e| {
                StoreError::Migration(format!("cannot start the checkpoint thread: {e}"))
            })?;
        let (sender, receiver) = std_mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(conn, writer_gate, receiver))
            .map_err(|e| StoreError::Migration(format!("cannot start the writer thread: {e}")))?;
        let (reads, read_queue) = std_mpsc::channel::<ReadJob>();
        let read_queue = Arc::new(Mutex::new(read_queue));
        let mut reader_threads = Vec::with_capacity(options.readers);
        for index in 0..options.readers.max(1) {
            let conn = open_reader(path, &options)?;
            let queue = read_queue.clone();
            let thread = std::thread::Builder::new()
                .name(format!("store-reader-{index}"))
                .spawn(move || run_reader(conn, queue))
                .map_err(|e| StoreError::Migration(format!("cannot start a reader thread: {e}")))?;
            reader_threads.push(thread);
        }
        let key_watches = (0..api_keys::KEY_WATCHES)
            .map(|_| open_reader(path, &options).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                options,
                jobs: RwLock::new(Some(sender)),
                writer: Mutex::new(Some(writer)),
                reads: RwLock::new(Some(reads)),
                reader_threads: Mutex::new(reader_threads),
                checkpointer: Mutex::new(Some((stop_checkpoints, checkpointer))),
                key_watches: RwLock::new(key_watches),
                next_key_watch: std::sync::atomic::AtomicUsize::new(0),
                radius_generation: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn submit_read<T, F>(&self, f: F) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, receiver) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn: &Connection| {
            let _ = answer.send(f(conn));
        });
        let reads = self.inner.reads.read().map_err(|_| StoreError::Closed)?;
        reads
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        Ok(receiver)
    }

    /// Runs `f` on one of the reader threads' connections.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit_read(f)?.await.map_err(|_| StoreError::Closed)?
    }

    /// The blocking twin of [`Store::read`], for the CLI and blocking tasks.
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit_read(f)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    fn submit<T, F>(&self, f: F, route: Route) -> Result<oneshot::Receiver<Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (answer, receiver) = oneshot::channel();
        self.send_job(Box::new(Pending {
            work: f,
            answer,
            route,
        }))?;
        Ok(receiver)
    }

    fn send_job(&self, job: Job) -> Result<()> {
        let jobs = self.inner.jobs.read().map_err(|_| StoreError::Closed)?;
        jobs.as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` in the writer's transaction and answers once it is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, Route::here())?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// [`Store::write`] for a job that reads through the writer's kept rows (`hot`), after
    /// `HotRows::check`. It must not change what they hold (a judgement writes only the five
    /// token columns the kept rows read every time, and rows they do not keep): the generation
    /// is read once a transaction while only such jobs run. The audit lines it gives `f` are
    /// written after the batch's last job, in the same transaction; a job that fails writes
    /// none.
    async fn write_kept<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut HotRows, &mut Vec<AuditEntry>) -> Result<T> + Send + 'static,
    {
        let (answer, receiver) = oneshot::channel();
        self.send_job(Box::new(PendingKept {
            work: f,
            answer,
            route: Route::here(),
        }))?;
        receiver.await.map_err(|_| StoreError::Closed)?
    }

    /// The blocking twin of [`Store::write`], for the CLI and blocking tasks.
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.submit(f, Route::direct())?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// Stops the writer after it has committed every job sent before, and checkpoints the WAL.
    pub fn close(&self) {
        if let Ok(mut watches) = self.inner.key_watches.write() {
            watches.clear();
        }
        let checkpointer = self
            .inner
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut c| c.take());
        if let Some((stop, handle)) = checkpointer {
            drop(stop);
            let _ = handle.join();
        }
        if let Ok(mut jobs) = self.inner.jobs.write() {
            jobs.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        if let Ok(mut reads) = self.inner.reads.write() {
            reads.take();
        }
        let readers = self
            .inner
            .reader_threads
            .lock()
            .map(|mut threads| std::mem::take(&mut *threads))
            .unwrap_or_default();
        for reader in readers {
            let _ = reader.join();
        }
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
            .await
            .is_ok()
    }

    /// Writes a consistent copy of the live database to `destination`, while others keep
    /// reading and writing. The copy is written beside the destination and renamed into place,
    /// so a failed backup never leaves a half-written file under the destination's name.
    pub fn backup_to(&self, destination: &Path) -> Result<()> {
        backup_file(
            &self.inner.path,
            destination,
            self.inner.options.busy_timeout,
        )
    }

    /// A textual dump of every table's rows, in a stable order: used to compare two databases.
    pub fn dump(&self) -> Result<String> {
        // A diagnostic: read on the calling thread through a connection of its own.
        dump_connection(&open_reader(&self.inner.path, &self.inner.options)?)
    }
}

/// The SQLite backup API, copying every page in one step: one read transaction, so the copy is
/// a consistent snapshot even while a server writes.
pub fn backup_file(source: &Path, destination: &Path, busy_timeout: Duration) -> Result<()> {
    let source_conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source_conn.busy_timeout(busy_timeout)?;
    let partial = partial_path(destination);
    let _ = std::fs::remove_file(&partial);
    make_private(&partial)?;
    {
        let mut dest_conn = Connection::open(&partial)?;
        let backup = rusqlite::backup::Backup::new(&source_conn, &mut dest_conn)?;
        // One step of -1 pages copies the whole file under one read transaction.
        let deadline = std::time::Instant::now() + busy_timeout;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                _ if std::time::Instant::now() > deadline => {
                    return Err(StoreError::Conflict(
                        "the database stayed busy; try again".into(),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    let copy = Connection::open(&partial)?;
    copy.execute_batch("PRAGMA journal_mode = DELETE")?;
    drop(copy);
    std::fs::rename(&partial, destination).map_err(|e| {
        StoreError::Conflict(format!("cannot write {}: {e}", destination.display()))
    })?;
    Ok(())
}

/// Makes the database file at `path` readable and writable by its owner only, whatever the
/// caller's umask (`sudo -u otpgate` keeps one that lets everyone read): a new one is created
/// empty with mode 0600 before SQLite opens it — SQLite then gives its WAL and shared-memory
/// files the same mode —, and an existing one an older otpgate left readable is made private,
/// with its WAL files.
fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let failed = |file: &Path, e: std::io::Error| {
            StoreError::Conflict(format!("cannot make {} private: {e}", file.display()))
        };
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed(path, e)),
        }
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_os_string();
            name.push(suffix);
            files.push(PathBuf::from(name));
        }
        for file in files {
            let Ok(metadata) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o600))
                    .map_err(|e| failed(&file, e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "backup".into());
    name.push(".partial");
    destination.with_file_name(name)
}

/// Checks that `file` is a sound otpgate database that this binary can open: SQLite's
/// integrity check passes and its schema is not newer than ours. Returns its schema version.
pub fn validate_database(file: &Path) -> Result<i64> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|_| StoreError::NotOtpgate(file.display().to_string()))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|_| StoreError::NotOtpgate(file.display().to_string()))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(check));
    }
    let version = recorded_schema_version(&conn)
        .map_err(|_| StoreError::NotOtpgate(file.display().to_string()))?
        .ok_or_else(|| StoreError::NotOtpgate(file.display().to_string()))?;
    let known = known_schema_version();
    if version > known {
        return Err(StoreError::NewerSchema {
            path: file.display().to_string(),
            found: version,
            known,
        });
    }
    Ok(version)
}

/// Creates or upgrades a database only up to `version`: lets tests build a database as an
/// older otpgate left it, and then check that opening it with this one keeps its data.
#[doc(hidden)]
pub fn migrate_to_version(file: &Path, version: i32) -> Result<()> {
    let mut conn = Connection::open(file)?;
    migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run(&mut conn)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(())
}

/// Reads one value of the `settings` table from a database file that is not open as a store.
pub fn read_setting_from_file(file: &Path, key: &str) -> Result<Option<String>> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    settings::get(&conn, key)
}

/// Replaces the database at `target` with `source`: copied beside it, then renamed over it, and
/// the old WAL files removed. The caller holds the data directory's lock.
pub fn replace_database(source: &Path, target: &Path) -> Result<()> {
    let partial = partial_path(target);
    backup_file(source, &partial, Duration::from_secs(5))?;
    for suffix in ["-wal", "-shm"] {
        let mut name = target.as_os_str().to_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    std::fs::rename(&partial, target)
        .map_err(|e| StoreError::Conflict(format!("cannot replace {}: {e}", target.display())))?;
    Ok(())
}

fn dump_connection(conn: &Connection) -> Result<String> {
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tables.retain(|t| t != "refinery_schema_history");
    let mut out = String::new();
    for table in tables {
        out.push_str(&format!("# {table}\n"));
        let mut statement = conn.prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))?;
        let columns = statement.column_count();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let mut line = Vec::with_capacity(columns);
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i)?;
                line.push(format!("{value:?}"));
            }
            out.push_str(&line.join("|"));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs the jobs in batches, each batch holding the gate that a restarting checkpoint closes.
fn run_writer(conn: Connection, gate: Arc<Mutex<()>>, jobs: std_mpsc::Receiver<Job>) {
    let mut hot = HotRows::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let _open = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run_batch(&conn, &mut hot, batch);
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn open_reader(path: &Path, options: &StoreOptions) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn, options)?;
    conn.execute_batch("PRAGMA query_only = ON")?;
    Ok(conn)
}

/// Takes read jobs from the shared queue until the store closes. Whoever holds the queue's
/// lock waits for the next job; the others wait for the lock.
///
/// Each job runs in one read transaction: its queries see one snapshot, and the connection
/// takes the WAL's read lock, and checks whether another connection wrote (dropping its page
/// cache if so), once per job rather than once per statement.
fn run_reader(conn: Connection, queue: Arc<Mutex<std_mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let snapshot = execute_cached(&conn, "BEGIN");
        job(&conn);
        if snapshot.is_ok() && execute_cached(&conn, "COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Keeps the WAL short until told to stop (by the sender's drop).
///
/// A passive checkpoint every 200 ms copies committed pages back into the database file and
/// syncs it without blocking anyone. Under light load that is all it takes: once every frame is
/// copied back, the writer's next transaction starts the log over. Under a steady load it never
/// is, since the writer appends while the checkpoint copies, and a log that only grows makes
/// every read slower (a page lookup searches one WAL-index hash table per 4,096 frames).
///
/// So when the log is past `RESTART_FRAMES`, the checkpointer runs one more passive pass, closes
/// the writer's gate between two batches and runs a RESTART checkpoint: it copies what the
/// passive ones left, syncs twice, and starts the log over, while no write can run. Measured
/// under full load, that held every request up for 5 to 10 ms (20 to 75 ms on a day the
/// machine was slower, with the log at its bound every 4 s); done every half second (8,000
/// frames at 10,000 accepted codes a second) it took the 99th percentile of the authentication
/// latency from 12 to 30 ms. Restarts are therefore spaced `RESTART_SPACING` apart, unless the
/// log passes `RESTART_FRAMES_MAX`: the log stays bounded (about 135 MB at 1 KiB pages), and a
/// restart holds up well under 1 % of requests.
///
/// The writer waits on the gate, woken the moment the checkpoint ends, rather than sleeping in
/// SQLite's busy handler (1, 2, 5, 10 ms…) behind a checkpoint that holds the write lock.
fn run_checkpointer(conn: Connection, gate: Arc<Mutex<()>>, stop: std_mpsc::Receiver<()>) {
    const TICK: Duration = Duration::from_millis(200);
    const RESTART_FRAMES: i64 = 8_000;
    const RESTART_FRAMES_MAX: i64 = 131_072;
    const RESTART_SPACING: Duration = Duration::from_secs(5);
    let mut last_restart: Option<std::time::Instant> = None;
    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(TICK) {
        let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        });
        let frames = match passive {
            Ok(frames) => frames,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                continue;
            }
        };
        let spaced = last_restart.is_none_or(|at| at.elapsed() >= RESTART_SPACING);
        if frames > RESTART_FRAMES_MAX || (frames > RESTART_FRAMES && spaced) {
            // One more passive pass first, with the gate still open: what the restart must
            // then copy and sync behind the closed gate is only what was written meanwhile.
            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            let _closed = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
                row.get::<_, i64>(0)
            }) {
                Ok(0) => last_restart = Some(std::time::Instant::now()),
                Ok(_) => tracing::debug!("WAL restart postponed: a reader stayed in the log"),
                Err(e) => tracing::debug!(error = %e, "WAL restart postponed"),
            }
        }
    }
}

/// The checkpointer's busy handler: waits in steps of 50 µs, where SQLite's own sleeps a whole
/// millisecond and more at the first conflict, and gives up after about 10 ms: the restart
/// holds the writer's gate meanwhile, so a long reader (an export, a backup) postpones the
/// restart to the next tick instead of stalling every write behind it.
fn wait_briefly(attempt: i32) -> bool {
    if attempt >= 200 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(50));
    true
}

fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_batch(conn: &Connection, hot: &mut HotRows, batch: Vec<Job>) {
    if let Err(e) = execute_cached(conn, "BEGIN IMMEDIATE") {
        let error = StoreError::from(e);
        for job in batch {
            job.fail(&error);
        }
        return;
    }
    // Another process may have committed since the last batch.
    hot.unconfirm();
    let mut completions = Vec::with_capacity(batch.len());
    let mut lines = Vec::new();
    for job in batch {
        let savepoint = execute_cached(conn, "SAVEPOINT job");
        let before = lines.len();
        let kept = Kept {
            hot: &mut *hot,
            lines: &mut lines,
        };
        let (ok, completion) = job.run(conn, kept);
        if !ok {
            lines.truncate(before);
        }
        if savepoint.is_ok() {
            let end = if ok {
                execute_cached(conn, "RELEASE job")
            } else {
                execute_cached(conn, "ROLLBACK TO job")
                    .and_then(|_| execute_cached(conn, "RELEASE job"))
            };
            if let Err(e) = end {
                tracing::error!(error = %e, "cannot end a savepoint");
            }
        }
        completions.push(completion);
    }
    // A line that cannot be written takes the batch down with it, as a failed commit would:
    // its job's effects are in the transaction already, and none may stand unrecorded.
    let commit = lines
        .iter()
        .try_for_each(|entry| audit::insert(conn, entry))
        .and_then(|()| execute_cached(conn, "COMMIT").map_err(StoreError::from));
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        // What the batch's jobs read may never have been committed.
        hot.forget();
    }
    let error = commit.err();
    let mut outbox = Outbox::default();
    for completion in completions {
        completion(error.as_ref(), &mut outbox);
    }
    outbox.send();
}

pub use crate::clock::UnixTime;

pub(crate) fn optional<T>(result: rusqlite::Result<T>) -> Result<Option<T>> {
    Ok(result.optional()?)
}

pub use settings::{get as get_setting_in, set as set_setting_in};

impl Store {
    pub async fn setting(&self, key: &'static str) -> Result<Option<String>> {
        self.read(move |conn| settings::get(conn, key)).await
    }

    pub async fn set_setting(&self, key: &'static str, value: String, now: UnixTime) -> Result<()> {
        self.write(move |conn| settings::set(conn, key, &value, now))
            .await
    }
}

/// A store on a new database in a temporary directory, for the store's unit tests.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("open store");
    (dir, store)
}

/// A user with nothing but a login, for unit tests; its id.
#[cfg(test)]
pub(crate) async fn add_user(store: &Store, login: &str) -> i64 {
    let draft = users::UserDraft {
        user: NewUser {
            login: login.to_owned(),
            first_name: String::new(),
            last_name: String::new(),
            email: None,
            phone: None,
            password_hash: None,
        },
        enabled: true,
    };
    let entry = AuditEntry::new(1, "test", "test", "ok");
    store.create_user(draft, entry, 1).await.expect("user").id
}

/// A resource with the default settings (five failures lock a token), for unit tests; its id.
#[cfg(test)]
pub(crate) async fn add_resource(store: &Store, name: &str) -> i64 {
    let resource = NewResource {
        name: name.to_owned(),
        description: String::new(),
        fail_limit: 5,
        password_required: false,
        auto_unlock_seconds: None,
        without_second_factor: Default::default(),
    };
    let entry = AuditEntry::new(1, "test", "test", "ok");
    store
        .create_resource(resource, entry, 1)
        .await
        .expect("resource")
        .id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_job_rolls_back_only_itself() {
        let (_dir, store) = temp_store();
        let failing = store
            .submit(
                |conn| {
                    settings::set(conn, "a", "1", 1)?;
                    Err::<(), _>(StoreError::Conflict("no".into()))
                },
                Route::direct(),
            )
            .expect("submit");
        let passing = store
            .submit(|conn| settings::set(conn, "b", "2", 1), Route::direct())
            .expect("submit");
        assert!(failing.blocking_recv().expect("answer").is_err());
        passing.blocking_recv().expect("answer").expect("written");
        let a = store
            .read_blocking(|c| settings::get(c, "a"))
            .expect("read");
        let b = store
            .read_blocking(|c| settings::get(c, "b"))
            .expect("read");
        assert_eq!(a, None);
        assert_eq!(b.as_deref(), Some("2"));
    }

    #[test]
    fn many_concurrent_writers_never_see_a_locked_database() {
        let (_dir, store) = temp_store();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let key = format!("k{t}-{i}");
                        store
                            .write_blocking(move |conn| settings::set(conn, &key, "v", 1))
                            .expect("write");
                        store
                            .read_blocking(|conn| settings::get(conn, "k0-0"))
                            .expect("read");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        let count: i64 = store
            .read_blocking(|c| Ok(c.query_row("SELECT COUNT(*) FROM settings", [], |r| r.get(0))?))
            .expect("count");
        assert_eq!(count, 1600);
    }

    #[test]
    fn writes_still_waiting_when_the_store_closes_are_answered_and_kept() {
        let (dir, store) = temp_store();
        let answers: Vec<_> = (0..300)
            .map(|i| {
                let key = format!("waiting-{i}");
                store
                    .submit(
                        move |conn| settings::set(conn, &key, "v", 1),
                        Route::direct(),
                    )
                    .expect("submit")
            })
            .collect();
        store.close();
        for answer in answers {
            answer.blocking_recv().expect("answered").expect("written");
        }
        let reopened =
            Store::open(&dir.path().join(DATABASE_FILE), StoreOptions::default()).expect("open");
        let count: i64 = reopened
            .read_blocking(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM settings WHERE key LIKE 'waiting-%'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .expect("count");
        assert_eq!(count, 300);
    }

    #[test]
    fn a_database_from_a_newer_otpgate_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(DATABASE_FILE);
        Store::open(&path, StoreOptions::default())
            .expect("open")
            .close();
        let conn = Connection::open(&path).expect("open raw");
        conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'future', '2030-01-01T00:00:00Z', '0')",
            [],
        )
        .expect("insert");
        drop(conn);
        let error = Store::open(&path, StoreOptions::default()).expect_err("must refuse");
        assert!(
            matches!(error, StoreError::NewerSchema { found: 999, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("newer than this otpgate"));
    }

    fn page_size(path: &Path) -> i64 {
        let conn = Connection::open(path).expect("open raw");
        conn.query_row("PRAGMA page_size", [], |row| row.get(0))
            .expect("page size")
    }

    #[test]
    fn a_new_database_has_small_pages_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let new = dir.path().join("new.db");
        let store = Store::open(&new, StoreOptions::default()).expect("open new");
        store.close();
        assert_eq!(page_size(&new), PAGE_SIZE);

        let older = dir.path().join("older.db");
        let conn = Connection::open(&older).expect("create older");
        conn.execute_batch(
            "PRAGMA page_size = 4096; CREATE TABLE kept (x); INSERT INTO kept VALUES (42);",
        )
        .expect("older database");
        drop(conn);
        let store = Store::open(&older, StoreOptions::default()).expect("open older");
        let kept: i64 = store
            .read_blocking(|conn| Ok(conn.query_row("SELECT x FROM kept", [], |row| row.get(0))?))
            .expect("older data");
        store.close();
        assert_eq!(kept, 42);
        assert_eq!(page_size(&older), 4096);
    }

    /// A job that holds the writer until `go` is sent, so that what is sent meanwhile lands
    /// in one batch.
    fn hold_the_writer(store: &Store) -> std_mpsc::Sender<()> {
        let (go, wait) = std_mpsc::channel::<()>();
        store
            .submit(
                move |_| {
                    let _ = wait.recv();
                    Ok(())
                },
                Route::direct(),
            )
            .expect("submit");
        go
    }

    /// Judges Ann's HOTP token: `outcome` written as it is, with `tally`.
    async fn judged(
        store: &Store,
        outcome: auth::Outcome,
        tally: Option<auth::Tally>,
    ) -> Result<auth::Applied> {
        let judged = store.judge(hot::tests::ann("ann"), 10, move |_| ((), outcome, tally));
        judged.await.map(|((), applied)| applied)
    }

    fn claim_step(step: i64, actor: &str) -> auth::Outcome {
        auth::Outcome::Claim {
            claim: auth::Claim::Step {
                token_id: 1,
                step,
                drift: 0,
            },
            transaction: None,
            auto_unlock: None,
            entry: AuditEntry::new(10, actor, "authenticate", "ok"),
        }
    }

    async fn audit_lines(store: &Store) -> Vec<(String, String, Option<String>)> {
        store
            .read(|conn| {
                let mut statement =
                    conn.prepare("SELECT actor, result, reason FROM audit_log ORDER BY id")?;
                let lines = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(lines)
            })
            .await
            .expect("audit")
    }

    async fn last_step(store: &Store) -> i64 {
        let step = store.read(|conn| {
            Ok(
                conn.query_row("SELECT last_step FROM tokens WHERE id = 1", [], |row| {
                    row.get(0)
                })?,
            )
        });
        step.await.expect("token")
    }

    #[tokio::test]
    async fn judgements_in_one_batch_write_each_job_s_audit_line_and_none_of_a_failed_job() {
        let (_dir, store) = temp_store();
        hot::tests::ann_on_the_vpn(&store).await;
        // Counting a failure of user 666 fails, after its job gave its audit line.
        let refuse =
            "CREATE TRIGGER refuse BEFORE INSERT ON login_failures WHEN NEW.account_id = 666
                      BEGIN SELECT RAISE(ABORT, 'refused'); END";
        store
            .write(move |conn| Ok(conn.execute_batch(refuse)?))
            .await
            .expect("trigger");
        let failing = auth::Tally {
            counted: logins::Counted {
                account: logins::Account::User(666),
                address: None,
            },
            count: auth::Count::Failure,
            success_writes: false,
            notice: logins::LockNotice {
                lock_after: 5,
                entry: AuditEntry::new(10, "lock", "lock", "ok"),
            },
        };
        let go = hold_the_writer(&store);
        let first = judged(&store, claim_step(4, "first"), None);
        let again = judged(&store, claim_step(4, "again"), None);
        let failed = judged(
            &store,
            auth::Outcome::Record(AuditEntry::new(10, "failed", "x", "ok")),
            Some(failing),
        );
        let (first, again, failed, ()) = tokio::join!(first, again, failed, async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            go.send(()).expect("writer held");
        });
        assert!(first.expect("first").won);
        assert!(!again.expect("again").won, "the same step twice");
        assert!(failed.is_err());
        assert_eq!(
            audit_lines(&store).await,
            [
                ("first".into(), "ok".into(), None),
                ("again".into(), "rejected".into(), Some("replayed".into())),
            ]
        );
        assert_eq!(last_step(&store).await, 4);
    }

    /// How many of Ann's tokens a judgement sees, through the writer's kept rows.
    async fn tokens_seen(store: &Store) -> usize {
        let seen = store.judge(hot::tests::ann("ann"), 10, |context| {
            (context.tokens.len(), auth::Outcome::Nothing, None)
        });
        seen.await.expect("judged").0
    }

    async fn generation(store: &Store) -> i64 {
        let read = store.read(|conn| {
            Ok(conn.query_row("SELECT generation FROM row_changes", [], |row| row.get(0))?)
        });
        read.await.expect("generation")
    }

    #[tokio::test]
    async fn a_change_between_two_judgements_of_one_batch_is_seen_by_the_second() {
        let (_dir, store) = temp_store();
        hot::tests::ann_on_the_vpn(&store).await;
        assert_eq!(tokens_seen(&store).await, 1, "kept from now on");
        let go = hold_the_writer(&store);
        let unassign = store.write(|conn| Ok(conn.execute_batch("DELETE FROM token_resources")?));
        let (before, unassigned, after, ()) =
            tokio::join!(tokens_seen(&store), unassign, tokens_seen(&store), async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                go.send(()).expect("writer held");
            });
        unassigned.expect("unassigned");
        assert_eq!((before, after), (1, 0));
    }

    /// The writer reads the generation once a transaction while only judgements run: what a
    /// judgement writes must never move it.
    #[tokio::test]
    async fn what_judgements_write_moves_no_generation() {
        let (_dir, store) = temp_store();
        hot::tests::ann_on_the_vpn(&store).await;
        let before = generation(&store).await;
        let lock = auth::Tally {
            counted: logins::Counted {
                account: logins::Account::User(1),
                address: Some("192.0.2.1".into()),
            },
            count: auth::Count::Failure,
            success_writes: false,
            notice: logins::LockNotice {
                lock_after: 1,
                entry: AuditEntry::new(10, "lock", "lock", "ok"),
            },
        };
        let penalty = auth::Penalty {
            token_ids: vec![1],
            fail_limit: 1,
            challenge_ids: Vec::new(),
        };
        let penalise = auth::Outcome::Penalise {
            penalty,
            entry: AuditEntry::new(10, "penalised", "authenticate", "rejected"),
        };
        let success = auth::Tally {
            count: auth::Count::ByClaim,
            success_writes: true,
            ..lock.clone()
        };
        assert!(
            judged(&store, penalise, Some(lock))
                .await
                .expect("penalised")
                .locked
        );
        // The token locked at 10 unlocks at once: the claim clears its failures and lock.
        let claim = auth::Outcome::Claim {
            claim: auth::Claim::Step {
                token_id: 1,
                step: 7,
                drift: 1,
            },
            transaction: None,
            auto_unlock: Some(0),
            entry: AuditEntry::new(10, "claimed", "authenticate", "ok"),
        };
        assert!(
            judged(&store, claim, Some(success))
                .await
                .expect("claimed")
                .won
        );
        assert_eq!(last_step(&store).await, 7);
        assert_eq!(generation(&store).await, before);
    }

    #[tokio::test]
    async fn an_audit_line_that_cannot_be_written_after_the_batch_takes_the_batch_down() {
        let (_dir, store) = temp_store();
        hot::tests::ann_on_the_vpn(&store).await;
        let refuse = "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.actor = 'boom'
                      BEGIN SELECT RAISE(ABORT, 'refused'); END";
        store
            .write(move |conn| Ok(conn.execute_batch(refuse)?))
            .await
            .expect("trigger");
        let go = hold_the_writer(&store);
        let (boom, other, ()) = tokio::join!(
            judged(&store, claim_step(4, "boom"), None),
            judged(&store, claim_step(5, "other"), None),
            async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                go.send(()).expect("writer held");
            }
        );
        assert!(boom.is_err());
        assert!(other.is_err(), "the whole batch failed");
        assert_eq!(audit_lines(&store).await, []);
        assert_eq!(last_step(&store).await, 3, "no claim stands unrecorded");
        assert!(
            judged(&store, claim_step(4, "later"), None)
                .await
                .expect("judged")
                .won
        );
    }
}
