//! SQLite's own page cache, with one key moved so that a commit does not scan the whole cache.
//!
//! When SQLite rebalances sibling b-tree pages whose page numbers are out of order, it swaps
//! them through a temporary key: the number of the lock-byte page, which never holds data
//! (page 1,048,577 at 1 KiB pages). The default page cache remembers the highest key it ever
//! held, and every transaction ends by dropping the pages past the end of the database; when
//! that highest key lies more than a hash table's length past the end, the drop walks every
//! page in the cache instead of a few hash slots. The writer's cache holds about 8,000 pages
//! and rebalances on almost every commit under load (an authentication inserts at a random
//! place of the audit log's per-user index), so that walk was 12 % of the writer's time.
//!
//! This wrapper hands every call to the default cache unchanged, except that it stores the
//! lock-byte page under key 0, which SQLite never uses (pages are numbered from 1). Both are
//! keys no real page has, and a page sits under the temporary key only between two calls of
//! one rebalance, never across the end of a transaction, so no truncation can miss it. The
//! highest key then stays near the end of the database, and the drop stays a few slots long.

use std::ffi::{c_int, c_uint};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

/// The byte offset SQLite locks files at (`PENDING_BYTE`); the page holding it is never used.
const PENDING_BYTE: u32 = 0x4000_0000;

/// The default cache's methods, saved before ours replace them.
struct Default(ffi::sqlite3_pcache_methods2);

// SAFETY: the methods are plain function pointers and a context pointer that SQLite shares
// across threads itself; they are written once, before any use, and only read afterwards.
unsafe impl Send for Default {}
unsafe impl Sync for Default {}

static DEFAULT: OnceLock<Default> = OnceLock::new();

/// How many pages were moved to the lock-byte page's key so far, in this process.
static MOVED: AtomicU64 = AtomicU64::new(0);

/// How many times a rebalance moved a page through the lock-byte page's key in this process,
/// through the wrapper: lets a test see that it exercised that path.
pub fn moves_through_lock_byte_page() -> u64 {
    MOVED.load(Ordering::Relaxed)
}

/// One cache: the default cache's handle, and the key this wrapper moves to 0.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    lock_byte_page: c_uint,
}

/// Installs the wrapper for every connection opened from now on. It must run before SQLite
/// is initialised, that is before the process opens its first connection; when it is too late,
/// SQLite refuses the change and the default cache stays, which is correct, only slower.
/// Returns whether the wrapper is in use.
pub fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| unsafe { replace_default() })
}

unsafe fn replace_default() -> bool {
    let mut default = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
    // SAFETY: GETPCACHE2 writes one `sqlite3_pcache_methods2` through the pointer.
    let got = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, default.as_mut_ptr()) };
    if got != ffi::SQLITE_OK {
        return false;
    }
    // SAFETY: SQLite filled it in (zeroed memory is a valid value of this struct anyway).
    let default = unsafe { default.assume_init() };
    let complete = default.xCreate.is_some()
        && default.xCachesize.is_some()
        && default.xPagecount.is_some()
        && default.xFetch.is_some()
        && default.xUnpin.is_some()
        && default.xRekey.is_some()
        && default.xTruncate.is_some()
        && default.xDestroy.is_some();
    if !complete || DEFAULT.set(Default(default)).is_err() {
        return false;
    }
    let ours = ffi::sqlite3_pcache_methods2 {
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: default.xShrink.map(|_| shrink as _),
        ..default
    };
    // SAFETY: PCACHE2 copies the struct; ours stays valid for the call.
    unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours as *const _) == ffi::SQLITE_OK }
}

fn methods() -> &'static ffi::sqlite3_pcache_methods2 {
    // Ours are only installed after DEFAULT is set, so SQLite cannot call them before.
    &DEFAULT
        .get()
        .expect("the default page cache is saved first")
        .0
}

/// Swaps the lock-byte page's key with 0, in both directions; every other key stays.
fn key(cache: &Cache, key: c_uint) -> c_uint {
    if key == cache.lock_byte_page {
        0
    } else if key == 0 {
        cache.lock_byte_page
    } else {
        key
    }
}

/// SAFETY (for every method below): SQLite only passes back handles `create` returned and
/// not yet destroyed, from one connection at a time, as the page cache interface requires.
unsafe fn cache<'a>(handle: *mut ffi::sqlite3_pcache) -> &'a Cache {
    unsafe { &*(handle as *const Cache) }
}

unsafe extern "C" fn create(
    page: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = methods().xCreate else {
        return std::ptr::null_mut();
    };
    let inner = unsafe { create(page, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    // SQLite's page sizes are powers of two from 512 to 65,536; 0 moves no key.
    let lock_byte_page = match page {
        1.. => PENDING_BYTE / page.unsigned_abs() + 1,
        _ => 0,
    };
    Box::into_raw(Box::new(Cache {
        inner,
        lock_byte_page,
    }))
    .cast()
}

unsafe extern "C" fn cachesize(handle: *mut ffi::sqlite3_pcache, pages: c_int) {
    if let Some(f) = methods().xCachesize {
        unsafe { f(cache(handle).inner, pages) }
    }
}

unsafe extern "C" fn pagecount(handle: *mut ffi::sqlite3_pcache) -> c_int {
    match methods().xPagecount {
        Some(f) => unsafe { f(cache(handle).inner) },
        None => 0,
    }
}

unsafe extern "C" fn fetch(
    handle: *mut ffi::sqlite3_pcache,
    page: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let cache = unsafe { cache(handle) };
    match methods().xFetch {
        Some(f) => unsafe { f(cache.inner, key(cache, page), create) },
        None => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn unpin(
    handle: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(f) = methods().xUnpin {
        unsafe { f(cache(handle).inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    handle: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let cache = unsafe { cache(handle) };
    if new == cache.lock_byte_page {
        MOVED.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(f) = methods().xRekey {
        unsafe { f(cache.inner, page, key(cache, old), key(cache, new)) }
    }
}

unsafe extern "C" fn truncate(handle: *mut ffi::sqlite3_pcache, limit: c_uint) {
    if let Some(f) = methods().xTruncate {
        unsafe { f(cache(handle).inner, limit) }
    }
}

unsafe extern "C" fn destroy(handle: *mut ffi::sqlite3_pcache) {
    // SAFETY: `create` made this box, and SQLite destroys each cache once.
    let cache = unsafe { Box::from_raw(handle as *mut Cache) };
    if let Some(f) = methods().xDestroy {
        unsafe { f(cache.inner) }
    }
}

unsafe extern "C" fn shrink(handle: *mut ffi::sqlite3_pcache) {
    if let Some(f) = methods().xShrink {
        unsafe { f(cache(handle).inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_byte_page_and_key_zero_trade_places_and_every_other_key_stays() {
        let cache = Cache {
            inner: std::ptr::null_mut(),
            lock_byte_page: PENDING_BYTE / 1024 + 1,
        };
        assert_eq!(key(&cache, 1_048_577), 0);
        assert_eq!(key(&cache, 0), 1_048_577);
        for page in [1, 2, 1_048_576, 1_048_578, c_uint::MAX] {
            assert_eq!(key(&cache, page), page);
        }
        let unsized_cache = Cache {
            inner: std::ptr::null_mut(),
            lock_byte_page: 0,
        };
        assert_eq!(key(&unsized_cache, 0), 0);
        assert_eq!(key(&unsized_cache, 1_048_577), 1_048_577);
    }
}
