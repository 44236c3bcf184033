//! A `nats-server` child process for one test, on a free port of 127.0.0.1
//! with JetStream in a temporary store directory, and the port helpers it
//! waits with. The binary is [`crate::nats_server_binary`].

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest wait for a started server to accept connections (generous: a
/// restarted JetStream recovers its store first, on a loaded machine).
pub const NATS_READY_TIMEOUT_MS: u64 = 120_000;
/// Longest wait for a terminated server to close its port.
pub const NATS_STOP_TIMEOUT_MS: u64 = 120_000;
/// Pause between two probes of a port.
const PORT_POLL_MS: u64 = 20;

/// A `nats-server` child with JetStream, killed and reaped on drop. Its
/// port and store directory stay the same across restarts.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    /// JetStream's store directory; kept across restarts.
    store: tempfile::TempDir,
    /// A config file whose `port: 4222` and `/var/lib/nats/pathway` are
    /// replaced by this server's port and store.
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// A server with JetStream and no authentication, accepting connections
    /// when this returns.
    pub fn start() -> NatsServer {
        NatsServer::launch(None, Vec::new())
    }

    /// A server started from the config file `template`, its `port: 4222`
    /// and `/var/lib/nats/pathway` replaced by this server's port and store,
    /// with `env` (e.g. the passwords the config reads) in its environment.
    pub fn start_with_config(template: &Path, env: Vec<(String, String)>) -> NatsServer {
        NatsServer::launch(Some(template.to_owned()), env)
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

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM, as an operator would (JetStream
    /// flushes what it acknowledged), and waits until its port is closed.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        wait_until_port_closed(
            self.port,
            Duration::from_millis(NATS_STOP_TIMEOUT_MS),
            "nats-server",
        );
    }

    /// Starts the stopped server again on the same port and store, and waits
    /// until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let mut cmd = Command::new(binary());
        match &self.config {
            Some(template) => {
                let text = std::fs::read_to_string(template)
                    .unwrap_or_else(|e| panic!("read {}: {e}", template.display()));
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
        let child = self.child.insert(cmd.spawn().expect("spawn nats-server"));
        poll_port(
            self.port,
            true,
            Duration::from_millis(NATS_READY_TIMEOUT_MS),
            "nats-server",
            Some(child),
        );
    }

    /// [`terminate`](Self::terminate), then [`resume`](Self::resume).
    pub fn restart(&mut self) {
        self.terminate();
        self.resume();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The binary, looked up once per test process.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(crate::nats_server_binary)
}

/// A free TCP port on 127.0.0.1 (free when this returns).
pub fn free_port() -> u16 {
    crate::free_ports(1)[0]
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts connections; panics naming `what`
/// after `timeout`.
pub fn wait_until_port_open(port: u16, timeout: Duration, what: &str) {
    poll_port(port, true, timeout, what, None);
}

/// Waits until 127.0.0.1:`port` refuses connections; panics naming `what`
/// after `timeout`.
pub fn wait_until_port_closed(port: u16, timeout: Duration, what: &str) {
    poll_port(port, false, timeout, what, None);
}

/// Polls `port` until it is open (or closed), failing after `timeout`, or
/// at once when `child` (the process meant to open it) exits.
fn poll_port(port: u16, open: bool, timeout: Duration, what: &str, mut child: Option<&mut Child>) {
    let deadline = Instant::now() + timeout;
    while port_open(port) != open {
        if let Some(child) = child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("{what} exited ({status}) before accepting connections on port {port}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not {} port {port} within {timeout:?}",
            if open { "open" } else { "close" }
        );
        std::thread::sleep(Duration::from_millis(PORT_POLL_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_killed_resumed_restarted_and_terminated() {
        let mut server = NatsServer::start();
        assert!(port_open(server.port()));
        assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
        server.kill();
        assert!(
            !port_open(server.port()),
            "a killed server's port is closed"
        );
        server.resume();
        assert!(port_open(server.port()));
        server.restart();
        assert!(port_open(server.port()));
        server.terminate();
        assert!(!port_open(server.port()));
    }
}
