//! The contract between projections and the projector runtime: table
//! schemas, column values, a transaction to write rows in, and the
//! `Projection` trait.

use chrono::{DateTime, Utc};
use pathway_domain::pb;

use crate::views::View;

/// Type of a read-model column. Dates are stored as ISO 8601 text
/// (`YYYY-MM-DD`), money as integer fen, booleans as booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Bool,
}

/// One column of a read-model table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

impl Column {
    pub const fn text(name: &'static str) -> Self {
        Column {
            name,
            ty: ColumnType::Text,
        }
    }
    pub const fn int(name: &'static str) -> Self {
        Column {
            name,
            ty: ColumnType::Int,
        }
    }
    pub const fn bool(name: &'static str) -> Self {
        Column {
            name,
            ty: ColumnType::Bool,
        }
    }
}

/// A read-model table: a primary key and value columns. Value columns of an
/// absent row read as NULL (text, bool) or 0 (int) until written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static [Column],
    pub values: &'static [Column],
}

impl Table {
    /// Every column, key first.
    pub fn columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().chain(self.values)
    }
}

/// A column value; as JSON, `null`, a boolean, an integer or a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}
impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i.into())
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Option<chrono::NaiveDate>> for Value {
    fn from(d: Option<chrono::NaiveDate>) -> Self {
        d.map_or(Value::Null, |d| Value::Text(d.to_string()))
    }
}

/// Why applying or storing a projection failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed.
    #[error("read model storage: {0}")]
    Storage(String),
    /// The log failed.
    #[error("event log: {0}")]
    Store(#[from] pathway_store::StoreError),
    /// An event could not be decoded.
    #[error("event at position {position}: {detail}")]
    Decode { position: u64, detail: String },
    /// A projection asked for something its schema does not have.
    #[error("projection {projection}: {detail}")]
    Schema {
        projection: &'static str,
        detail: String,
    },
    /// No such read model.
    #[error(
        "unknown read model {0:?} (known: dpf, hrss, civil_affairs, education, sasac, committee)"
    )]
    UnknownModel(String),
}

/// The rows of one department's tables inside the projector's open
/// transaction. Reads see earlier writes of the same transaction.
pub trait Tx {
    /// The value columns of the row with `key`, in table order, if it exists.
    fn get(&mut self, table: &Table, key: &[Value]) -> Result<Option<Vec<Value>>, ProjectionError>;
    /// The value column `column` of the row with `key`, if the row exists.
    /// (The runtime's cache answers it without copying the row.)
    fn value(
        &mut self,
        table: &Table,
        key: &[Value],
        column: &str,
    ) -> Result<Option<Value>, ProjectionError> {
        let Some(i) = table.values.iter().position(|c| c.name == column) else {
            return Err(ProjectionError::Schema {
                projection: "?",
                detail: format!("table {} has no value column {column}", table.name),
            });
        };
        Ok(self
            .get(table, key)?
            .map(|row| row.into_iter().nth(i).unwrap_or(Value::Null)))
    }
    /// Whether the row with `key` exists.
    fn exists(&mut self, table: &Table, key: &[Value]) -> Result<bool, ProjectionError> {
        Ok(self.get(table, key)?.is_some())
    }
    /// Insert the row, or overwrite the named value columns of an existing one.
    fn upsert(
        &mut self,
        table: &Table,
        key: &[Value],
        values: &[(&str, Value)],
    ) -> Result<(), ProjectionError>;
    /// Add `delta` to integer columns, creating the row with zeros if absent.
    fn add(
        &mut self,
        table: &Table,
        key: &[Value],
        deltas: &[(&str, i64)],
    ) -> Result<(), ProjectionError>;
    /// Delete the row if it exists.
    fn delete(&mut self, table: &Table, key: &[Value]) -> Result<(), ProjectionError>;
}

/// An event as a projection receives it: its place in the log, the envelope
/// facts every department may know, and this department's view of it.
#[derive(Debug, Clone)]
pub struct ProjectedEvent<V> {
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
    pub stream_id: std::sync::Arc<str>,
    /// The department that recorded it; [`pb::Department::Unspecified`]
    /// when no projection of the run reads it ([`Projection::reads_actor`]).
    pub actor_department: pb::Department,
    pub view: V,
}

/// One department's read model.
pub trait Projection: Send + Sync + 'static {
    /// Name of the model and of its PostgreSQL schema / SQLite file, e.g. `dpf`.
    fn name(&self) -> &'static str;
    /// Its tables.
    fn tables(&self) -> &'static [Table];
    /// Applies one event: the runtime calls `view` on every event in order and
    /// `apply` on those the department may see.
    fn apply(&self, event: &ProjectedEvent<View>, tx: &mut dyn Tx) -> Result<(), ProjectionError>;
    /// This department's view of an event, or `None` if it sees nothing of it.
    fn view(&self, event: &pathway_domain::Event) -> Option<View>;
    /// Whether `apply` reads [`ProjectedEvent::actor_department`]. When no
    /// projection of a run does, the runtime does not read the events'
    /// envelopes, and the field is [`pb::Department::Unspecified`].
    fn reads_actor(&self) -> bool {
        true
    }
}
