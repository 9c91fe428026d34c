//! The page cache otpgate gives SQLite (src/store/pcache.rs), in a process of its own: SQLite
//! only takes a page cache before the process opens its first connection.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rows(conn: &Connection, sql: &str) -> BTreeMap<i64, i64> {
    let mut statement = conn.prepare(sql).expect("prepare");
    let found = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("query");
    found.collect::<rusqlite::Result<_>>().expect("rows")
}

#[test]
fn a_database_whose_pages_rebalance_out_of_order_stays_whole() {
    assert!(
        otpgate::store::install_sqlite_hooks().page_cache,
        "the wrapper must be installed before the first connection"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rebalance.db");
    let conn = Connection::open(&file).expect("open");
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA cache_size = -2000;
         CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);
         CREATE INDEX t_k ON t (k);",
    )
    .expect("schema");

    // Random inserts split index pages; deletes free pages that later splits reuse, so new
    // siblings come out of page-number order and SQLite swaps them through its temporary key.
    // Savepoints rolled back and whole transactions rolled back undo such swaps as well.
    let (mut numbers, mut kept, mut next_id) = (Numbers(0x9E37_79B9_7F4A_7C15), BTreeMap::new(), 1);
    for round in 0..120 {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let mut committed = kept.clone();
        for job in 0..8 {
            conn.execute_batch("SAVEPOINT job").expect("savepoint");
            let mut added = Vec::new();
            for _ in 0..40 {
                let k = (numbers.next() % 1_000_000) as i64;
                let v = "x".repeat((numbers.next() % 60) as usize);
                conn.execute(
                    "INSERT INTO t (id, k, v) VALUES (?1, ?2, ?3)",
                    params![next_id, k, v],
                )
                .expect("insert");
                added.push((next_id, k));
                next_id += 1;
            }
            if (round + job) % 5 == 0 {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
                    .expect("roll back job");
            } else {
                conn.execute_batch("RELEASE job").expect("release");
                committed.extend(added);
            }
        }
        if round % 7 == 3 {
            let low = (numbers.next() % 900_000) as i64;
            conn.execute(
                "DELETE FROM t WHERE k BETWEEN ?1 AND ?1 + 40000",
                params![low],
            )
            .expect("delete");
            committed.retain(|_, k| !(low..=low + 40_000).contains(k));
        }
        if round % 11 == 5 {
            conn.execute_batch("ROLLBACK").expect("roll back");
        } else {
            conn.execute_batch("COMMIT").expect("commit");
            kept = committed;
        }
    }

    assert!(
        otpgate::store::moves_through_lock_byte_page() > 0,
        "the workload never rebalanced pages out of order, so it did not test the wrapper"
    );
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    assert_eq!(rows(&conn, "SELECT id, k FROM t ORDER BY id"), kept);
    assert_eq!(
        rows(&conn, "SELECT id, k FROM t INDEXED BY t_k WHERE k >= 0"),
        kept
    );
    drop(conn);
    let fresh = Connection::open(&file).expect("reopen");
    assert_eq!(
        rows(&fresh, "SELECT id, k FROM t INDEXED BY t_k WHERE k >= 0"),
        kept
    );
}
