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
    let watch = pathway_sqlite_vfs::watch(&w).expect("opened through the shim");
    assert_eq!(watch.write_failed(), None);
    drop(w);
    let r = reader(&path);
    assert_eq!(integrity(&r), "ok");
    assert_eq!(contents(&r), expected(0..10_010));
    assert!(
        pathway_sqlite_vfs::watch(&r).is_none(),
        "not through the shim"
    );
}

/// Set in the child process of the write-failure test: its database.
const CHILD_DB_ENV: &str = "PATHWAY_VFS_TEST_CHILD_DB";
/// The child's file size limit (`RLIMIT_FSIZE`): its WAL reaches it after a
/// few dozen commits.
const CHILD_FILE_BYTES_MAX: u64 = 256 * 1024;
const ROWS_PER_COMMIT: i64 = 20;

#[test]
fn a_deferred_write_that_fails_after_its_commit_is_reported_and_never_half_read() {
    if let Ok(db) = std::env::var(CHILD_DB_ENV) {
        return commit_until_a_write_fails(std::path::Path::new(&db));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    insert(&writer(&path, -8192), 0..ROWS_PER_COMMIT);
    // The child runs this test again with a file size limit; writes beyond
    // it fail with EFBIG (SIGXFSZ ignored, which `exec` keeps).
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; exec prlimit --fsize={CHILD_FILE_BYTES_MAX} \"$0\" --exact \
             a_deferred_write_that_fails_after_its_commit_is_reported_and_never_half_read \
             --nocapture --test-threads 1"
        ))
        .arg(exe)
        .env(CHILD_DB_ENV, &path)
        .output()
        .expect("run the child (needs sh and prlimit from util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let durable: i64 = stdout
        .split("rows before the failed commit: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    assert!(
        durable > ROWS_PER_COMMIT,
        "the limit was hit at once: {stdout}"
    );
    // Reopened without the limit: every commit before the failed one, and
    // nothing of it (its frames are missing or torn, so recovery stops
    // before it).
    let r = reader(&path);
    assert_eq!(integrity(&r), "ok");
    assert_eq!(contents(&r), expected(0..durable));
}

/// The child: commits until a write the shim deferred to the commit's
/// barrier fails, checks that it is reported and that the connection
/// refuses to go on, and prints how many rows committed before.
fn commit_until_a_write_fails(path: &std::path::Path) {
    let mut w = writer(path, -8192);
    // No checkpoint: only the WAL grows, so the failing write is a WAL write.
    w.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("autocheckpoint");
    let watch = pathway_sqlite_vfs::watch(&w).expect("opened through the shim");
    let mut rows = ROWS_PER_COMMIT;
    loop {
        let tx = w.transaction().expect("begin");
        insert(&tx, rows..rows + ROWS_PER_COMMIT);
        // SQLite sees its commit succeed: the frames went out in the
        // barrier before the commit was published, and failed there.
        tx.commit().expect("commit");
        if let Some(code) = watch.write_failed() {
            assert_ne!(code, 0);
            let again = (|| -> rusqlite::Result<()> {
                let tx = w.transaction()?;
                let (k, v) = row(1_000_000);
                tx.execute(
                    "INSERT INTO t (id, k, v) VALUES (?1, ?2, ?3)",
                    params![1_000_000, k, v],
                )?;
                tx.commit()
            })();
            assert!(again.is_err(), "a write after the failure was accepted");
            println!("rows before the failed commit: {rows}");
            return;
        }
        rows += ROWS_PER_COMMIT;
        assert!(
            rows < 100_000,
            "no write failed under a {CHILD_FILE_BYTES_MAX}-byte file size limit"
        );
    }
}
