//! Tests of the bus against a real `nats-server` started per test on a free
//! port with JetStream in a temporary directory (see `server`).

mod exchange_e2e;
mod permissions;
mod postgres;
mod relay;
mod server;
mod views;

/// Per-stream bound in tests: small, so the server accepts seven streams on any disk.
pub(crate) const TEST_STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024;

/// A relay with test-sized streams.
pub(crate) fn test_relay<S, C>(
    store: S,
    coordinator: C,
    client: async_nats::Client,
) -> pathway_bus::relay::Relay<S, C>
where
    S: pathway_store::EventStore + Clone,
    C: pathway_bus::coordinator::Coordinator,
{
    pathway_bus::relay::Relay::new(store, coordinator, client)
        .with_stream_max_bytes(TEST_STREAM_MAX_BYTES)
}
