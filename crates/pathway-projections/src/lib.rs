//! Read models, one per department, built from the log.
//!
//! Three layers, each in its own module:
//! - [`views`]: each department's *view* of an event — only the fields
//!   DOMAIN.md lets that department see. Projections never touch the raw
//!   event; a field a department must not see cannot reach its tables.
//! - [`models`]: one [`Projection`] per department (`dpf`, `hrss`,
//!   `civil_affairs`, `education`, `sasac`, `committee`): its tables and how a
//!   view changes their rows.
//! - [`runtime`]: the projector. It follows the log from a checkpoint and, for
//!   each batch, writes the rows and the new checkpoint in one transaction
//!   (SQLite file of the department for the embedded store, the department's
//!   schema in PostgreSQL), so a crash never loses or double-applies an event.
//!   It rebuilds a model from position 1 into fresh tables and swaps them in
//!   atomically while the old model keeps serving.

pub mod model;
pub mod models;
pub mod runtime;
pub mod views;

pub use model::{
    Column, ColumnType, ProjectedEvent, Projection, ProjectionError, Table, Tx, Value,
};
