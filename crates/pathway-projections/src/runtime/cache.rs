//! The write-back row cache of a projector's batch transaction.
//!
//! A projection reads and writes rows one event at a time; many events touch
//! the same rows (a city's counters, a person's lookup). Inside one batch
//! transaction the cache serves [`Tx::get`] from memory once a row has been
//! read or written, and coalesces `upsert`/`add`/`delete` per (table, key),
//! so a counter bumped by a thousand events of a batch costs one write. The
//! coalesced writes are flushed to the backend in table order and, within a
//! table, in key order — always inside the batch transaction, before its
//! checkpoint is written, so rows and checkpoint still commit together.
//!
//! A row whose stored value is unknown and that is only written (never read)
//! is not loaded: its writes become one *merge* (set these columns, add
//! these deltas) that the backend applies as an upsert. A row that is read
//! is loaded once and from then on known in full.
//!
//! Known rows survive the commit of their batch (clean) and serve later
//! batches of the same writer: a writer only starts a batch after finding the
//! stored checkpoint where it left it, i.e. after nobody else wrote the
//! model. The cache is emptied when a batch fails and bounded by
//! [`PROJECTOR_CACHE_ROWS_MAX`](super::PROJECTOR_CACHE_ROWS_MAX): past it,
//! dirty rows are flushed (still inside the transaction) and clean ones
//! dropped.

use std::collections::{BTreeMap, HashSet};

use super::{check_key, check_value, value_columns};
use crate::model::{ColumnType, ProjectionError, Table, Tx, Value};

/// What a flush does to one column of a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Change {
    /// Left as stored (default value for a new row).
    Keep,
    /// Set to this value.
    Set(Value),
    /// Add this delta (a NULL counts as 0; a new row starts at 0).
    Add(i64),
}

/// One coalesced write of a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Write {
    Delete,
    /// Insert the row with these value-column changes (from the defaults),
    /// or apply them to the existing row. One change per value column.
    Merge(Vec<Change>),
}

impl Write {
    /// The shape of a merge: per value column 0 keep, 1 set, 2 add. Rows of
    /// one shape share a statement.
    pub(super) fn shape(changes: &[Change]) -> Vec<u8> {
        changes
            .iter()
            .map(|c| match c {
                Change::Keep => 0,
                Change::Set(_) => 1,
                Change::Add(_) => 2,
            })
            .collect()
    }
}

/// The read-model storage under the cache: point reads and flushes, inside
/// the open batch transaction.
pub(super) trait RowStore {
    /// The stored value columns of the row with `key`, in table order.
    fn load(&mut self, table: &Table, key: &[Value])
    -> Result<Option<Vec<Value>>, ProjectionError>;
    /// Applies `writes` (distinct keys, in key order) to `table`.
    fn flush(
        &mut self,
        table: &Table,
        writes: &[(&[Value], &Write)],
    ) -> Result<(), ProjectionError>;
}

#[derive(Debug)]
enum Entry {
    /// The row as it stands in the transaction (`None`: absent); `dirty` if
    /// that differs from what was last flushed.
    Known { row: Option<Vec<Value>>, dirty: bool },
    /// Writes to a row whose stored value is unknown.
    Blind(Vec<Change>),
}

/// The cached rows of one model, per table (in the projection's order).
#[derive(Debug)]
pub(super) struct RowCache {
    tables: Vec<(&'static str, BTreeMap<Vec<Value>, Entry>)>,
    rows: usize,
    rows_max: usize,
}

impl RowCache {
    pub(super) fn new(tables: &[Table], rows_max: usize) -> Self {
        RowCache {
            tables: tables.iter().map(|t| (t.name, BTreeMap::new())).collect(),
            rows: 0,
            rows_max,
        }
    }

    /// Forgets everything (after a failed batch).
    pub(super) fn clear(&mut self) {
        for (_, rows) in &mut self.tables {
            rows.clear();
        }
        self.rows = 0;
    }

    /// Rows held.
    pub(super) fn len(&self) -> usize {
        self.rows
    }

    fn index(&self, table: &Table) -> usize {
        self.tables
            .iter()
            .position(|(name, _)| *name == table.name)
            .expect("table checked by check_key")
    }

