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
//! model. A writer that starts from an empty model (checkpoint 0) knows
//! every row from the start, so a row it has not seen is absent and is not
//! looked up, until the cache is first emptied. The cache is emptied when a batch fails and bounded by
//! [`PROJECTOR_CACHE_ROWS_MAX`](super::PROJECTOR_CACHE_ROWS_MAX): past it,
//! dirty rows are flushed (still inside the transaction) and clean ones
//! dropped.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

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
    Known {
        row: Option<Vec<Value>>,
        dirty: bool,
    },
    /// Writes to a row whose stored value is unknown.
    Blind(Vec<Change>),
}

/// Rows by key. (`Value` has no `Hash`; keys are hashed here, and rows
/// whose keys share a hash are kept side by side.) Lookups do not compare
/// whole keys the way an ordered map does at every level; the flush sorts
/// the keys it writes.
#[derive(Debug, Default)]
struct KeyMap {
    buckets: HashMap<u64, Vec<(Vec<Value>, Entry)>>,
    len: usize,
}

impl KeyMap {
    fn hash(key: &[Value]) -> u64 {
        let mut hasher = DefaultHasher::new();
        for value in key {
            match value {
                Value::Null => 0u8.hash(&mut hasher),
                Value::Bool(b) => (1u8, b).hash(&mut hasher),
                Value::Int(i) => (2u8, i).hash(&mut hasher),
                Value::Text(s) => (3u8, s).hash(&mut hasher),
            }
        }
        hasher.finish()
    }

    fn get(&self, key: &[Value]) -> Option<&Entry> {
        self.buckets
            .get(&Self::hash(key))?
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, e)| e)
    }

    fn get_mut(&mut self, key: &[Value]) -> Option<&mut Entry> {
        self.buckets
            .get_mut(&Self::hash(key))?
            .iter_mut()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, e)| e)
    }

    fn insert(&mut self, key: Vec<Value>, entry: Entry) -> Option<Entry> {
        let bucket = self.buckets.entry(Self::hash(&key)).or_default();
        match bucket.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, entry)),
            None => {
                bucket.push((key, entry));
                self.len += 1;
                None
            }
        }
    }

    fn remove(&mut self, key: &[Value]) -> Option<Entry> {
        let hash = Self::hash(key);
        let bucket = self.buckets.get_mut(&hash)?;
        let i = bucket.iter().position(|(k, _)| k.as_slice() == key)?;
        let (_, entry) = bucket.swap_remove(i);
        if bucket.is_empty() {
            self.buckets.remove(&hash);
        }
        self.len -= 1;
        Some(entry)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
    }
}

/// The cached rows of one table, and the keys of those to flush.
#[derive(Debug)]
struct TableRows {
    name: &'static str,
    rows: KeyMap,
    dirty: Vec<Vec<Value>>,
}

/// The cached rows of one model, per table (in the projection's order).
#[derive(Debug)]
pub(super) struct RowCache {
    tables: Vec<TableRows>,
    rows: usize,
    rows_max: usize,
    /// Every row of the model is in the cache: a row not found is absent.
    /// True for a model projected from position 1 until the cache is first
    /// emptied.
    complete: bool,
}

impl RowCache {
    /// `empty`: the model holds no rows yet (checkpoint 0), so the cache
    /// starts out knowing all of them.
    pub(super) fn new(tables: &[Table], rows_max: usize, empty: bool) -> Self {
        RowCache {
            tables: tables
                .iter()
                .map(|t| TableRows {
                    name: t.name,
                    rows: KeyMap::default(),
                    dirty: Vec::new(),
                })
                .collect(),
            rows: 0,
            rows_max,
            complete: empty,
        }
    }

