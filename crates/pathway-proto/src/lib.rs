//! Pathway's wire format, generated from `proto/` at build time.
//!
//! `events::v1::Event` is the payload of every stored event (a oneof with one
//! variant per domain event) and `events::v1::EventEnvelope` its metadata. The
//! format is versioned by package; golden fixtures in `tests/fixtures` pin the
//! bytes so it can never change silently.

pub mod events {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/pathway.events.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/event_types.rs"));
    }
}

/// Department views of events, as published to each department over NATS.
pub mod views {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/pathway.views.v1.rs"));
    }
}

/// The graduate exchange between Education and Pathway: cohort batches in,
/// status-only outcomes and rejections out.
pub mod exchange {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/pathway.exchange.v1.rs"));
    }
}

/// The gRPC API of `pathway serve` (feature `grpc`): request and response
/// messages, `pathway_server::PathwayServer` and `pathway_client::PathwayClient`.
#[cfg(feature = "grpc")]
pub mod api {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/pathway.api.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/client/pathway.api.v1.rs"));
    }
}

#[cfg(feature = "grpc")]
pub mod codec;

/// The compiled schema of the published messages (`pathway.views.v1` and
/// `pathway.exchange.v1`), for decoding them by reflection (JSON output) and
/// for their golden fixtures.
pub const PUBLISHED_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/published_descriptor_set.bin"));

/// The compiled schema (a `FileDescriptorSet`), for reflection in tests and tools.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The schema version of every payload in `pathway.events.v1`.
pub const SCHEMA_VERSION_V1: u32 = 1;

pub use prost::Message;
pub use prost_types::Timestamp;