    /// Writes every dirty row to `store`, table by table in key order. Rows
    /// written blind are dropped (their stored value is unknown), known ones
    /// stay, clean.
    pub(super) fn flush(
        &mut self,
        store: &mut dyn RowStore,
        tables: &[Table],
    ) -> Result<(), ProjectionError> {
        for table in tables {
            let i = self.index(table);
            let rows = &mut self.tables[i].1;
            let mut writes: Vec<(&[Value], Write)> = Vec::new();
            for (key, entry) in rows.iter() {
                match entry {
                    Entry::Known { dirty: false, .. } => {}
                    Entry::Known { row: None, .. } => writes.push((key, Write::Delete)),
                    Entry::Known { row: Some(row), .. } => writes.push((
                        key,
                        Write::Merge(row.iter().cloned().map(Change::Set).collect()),
                    )),
                    Entry::Blind(changes) => writes.push((key, Write::Merge(changes.clone()))),
                }
            }
            if writes.is_empty() {
                continue;
            }
            let refs: Vec<(&[Value], &Write)> = writes.iter().map(|(k, w)| (*k, w)).collect();
            store.flush(table, &refs)?;
            drop(refs);
            drop(writes);
            rows.retain(|_, entry| match entry {
                Entry::Known { dirty, .. } => {
                    *dirty = false;
                    true
                }
                Entry::Blind(_) => false,
            });
        }
        self.rows = self.tables.iter().map(|(_, rows)| rows.len()).sum();
        Ok(())
    }

    /// Keeps the cache within its bound between events: flushes and, if
    /// still too large, drops every (now clean) row.
    pub(super) fn trim(
        &mut self,
        store: &mut dyn RowStore,
        tables: &[Table],
    ) -> Result<(), ProjectionError> {
        if self.rows <= self.rows_max {
            return Ok(());
        }
        self.flush(store, tables)?;
        if self.rows > self.rows_max / 2 {
            self.clear();
        }
        Ok(())
    }
}

/// Default of a value column of an absent row.
fn default_value(ty: ColumnType) -> Value {
    match ty {
        ColumnType::Int => Value::Int(0),
        ColumnType::Text | ColumnType::Bool => Value::Null,
    }
}

fn added(
    projection: &'static str,
    table: &Table,
    column: usize,
    current: &Value,
    delta: i64,
) -> Result<Value, ProjectionError> {
    let base = match current {
        Value::Int(i) => *i,
        _ => 0,
    };
    base.checked_add(delta)
        .map(Value::Int)
        .ok_or_else(|| ProjectionError::Schema {
            projection,
            detail: format!(
                "{}.{} overflows adding {delta} to {base}",
                table.name, table.values[column].name
            ),
        })
}

/// [`Tx`] over the cache and, under it, the batch transaction.
pub(super) struct CachedTx<'a> {
    pub(super) cache: &'a mut RowCache,
    pub(super) store: &'a mut dyn RowStore,
    pub(super) tables: &'a HashSet<&'static str>,
    pub(super) all_tables: &'static [Table],
    pub(super) projection: &'static str,
}

impl CachedTx<'_> {
    /// Writes the coalesced rows (before the checkpoint).
    pub(super) fn flush(&mut self) -> Result<(), ProjectionError> {
        self.cache.flush(self.store, self.all_tables)
    }

    /// Keeps the cache within its bound.
    pub(super) fn trim(&mut self) -> Result<(), ProjectionError> {
        self.cache.trim(self.store, self.all_tables)
    }

    fn rows(&mut self, table: &Table) -> &mut BTreeMap<Vec<Value>, Entry> {
        let i = self.cache.index(table);
        &mut self.cache.tables[i].1
    }

    /// The known row with `key`, loading it (and applying blind writes) if
    /// needed.
    fn known(&mut self, table: &Table, key: &[Value]) -> Result<&mut Entry, ProjectionError> {
        let i = self.cache.index(table);
        let entry = self.cache.tables[i].1.get(key);
        let replace = match entry {
            Some(Entry::Known { .. }) => None,
            Some(Entry::Blind(changes)) => {
                let changes = changes.clone();
                let stored = self.store.load(table, key)?;
                let mut row = stored.unwrap_or_else(|| {
                    table.values.iter().map(|c| default_value(c.ty)).collect()
                });
                for (column, change) in changes.into_iter().enumerate() {
                    match change {
                        Change::Keep => {}
                        Change::Set(v) => row[column] = v,
                        Change::Add(d) => {
                            row[column] = added(self.projection, table, column, &row[column], d)?
                        }
                    }
                }
                Some(Entry::Known {
                    row: Some(row),
                    dirty: true,
                })
            }
            None => {
                let row = self.store.load(table, key)?;
                self.cache.rows += 1;
                Some(Entry::Known { row, dirty: false })
            }
        };
        let rows = &mut self.cache.tables[i].1;
        if let Some(entry) = replace {
            rows.insert(key.to_vec(), entry);
        }
        Ok(rows.get_mut(key).expect("just ensured"))
    }

    fn write(
        &mut self,
        table: &Table,
        key: &[Value],
        known: impl FnOnce(&mut Vec<Value>) -> Result<(), ProjectionError>,
        blind: impl FnOnce(&mut Vec<Change>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let rows = self.rows(table);
        match rows.get_mut(key) {
            Some(Entry::Known { row, dirty }) => {
                let row =
                    row.get_or_insert_with(|| table.values.iter().map(|c| default_value(c.ty)).collect());
                known(row)?;
                *dirty = true;
            }
            Some(Entry::Blind(changes)) => blind(changes)?,
            None => {
                let mut changes = vec![Change::Keep; table.values.len()];
                blind(&mut changes)?;
                rows.insert(key.to_vec(), Entry::Blind(changes));
                self.cache.rows += 1;
            }
        }
        Ok(())
    }

    fn column_indexes<'n>(
        &self,
        table: &Table,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<Vec<usize>, ProjectionError> {
        let columns = value_columns(self.projection, table, names)?;
        Ok(columns
            .iter()
            .map(|c| {
                table
                    .values
                    .iter()
                    .position(|v| v.name == c.name)
                    .expect("value_columns found it")
            })
            .collect())
    }
}

