//! The `nats-server` child process each test starts:
//! [`pathway_testkit::nats::NatsServer`], plus the deploy configuration.

use std::path::Path;

pub(crate) use pathway_testkit::nats::NatsServer;

/// A server started with `deploy/nats/pathway.conf` (port and store
/// directory replaced) and the passwords in `env`.
pub(crate) fn start_with_deploy_config(env: Vec<(String, String)>) -> NatsServer {
    NatsServer::start_with_config(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats/pathway.conf"),
        env,
    )
}
