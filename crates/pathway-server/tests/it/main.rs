//! `pathway serve` driven over HTTP: each test spawns the application on
//! port 0 against its own fresh PostgreSQL database (or an embedded store in
//! a temporary directory) and talks to it with a plain HTTP client and the
//! generated gRPC client.

mod api;
mod cluster;
mod erasure;
mod grpc;
mod helpers;
mod hostile;
mod workers;