impl Tx for CachedTx<'_> {
    fn get(&mut self, table: &Table, key: &[Value]) -> Result<Option<Vec<Value>>, ProjectionError> {
        check_key(self.projection, self.tables, table, key)?;
        match self.known(table, key)? {
            Entry::Known { row, .. } => Ok(row.clone()),
            Entry::Blind(_) => unreachable!("known() resolves blind rows"),
        }
    }

    fn upsert(
        &mut self,
        table: &Table,
        key: &[Value],
        values: &[(&str, Value)],
    ) -> Result<(), ProjectionError> {
        check_key(self.projection, self.tables, table, key)?;
        let columns = self.column_indexes(table, values.iter().map(|(n, _)| *n))?;
        for (&i, (_, value)) in columns.iter().zip(values) {
            let column = &table.values[i];
            check_value(self.projection, table, column.name, column.ty, value, false)?;
        }
        self.write(
            table,
            key,
            |row| {
                for (&i, (_, value)) in columns.iter().zip(values) {
                    row[i] = value.clone();
                }
                Ok(())
            },
            |changes| {
                for (&i, (_, value)) in columns.iter().zip(values) {
                    changes[i] = Change::Set(value.clone());
                }
                Ok(())
            },
        )
    }

    fn add(
        &mut self,
        table: &Table,
        key: &[Value],
        deltas: &[(&str, i64)],
    ) -> Result<(), ProjectionError> {
        check_key(self.projection, self.tables, table, key)?;
        let columns = self.column_indexes(table, deltas.iter().map(|(n, _)| *n))?;
        for &i in &columns {
            let column = &table.values[i];
            check_value(
                self.projection,
                table,
                column.name,
                column.ty,
                &Value::Int(0),
                false,
            )?;
        }
        let projection = self.projection;
        self.write(
            table,
            key,
            |row| {
                for (&i, (_, delta)) in columns.iter().zip(deltas) {
                    row[i] = added(projection, table, i, &row[i], *delta)?;
                }
                Ok(())
            },
            |changes| {
                for (&i, (_, delta)) in columns.iter().zip(deltas) {
                    changes[i] = match &changes[i] {
                        Change::Keep => Change::Add(*delta),
                        Change::Add(d) => Change::Add(d.checked_add(*delta).ok_or_else(|| {
                            ProjectionError::Schema {
                                projection,
                                detail: format!(
                                    "{}.{} overflows adding {delta} to {d}",
                                    table.name, table.values[i].name
                                ),
                            }
                        })?),
                        Change::Set(v) => Change::Set(added(projection, table, i, v, *delta)?),
                    };
                }
                Ok(())
            },
        )
    }

    fn delete(&mut self, table: &Table, key: &[Value]) -> Result<(), ProjectionError> {
        check_key(self.projection, self.tables, table, key)?;
        let rows = self.rows(table);
        let fresh = rows
            .insert(
                key.to_vec(),
                Entry::Known {
                    row: None,
                    dirty: true,
                },
            )
            .is_none();
        if fresh {
            self.cache.rows += 1;
        }
        Ok(())
    }
}