    /// Forgets everything (after a failed batch, or when full).
    pub(super) fn clear(&mut self) {
        self.complete = false;
        for table in &mut self.tables {
            table.rows.clear();
            table.dirty.clear();
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
            .position(|t| t.name == table.name)
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
            let cached = &mut self.tables[i];
            if cached.dirty.is_empty() {
                continue;
            }
            let mut keys = std::mem::take(&mut cached.dirty);
            keys.sort_unstable();
            let mut writes: Vec<(&[Value], Write)> = Vec::with_capacity(keys.len());
            for key in &keys {
                let write = match cached.rows.get(key.as_slice()) {
                    Some(Entry::Known { dirty: false, .. }) | None => continue,
                    Some(Entry::Known { row: None, .. }) => Write::Delete,
                    Some(Entry::Known { row: Some(row), .. }) => {
                        Write::Merge(row.iter().cloned().map(Change::Set).collect())
                    }
                    Some(Entry::Blind(changes)) => Write::Merge(changes.clone()),
                };
                writes.push((key, write));
            }
            let refs: Vec<(&[Value], &Write)> = writes.iter().map(|(k, w)| (*k, w)).collect();
            store.flush(table, &refs)?;
            drop(refs);
            drop(writes);
            for key in keys {
                match cached.rows.get_mut(key.as_slice()) {
                    Some(Entry::Known { dirty, .. }) => *dirty = false,
                    Some(Entry::Blind(_)) => {
                        cached.rows.remove(key.as_slice());
                    }
                    None => {}
                }
            }
        }
        self.rows = self.tables.iter().map(|t| t.rows.len()).sum();
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

    fn rows(&mut self, table: &Table) -> &mut TableRows {
        let i = self.cache.index(table);
        &mut self.cache.tables[i]
    }

    /// The known row with `key`, loading it (and applying blind writes) if
    /// needed.
    fn known(&mut self, table: &Table, key: &[Value]) -> Result<&mut Entry, ProjectionError> {
        let i = self.cache.index(table);
        let entry = self.cache.tables[i].rows.get(key);
        let replace = match entry {
            Some(Entry::Known { .. }) => None,
            Some(Entry::Blind(changes)) => {
                let changes = changes.clone();
                let stored = self.store.load(table, key)?;
                let mut row = stored
                    .unwrap_or_else(|| table.values.iter().map(|c| default_value(c.ty)).collect());
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
                let row = if self.cache.complete {
                    None
                } else {
                    self.store.load(table, key)?
                };
                self.cache.rows += 1;
                Some(Entry::Known { row, dirty: false })
            }
        };
        // A blind row resolved here is already listed as dirty.
        let rows = &mut self.cache.tables[i].rows;
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
        let complete = self.cache.complete;
        let cached = self.rows(table);
        match cached.rows.get_mut(key) {
            Some(Entry::Known { row, dirty }) => {
                let row = row.get_or_insert_with(|| {
                    table.values.iter().map(|c| default_value(c.ty)).collect()
                });
                known(row)?;
                if !*dirty {
                    *dirty = true;
                    cached.dirty.push(key.to_vec());
                }
            }
            Some(Entry::Blind(changes)) => blind(changes)?,
            None if complete => {
                let mut row = table.values.iter().map(|c| default_value(c.ty)).collect();
                known(&mut row)?;
                cached.rows.insert(
                    key.to_vec(),
                    Entry::Known {
                        row: Some(row),
                        dirty: true,
                    },
                );
                cached.dirty.push(key.to_vec());
                self.cache.rows += 1;
            }
            None => {
                let mut changes = vec![Change::Keep; table.values.len()];
                blind(&mut changes)?;
                cached.rows.insert(key.to_vec(), Entry::Blind(changes));
                cached.dirty.push(key.to_vec());
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
        let cached = self.rows(table);
        let previous = cached.rows.insert(
            key.to_vec(),
            Entry::Known {
                row: None,
                dirty: true,
            },
        );
        match previous {
            None => {
                cached.dirty.push(key.to_vec());
                self.cache.rows += 1;
            }
            Some(Entry::Known { dirty: false, .. }) => cached.dirty.push(key.to_vec()),
            Some(_) => {}
        }
        Ok(())
    }
}
