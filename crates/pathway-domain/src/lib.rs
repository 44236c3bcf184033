//! The pure domain of Heilongjiang's programme to bring persons with
//! disabilities into work.
//!
//! Every aggregate is a decider: `decide(state, command, ctx) -> events |
//! rejection` and `evolve(state, event) -> state`. Events are the wire types of
//! `pathway-proto` (one source of truth for the format); commands are plain
//! Rust types with serde, so they can arrive as JSON or protobuf.
//!
//! This crate does no IO, reads no clock and draws no random numbers: time
//! comes in through [`Context`], identifiers come in with the commands, and
//! clippy's `disallowed-methods` (see `clippy.toml`) keeps it that way.

mod aggregate;
pub mod convert;
mod error;
pub mod personal;
pub mod policy;
pub mod validate;

pub mod employer;
pub mod governance;
pub mod graduates;
pub mod household;
pub mod person;
pub mod training;
pub mod welfare;

pub use aggregate::{Aggregate, Context};
pub use error::{Decision, Rejection};
pub use pathway_proto::events::v1 as pb;

/// A domain event: one variant per event type of `pathway.events.v1`.
pub type Event = pb::event::Kind;
