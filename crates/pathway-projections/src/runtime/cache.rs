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
//! A row known to be absent from storage is flushed as a plain insert (and
//! deleting it writes nothing). A row whose stored value is unknown and that
//! is only written (never read) is not loaded: its writes become one *merge* (set these columns, add
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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::{check_key, check_value};
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

/// The shape of a merge: per value column 0 keep, 1 set, 2 add, two bits a
/// column (tables have at most [`VALUE_COLUMNS_MAX`] value columns). Rows
/// of one shape share a statement.
pub(super) type Shape = u64;

/// Most value columns of a table (two bits each in a [`Shape`]).
pub(super) const VALUE_COLUMNS_MAX: usize = 32;

/// The per-column kinds (0 keep, 1 set, 2 add) of `shape` over `columns`.
pub(super) fn shape_kinds(shape: Shape, columns: usize) -> Vec<u8> {
    (0..columns)
        .map(|i| ((shape >> (2 * i)) & 3) as u8)
        .collect()
}

/// One coalesced write of a row, borrowed from the cache.
#[derive(Debug, Clone, Copy)]
pub(super) enum Write<'a> {
    Delete,
    /// Insert the row with these values, or overwrite every value column of
    /// the existing one.
    Row(&'a [Value]),
    /// Insert the row, known to be absent, with these values.
    Insert(&'a [Value]),
    /// Insert the row with these value-column changes (from the defaults),
    /// or apply them to the existing row. One change per value column.
    Merge(&'a [Change]),
}

impl<'a> Write<'a> {
    /// The shape of the merge this write is (a delete has none).
    pub(super) fn shape(&self) -> Shape {
        match self {
            Write::Delete => 0,
            Write::Row(values) | Write::Insert(values) => {
                (0..values.len()).fold(0, |s, i| s | (1 << (2 * i)))
            }
            Write::Merge(changes) => changes.iter().enumerate().fold(0, |s, (i, c)| {
                s | (match c {
                    Change::Keep => 0,
                    Change::Set(_) => 1,
                    Change::Add(_) => 2,
                } << (2 * i))
            }),
        }
    }

    /// The values this merge writes, in column order (keep columns
    /// skipped): each a value to set or a delta to add.
    pub(super) fn for_each_written(&self, mut f: impl FnMut(Written<'a>)) {
        match *self {
            Write::Delete => {}
            Write::Row(values) | Write::Insert(values) => {
                values.iter().for_each(|v| f(Written::Set(v)))
            }
            Write::Merge(changes) => {
                for change in changes.iter() {
                    match change {
                        Change::Keep => {}
                        Change::Set(v) => f(Written::Set(v)),
                        Change::Add(d) => f(Written::Add(*d)),
                    }
                }
            }
        }
    }
}

/// A value a merge writes to one column.
#[derive(Debug, Clone, Copy)]
pub(super) enum Written<'a> {
    Set(&'a Value),
    Add(i64),
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
        writes: &[(&[Value], Write<'_>)],
    ) -> Result<(), ProjectionError>;
}

#[derive(Debug)]
enum Entry {
    /// The row as it stands in the transaction (`None`: absent); `dirty` if
    /// that differs from what was last flushed.
    Known {
        row: Option<Vec<Value>>,
        dirty: bool,
        /// The row may exist in storage (as of the last flush). A row known
        /// absent there is inserted, not upserted, and deleting it writes
        /// nothing.
        stored: bool,
    },
    /// Writes to a row whose stored value is unknown.
    Blind(Vec<Change>),
}

/// FxHash (rustc's): a multiply-rotate hash, much cheaper than SipHash for
/// the short keys of read-model rows. Keys come from the log, not from an
/// attacker choosing collisions against a live process, and colliding keys
/// still work (chained).
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Hashes for a map whose keys are already hashes.
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// No slot.
const NO_SLOT: u32 = u32::MAX;

/// A row of a [`KeyMap`]: its key, entry, and the next slot whose key has
/// the same hash.
#[derive(Debug)]
struct Slot {
    key: Vec<Value>,
    entry: Option<Entry>,
    next: u32,
}

/// Rows by key, in slots that keep their number until removed (so the
/// dirty list holds slot numbers, not copies of keys). (`Value` has no
/// `Hash`; keys are hashed here, and rows whose keys share a hash are
/// chained.) The flush sorts the keys it writes.
#[derive(Debug, Default)]
struct KeyMap {
    /// First slot of each key hash.
    heads: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

impl KeyMap {
    fn hash(key: &[Value]) -> u64 {
        let mut hasher = FxHasher::default();
        for value in key {
            match value {
                Value::Null => hasher.write_u8(0),
                Value::Bool(b) => hasher.write_u64(2 | u64::from(*b)),
                Value::Int(i) => {
                    hasher.write_u8(4);
                    hasher.write_u64(*i as u64);
                }
                Value::Text(s) => {
                    hasher.write_u8(5);
                    hasher.write(s.as_bytes());
                    hasher.write_usize(s.len());
                }
            }
        }
        hasher.finish()
    }

    fn find(&self, key: &[Value]) -> Option<u32> {
        let mut slot = *self.heads.get(&Self::hash(key))?;
        while slot != NO_SLOT {
            let s = &self.slots[slot as usize];
            if s.key.as_slice() == key {
                return Some(slot);
            }
            slot = s.next;
        }
        None
    }

    fn entry(&self, slot: u32) -> &Entry {
        self.slots[slot as usize].entry.as_ref().expect("live slot")
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        self.slots[slot as usize].entry.as_mut().expect("live slot")
    }

    fn key(&self, slot: u32) -> &[Value] {
        &self.slots[slot as usize].key
    }

    /// Adds a row whose key is not in the map; returns its slot.
    fn insert_new(&mut self, key: &[Value], entry: Entry) -> u32 {
        let hash = Self::hash(key);
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.key.extend_from_slice(key);
                s.entry = Some(entry);
                slot
            }
            None => {
                self.slots.push(Slot {
                    key: key.to_vec(),
                    entry: Some(entry),
                    next: NO_SLOT,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let next = self.heads.insert(hash, slot).unwrap_or(NO_SLOT);
        self.slots[slot as usize].next = next;
        self.len += 1;
        slot
    }

    fn remove(&mut self, slot: u32) {
        let hash = Self::hash(&self.slots[slot as usize].key);
        let next = self.slots[slot as usize].next;
        let head = self.heads.get_mut(&hash).expect("a live slot is chained");
        if *head == slot {
            if next == NO_SLOT {
                self.heads.remove(&hash);
            } else {
                *head = next;
            }
        } else {
            let mut at = *head;
            while self.slots[at as usize].next != slot {
                at = self.slots[at as usize].next;
            }
            self.slots[at as usize].next = next;
        }
        let s = &mut self.slots[slot as usize];
        s.key.clear();
        s.entry = None;
        s.next = NO_SLOT;
        self.free.push(slot);
        self.len -= 1;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.heads.clear();
        self.slots.clear();
        self.free.clear();
        self.len = 0;
    }
}

/// The cached rows of one table, and the slots of those to flush.
#[derive(Debug)]
struct TableRows {
    name: &'static str,
    rows: KeyMap,
    dirty: Vec<u32>,
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
            .position(|t| std::ptr::eq(t.name, table.name) || t.name == table.name)
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
            let slots = std::mem::take(&mut cached.dirty);
            let rows = &cached.rows;
            let mut writes: Vec<(&[Value], Write<'_>)> = Vec::with_capacity(slots.len());
            for &slot in &slots {
                let write = match rows.entry(slot) {
                    Entry::Known { dirty: false, .. }
                    | Entry::Known {
                        row: None,
                        stored: false,
                        ..
                    } => continue,
                    Entry::Known { row: None, .. } => Write::Delete,
                    Entry::Known {
                        row: Some(row),
                        stored: false,
                        ..
                    } => Write::Insert(row),
                    Entry::Known { row: Some(row), .. } => Write::Row(row),
                    Entry::Blind(changes) => Write::Merge(changes),
                };
                writes.push((rows.key(slot), write));
            }
            writes.sort_unstable_by(|a, b| a.0.cmp(b.0));
            store.flush(table, &writes)?;
            drop(writes);
            for slot in slots {
                match cached.rows.entry_mut(slot) {
                    Entry::Known { row, dirty, stored } => {
                        *dirty = false;
                        *stored = row.is_some();
                    }
                    Entry::Blind(_) => cached.rows.remove(slot),
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

/// The index of value column `name` of `table`.
fn value_index(
    projection: &'static str,
    table: &Table,
    name: &str,
) -> Result<usize, ProjectionError> {
    table
        .values
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ProjectionError::Schema {
            projection,
            detail: format!("{} has no value column {name:?}", table.name),
        })
}

/// Checks the value columns named in `names` exist, each at most once, and
/// that `fits` holds for each (its index, its position in `names`).
fn check_columns<'n>(
    projection: &'static str,
    table: &Table,
    names: impl Iterator<Item = &'n str>,
    mut fits: impl FnMut(usize, usize) -> Result<(), ProjectionError>,
) -> Result<(), ProjectionError> {
    let mut seen = 0u64;
    for (n, name) in names.enumerate() {
        let i = value_index(projection, table, name)?;
        if seen & (1 << i) != 0 {
            return Err(ProjectionError::Schema {
                projection,
                detail: format!("{}.{name} written twice in one call", table.name),
            });
        }
        seen |= 1 << i;
        fits(i, n)?;
    }
    Ok(())
}

/// [`Tx`] over the cache and, under it, the batch transaction.
pub(super) struct CachedTx<'a> {
    pub(super) cache: &'a mut RowCache,
    pub(super) store: &'a mut dyn RowStore,
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

    /// The known row with `key` (`None`: absent), loading it (and applying
    /// blind writes) if needed.
    fn known(
        &mut self,
        table: &Table,
        key: &[Value],
    ) -> Result<&Option<Vec<Value>>, ProjectionError> {
        let i = self.cache.index(table);
        let found = self.cache.tables[i].rows.find(key);
        let slot = match found {
            Some(slot) => {
                if let Entry::Blind(changes) = self.cache.tables[i].rows.entry(slot) {
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
                                row[column] =
                                    added(self.projection, table, column, &row[column], d)?
                            }
                        }
                    }
                    // Already listed as dirty.
                    *self.cache.tables[i].rows.entry_mut(slot) = Entry::Known {
                        row: Some(row),
                        dirty: true,
                        stored: true,
                    };
                }
                slot
            }
            None => {
                let row = if self.cache.complete {
                    None
                } else {
                    self.store.load(table, key)?
                };
                self.cache.rows += 1;
                let stored = row.is_some();
                self.cache.tables[i].rows.insert_new(
                    key,
                    Entry::Known {
                        row,
                        dirty: false,
                        stored,
                    },
                )
            }
        };
        match self.cache.tables[i].rows.entry(slot) {
            Entry::Known { row, .. } => Ok(row),
            Entry::Blind(_) => unreachable!("resolved above"),
        }
    }

    fn write(
        &mut self,
        table: &Table,
        key: &[Value],
        known: impl FnOnce(&mut Vec<Value>) -> Result<(), ProjectionError>,
        blind: impl FnOnce(&mut Vec<Change>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let complete = self.cache.complete;
        let i = self.cache.index(table);
        let cached = &mut self.cache.tables[i];
        match cached.rows.find(key) {
            Some(slot) => match cached.rows.entry_mut(slot) {
                Entry::Known { row, dirty, .. } => {
                    let row = row.get_or_insert_with(|| {
                        table.values.iter().map(|c| default_value(c.ty)).collect()
                    });
                    known(row)?;
                    if !*dirty {
                        *dirty = true;
                        cached.dirty.push(slot);
                    }
                }
                Entry::Blind(changes) => blind(changes)?,
            },
            None if complete => {
                let mut row = table.values.iter().map(|c| default_value(c.ty)).collect();
                known(&mut row)?;
                let slot = cached.rows.insert_new(
                    key,
                    Entry::Known {
                        row: Some(row),
                        dirty: true,
                        stored: false,
                    },
                );
                cached.dirty.push(slot);
                self.cache.rows += 1;
            }
            None => {
                let mut changes = vec![Change::Keep; table.values.len()];
                blind(&mut changes)?;
                let slot = cached.rows.insert_new(key, Entry::Blind(changes));
                cached.dirty.push(slot);
                self.cache.rows += 1;
            }
        }
        Ok(())
    }
}

impl Tx for CachedTx<'_> {
    fn get(&mut self, table: &Table, key: &[Value]) -> Result<Option<Vec<Value>>, ProjectionError> {
        check_key(self.projection, self.all_tables, table, key)?;
        Ok(self.known(table, key)?.clone())
    }

    fn value(
        &mut self,
        table: &Table,
        key: &[Value],
        column: &str,
    ) -> Result<Option<Value>, ProjectionError> {
        check_key(self.projection, self.all_tables, table, key)?;
        let i = value_index(self.projection, table, column)?;
        Ok(self
            .known(table, key)?
            .as_ref()
            .map(|row| row.get(i).cloned().unwrap_or(Value::Null)))
    }

    fn exists(&mut self, table: &Table, key: &[Value]) -> Result<bool, ProjectionError> {
        check_key(self.projection, self.all_tables, table, key)?;
        Ok(self.known(table, key)?.is_some())
    }

    fn upsert(
        &mut self,
        table: &Table,
        key: &[Value],
        values: &[(&str, Value)],
    ) -> Result<(), ProjectionError> {
        let projection = self.projection;
        check_key(projection, self.all_tables, table, key)?;
        check_columns(projection, table, values.iter().map(|(n, _)| *n), |i, n| {
            let column = &table.values[i];
            check_value(
                projection,
                table,
                column.name,
                column.ty,
                &values[n].1,
                false,
            )
        })?;
        let index = |name: &str| {
            table
                .values
                .iter()
                .position(|c| c.name == name)
                .expect("checked above")
        };
        self.write(
            table,
            key,
            |row| {
                for (name, value) in values {
                    row[index(name)] = value.clone();
                }
                Ok(())
            },
            |changes| {
                for (name, value) in values {
                    changes[index(name)] = Change::Set(value.clone());
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
        let projection = self.projection;
        check_key(projection, self.all_tables, table, key)?;
        check_columns(projection, table, deltas.iter().map(|(n, _)| *n), |i, _| {
            let column = &table.values[i];
            check_value(
                projection,
                table,
                column.name,
                column.ty,
                &Value::Int(0),
                false,
            )
        })?;
        let index = |name: &str| {
            table
                .values
                .iter()
                .position(|c| c.name == name)
                .expect("checked above")
        };
        self.write(
            table,
            key,
            |row| {
                for (name, delta) in deltas {
                    let i = index(name);
                    row[i] = added(projection, table, i, &row[i], *delta)?;
                }
                Ok(())
            },
            |changes| {
                for (name, delta) in deltas {
                    let i = index(name);
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
        check_key(self.projection, self.all_tables, table, key)?;
        let complete = self.cache.complete;
        let i = self.cache.index(table);
        let cached = &mut self.cache.tables[i];
        match cached.rows.find(key) {
            None => {
                let slot = cached.rows.insert_new(
                    key,
                    Entry::Known {
                        row: None,
                        dirty: true,
                        stored: !complete,
                    },
                );
                cached.dirty.push(slot);
                self.cache.rows += 1;
            }
            Some(slot) => {
                let entry = cached.rows.entry_mut(slot);
                let was_dirty = !matches!(entry, Entry::Known { dirty: false, .. });
                let stored = match entry {
                    Entry::Known { stored, .. } => *stored,
                    Entry::Blind(_) => true,
                };
                *entry = Entry::Known {
                    row: None,
                    dirty: true,
                    stored,
                };
                if !was_dirty {
                    cached.dirty.push(slot);
                }
            }
        }
        Ok(())
    }
}
