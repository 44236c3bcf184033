//! Tests against a real nats-server.
