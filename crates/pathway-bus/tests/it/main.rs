//! Tests of the bus against a real `nats-server` started per test on a free
//! port with JetStream in a temporary directory (see `server`).

mod permissions;
mod relay;
mod server;
mod views;
