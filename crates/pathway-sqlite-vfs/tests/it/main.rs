//! The WAL-buffering VFS against real SQLite databases: what one connection
//! commits through it is what every other connection reads, at once and
//! after reopening, whatever the transaction did on the way.

use rusqlite::{Connection, OpenFlags, params};

fn writer(path: &std::path::Path, cache_pages: i64) -> Connection {
    let vfs = pathway_sqlite_vfs::register().expect("register");
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        vfs,
    )
    .expect("open through the shim");
    configure(conn, cache_pages)
}

/// A writer through the default VFS (another process would be one).
fn plain_writer(path: &std::path::Path, cache_pages: i64) -> Connection {
    configure(Connection::open(path).expect("open"), cache_pages)
}

fn configure(conn: Connection, cache_pages: i64) -> Connection {
    conn.pragma_update(None, "page_size", 2048)
        .expect("page size");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.pragma_update(None, "cache_size", cache_pages)
        .expect("cache");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v BLOB NOT NULL)",
    )
    .expect("schema");
    conn
}

fn reader(path: &std::path::Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("reader")
}

/// A key that lands at a random place in the index, and a value of `n`.
fn row(n: i64) -> (Vec<u8>, Vec<u8>) {
    let key = (n as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .to_be_bytes()
        .to_vec();
    (key, vec![(n % 251) as u8; 300])
}

fn insert(conn: &Connection, range: std::ops::Range<i64>) {
    let mut stmt = conn
        .prepare_cached("INSERT INTO t (id, k, v) VALUES (?1, ?2, ?3)")
        .expect("prepare");
    for n in range {
        let (k, v) = row(n);
        stmt.execute(params![n, k, v]).expect("insert");
    }
}

/// Every row of `t`, as `conn` sees it.
fn contents(conn: &Connection) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut stmt = conn
        .prepare("SELECT id, k, v FROM t ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn expected(range: std::ops::Range<i64>) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    range
        .map(|n| {
            let (k, v) = row(n);
            (n, k, v)
        })
        .collect()
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity")
}

#[test]
fn each_commit_is_readable_by_another_connection_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let mut w = writer(&path, -8192);
    let r = reader(&path);
    for group in 0..200 {
        let tx = w.transaction().expect("begin");
        insert(&tx, group * 64..(group + 1) * 64);
        tx.commit().expect("commit");
        // The reader (default VFS, its own file handles) sees the commit
        // whole: its frames were written before the commit was published.
        assert_eq!(
            contents(&r),
            expected(0..(group + 1) * 64),
            "after group {group}"
        );
    }
    assert_eq!(integrity(&r), "ok");
}

#[test]
fn transactions_that_spill_and_roll_back_leave_only_what_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    // A 16-page cache: a large transaction spills pages to the WAL and
    // rewrites frames it wrote earlier in the same transaction.
    let mut a = writer(&path, 16);
    let mut b = plain_writer(&path, 16);
    let tx = a.transaction().expect("begin");
    insert(&tx, 0..5_000);
    tx.commit().expect("commit");
    let tx = a.transaction().expect("begin");
    insert(&tx, 5_000..9_000);
    tx.rollback().expect("rollback");
    // Another connection, not through the shim, commits over the offsets
    // the rolled-back transaction had written.
    let tx = b.transaction().expect("begin");
    insert(&tx, 5_000..6_000);
    tx.commit().expect("commit");
    let tx = a.transaction().expect("begin");
    insert(&tx, 6_000..7_000);
    tx.commit().expect("commit");
    assert_eq!(contents(&reader(&path)), expected(0..7_000));
    drop((a, b));
    let reopened = reader(&path);
    assert_eq!(integrity(&reopened), "ok");
    assert_eq!(contents(&reopened), expected(0..7_000));
}

#[test]
fn a_savepoint_rolled_back_inside_a_transaction_is_not_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let mut w = writer(&path, 16);
    let mut tx = w.transaction().expect("begin");
    insert(&tx, 0..2_000);
    {
        let mut sp = tx.savepoint().expect("savepoint");
        insert(&sp, 2_000..4_000);
        sp.rollback().expect("rollback to savepoint");
    }
    insert(&tx, 2_000..2_500);
    tx.commit().expect("commit");
    drop(w);
    let r = reader(&path);
    assert_eq!(integrity(&r), "ok");
    assert_eq!(contents(&r), expected(0..2_500));
}

#[test]
fn checkpoints_and_reopening_keep_every_committed_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let mut w = writer(&path, -8192);
    w.pragma_update(None, "wal_autocheckpoint", 64)
        .expect("autocheckpoint");
    for group in 0..100 {
        let tx = w.transaction().expect("begin");
        insert(&tx, group * 100..(group + 1) * 100);
        tx.commit().expect("commit");
    }
    let (busy, _, _): (i64, i64, i64) = w
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0);
    insert(&w, 10_000..10_010);
    drop(w);
    let r = reader(&path);
    assert_eq!(integrity(&r), "ok");
    assert_eq!(contents(&r), expected(0..10_010));
    assert_eq!(pathway_sqlite_vfs::write_failed(&path), None);
}
