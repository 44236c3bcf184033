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
//! model. The cache is emptied when a batch fails and bounded by
//! [`PROJECTOR_CACHE_ROWS_MAX`](super::PROJECTOR_CACHE_ROWS_MAX): past it,
//! dirty rows are flushed (still inside the transaction) and clean ones
//! dropped.
//!
//! A writer that starts from an empty model (checkpoint 0) knows every row:
//! one not in the cache is absent. To keep knowing it after rows are
//! dropped, it keeps a ledger: when the cache drops rows, the 32-bit
//! fingerprints of the keys of those that may be in storage. A row neither
//! in the cache nor in the ledger is absent and is not looked up, so a
//! rebuild of a log whose rows outnumber the cache still inserts its new
//! rows without a read each (a fingerprint shared with another key only
//! costs a lookup), and nothing is added to the ledger while the rows fit.
//! The ledger is dropped when a batch fails and when it outgrows
//! [`PROJECTOR_LEDGER_KEYS_MAX`](super::PROJECTOR_LEDGER_KEYS_MAX).

use std::hash::Hasher as _;

use rustc_hash::{FxHashMap, FxHashSet, FxHasher};

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
/// `Hash`; keys are hashed here with FxHash, much cheaper than SipHash for
/// the short keys of read-model rows — keys come from the log, not from an
/// attacker choosing collisions against a live process — and rows whose
/// keys share a hash are chained.) The flush sorts the keys it writes.
#[derive(Debug, Default)]
struct KeyMap {
    /// First slot of each key hash.
    heads: FxHashMap<u64, u32>,
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

    /// The slot of `key`, or, if it is not in the map, its hash (to add it
    /// with [`KeyMap::insert_new`] without hashing it again).
    fn find(&self, key: &[Value]) -> Result<u32, u64> {
        let hash = Self::hash(key);
        let Some(&head) = self.heads.get(&hash) else {
            return Err(hash);
        };
        let mut slot = head;
        while slot != NO_SLOT {
            let s = &self.slots[slot as usize];
            if s.key.as_slice() == key {
                return Ok(slot);
            }
            slot = s.next;
        }
        Err(hash)
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

    /// Adds a row whose key (with `hash`) is not in the map; returns its
    /// slot.
    fn insert_new(&mut self, hash: u64, key: &[Value], entry: Entry) -> u32 {
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

/// A key's entry in the ledger: 32 bits of its hash, half the memory of all
/// 64 (a fingerprint shared with another key only costs a lookup; among
/// millions of keys, one in a thousand).
fn fingerprint(hash: u64) -> u32 {
    (hash >> 32) as u32 ^ hash as u32
}

/// The cached rows of one table, and the slots of those to flush.
#[derive(Debug)]
struct TableRows {
    name: &'static str,
    rows: KeyMap,
    dirty: Vec<u32>,
    /// While the model's ledger is kept: the [`fingerprint`]s of the keys
    /// of the rows of this table that were dropped from the cache while
    /// they may have been in storage.
    stored: FxHashSet<u32>,
}

/// The cached rows of one model, per table (in the projection's order).
#[derive(Debug)]
pub(super) struct RowCache {
    tables: Vec<TableRows>,
    rows: usize,
    rows_max: usize,
    /// The ledger: every row in storage is in the cache or has its key's
    /// fingerprint in its table's `stored`, so a row that is in neither is
    /// absent and is not looked up, even after rows were dropped to keep the
    /// cache within `rows_max`. Kept for a model projected from position 1 (a rebuild,
    /// a new model), until a batch fails or the fingerprints outnumber
    /// `ledger_keys_max`; without it, a row not in the cache is looked up.
    ledger: bool,
    ledger_keys: usize,
    ledger_keys_max: usize,
}

impl RowCache {
    /// `empty`: the model holds no rows yet (checkpoint 0), so the cache
    /// starts out keeping the ledger of its rows.
    pub(super) fn new(
        tables: &[Table],
        rows_max: usize,
        ledger_keys_max: usize,
        empty: bool,
    ) -> Self {
        RowCache {
            tables: tables
                .iter()
                .map(|t| TableRows {
                    name: t.name,
                    rows: KeyMap::default(),
                    dirty: Vec::new(),
                    stored: FxHashSet::default(),
                })
                .collect(),
            rows: 0,
            rows_max,
            ledger: empty,
            ledger_keys: 0,
            ledger_keys_max,
        }
    }

    /// Forgets everything, the ledger too (after a failed batch).
    pub(super) fn clear(&mut self) {
        self.drop_ledger();
        self.evict();
    }

    /// Forgets the cached rows; while the ledger is kept, it takes the
    /// fingerprints of those that may be in storage first.
    fn evict(&mut self) {
        if self.ledger {
            self.note_stored_rows();
        }
        for table in &mut self.tables {
            table.rows.clear();
            table.dirty.clear();
        }
        self.rows = 0;
    }

    /// Adds the fingerprints of the cached rows that may be in storage to
    /// the ledger (dropping it past `ledger_keys_max`).
    fn note_stored_rows(&mut self) {
        for table in &mut self.tables {
            for (&hash, &head) in &table.rows.heads {
                let mut slot = head;
                while slot != NO_SLOT {
                    let s = &table.rows.slots[slot as usize];
                    let stored = match &s.entry {
                        Some(Entry::Known { stored, .. }) => *stored,
                        Some(Entry::Blind(_)) => true,
                        None => false,
                    };
                    if stored && table.stored.insert(fingerprint(hash)) {
                        self.ledger_keys += 1;
                    }
                    slot = s.next;
                }
            }
        }
        if self.ledger_keys > self.ledger_keys_max {
            self.drop_ledger();
        }
    }

    fn drop_ledger(&mut self) {
        self.ledger = false;
        self.ledger_keys = 0;
        for table in &mut self.tables {
            table.stored = FxHashSet::default();
        }
    }

    /// Whether the row of table `i` whose key has `hash`, not in the cache,
    /// may be in storage (to be looked up): always without the ledger; with
    /// it, only if the row was dropped from the cache while stored (or
    /// shares its fingerprint with such a row).
    fn may_be_stored(&self, i: usize, hash: u64) -> bool {
        !self.ledger || self.tables[i].stored.contains(&fingerprint(hash))
    }

    /// Whether the cache keeps the ledger of the model's rows.
    #[cfg(test)]
    fn keeps_ledger(&self) -> bool {
        self.ledger
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
            // Each key's sort prefix computed once and held beside it, so
            // the sort compares integers, and follows a key to its values
            // only where two prefixes tie.
            writes.sort_by_cached_key(|(key, _)| (sort_prefix(key), *key));
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
            self.evict();
        }
        Ok(())
    }
}

/// A prefix of the order of keys: a key whose prefix is smaller sorts
/// first; keys with equal prefixes are compared in full. The top two bits
/// are the first value's variant (in `Value`'s order), the rest its leading
/// bits: an integer's (sign flipped, so negative ones come first), a text's
/// first bytes.
fn sort_prefix(key: &[Value]) -> u64 {
    const VALUE_BITS: u32 = 62;
    match key.first() {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(b)) => (1 << VALUE_BITS) | u64::from(*b),
        Some(Value::Int(i)) => (2 << VALUE_BITS) | (((*i as u64) ^ (1 << 63)) >> 2),
        Some(Value::Text(s)) => {
            let mut leading = [0u8; 8];
            let n = s.len().min(8);
            leading[..n].copy_from_slice(&s.as_bytes()[..n]);
            (3 << VALUE_BITS) | (u64::from_be_bytes(leading) >> 2)
        }
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
            Ok(slot) => {
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
            Err(hash) => {
                let row = if self.cache.may_be_stored(i, hash) {
                    self.store.load(table, key)?
                } else {
                    None
                };
                self.cache.rows += 1;
                let stored = row.is_some();
                self.cache.tables[i].rows.insert_new(
                    hash,
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
        let i = self.cache.index(table);
        let slot = match self.cache.tables[i].rows.find(key) {
            Ok(slot) => slot,
            Err(hash) => return self.write_new(table, i, hash, key, known, blind),
        };
        let cached = &mut self.cache.tables[i];
        match cached.rows.entry_mut(slot) {
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
        }
        Ok(())
    }

    /// [`CachedTx::write`] of a row of table `i` not in the cache.
    fn write_new(
        &mut self,
        table: &Table,
        i: usize,
        hash: u64,
        key: &[Value],
        known: impl FnOnce(&mut Vec<Value>) -> Result<(), ProjectionError>,
        blind: impl FnOnce(&mut Vec<Change>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let entry = if self.cache.may_be_stored(i, hash) {
            let mut changes = vec![Change::Keep; table.values.len()];
            blind(&mut changes)?;
            Entry::Blind(changes)
        } else {
            let mut row = table.values.iter().map(|c| default_value(c.ty)).collect();
            known(&mut row)?;
            Entry::Known {
                row: Some(row),
                dirty: true,
                stored: false,
            }
        };
        let cached = &mut self.cache.tables[i];
        let slot = cached.rows.insert_new(hash, key, entry);
        cached.dirty.push(slot);
        self.cache.rows += 1;
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
        let i = self.cache.index(table);
        match self.cache.tables[i].rows.find(key) {
            Err(hash) => {
                let stored = self.cache.may_be_stored(i, hash);
                let cached = &mut self.cache.tables[i];
                let slot = cached.rows.insert_new(
                    hash,
                    key,
                    Entry::Known {
                        row: None,
                        dirty: true,
                        stored,
                    },
                );
                cached.dirty.push(slot);
                self.cache.rows += 1;
            }
            Ok(slot) => {
                let cached = &mut self.cache.tables[i];
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Column;

    static TABLES: &[Table] = &[Table {
        name: "people",
        key: &[Column::int("id")],
        values: &[Column::int("moves"), Column::text("city")],
    }];

    /// Storage that counts lookups, refuses an insert over a stored row
    /// (as PostgreSQL's primary key would) and a flush whose keys are not
    /// distinct and in order, and keeps the keys it was handed, in order.
    #[derive(Default)]
    struct Counted {
        rows: BTreeMap<Vec<Value>, Vec<Value>>,
        loads: usize,
        flushed: Vec<Vec<Value>>,
    }

    impl RowStore for Counted {
        fn load(
            &mut self,
            _: &Table,
            key: &[Value],
        ) -> Result<Option<Vec<Value>>, ProjectionError> {
            self.loads += 1;
            Ok(self.rows.get(key).cloned())
        }

        fn flush(
            &mut self,
            table: &Table,
            writes: &[(&[Value], Write<'_>)],
        ) -> Result<(), ProjectionError> {
            for pair in writes.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{:?} flushed before {:?}",
                    pair[0].0,
                    pair[1].0
                );
            }
            for (key, write) in writes {
                self.flushed.push(key.to_vec());
                match write {
                    Write::Delete => {
                        self.rows.remove(*key);
                    }
                    Write::Row(values) => {
                        self.rows.insert(key.to_vec(), values.to_vec());
                    }
                    Write::Insert(values) => {
                        let old = self.rows.insert(key.to_vec(), values.to_vec());
                        assert!(old.is_none(), "{key:?} inserted as absent but stored");
                    }
                    Write::Merge(changes) => {
                        let row = self.rows.entry(key.to_vec()).or_insert_with(|| {
                            table.values.iter().map(|c| default_value(c.ty)).collect()
                        });
                        for (value, change) in row.iter_mut().zip(changes.iter()) {
                            match change {
                                Change::Keep => {}
                                Change::Set(v) => *value = v.clone(),
                                Change::Add(d) => {
                                    *value = Value::Int(
                                        d + match value {
                                            Value::Int(i) => *i,
                                            _ => 0,
                                        },
                                    )
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// One event's work: read a person's row, count a move, maybe delete.
    enum Op {
        Move(i64, &'static str),
        Delete(i64),
    }

    /// Applies `ops` one event at a time through a cache of `rows_max` rows
    /// (trimmed between events, flushed at the end), on an empty model.
    fn project(ops: &[Op], rows_max: usize, ledger_keys_max: usize) -> (Counted, bool) {
        let mut cache = RowCache::new(TABLES, rows_max, ledger_keys_max, true);
        let mut store = Counted::default();
        let table = &TABLES[0];
        let mut tx = CachedTx {
            cache: &mut cache,
            store: &mut store,
            all_tables: TABLES,
            projection: "test",
        };
        for op in ops {
            match *op {
                Op::Move(id, city) => {
                    let key = [Value::Int(id)];
                    let seen = tx.get(table, &key).expect("get").is_some();
                    tx.add(table, &key, &[("moves", 1)]).expect("add");
                    if !seen {
                        tx.upsert(table, &key, &[("city", city.into())])
                            .expect("upsert");
                    }
                }
                Op::Delete(id) => tx.delete(table, &[Value::Int(id)]).expect("delete"),
            }
            tx.trim().expect("trim");
        }
        tx.flush().expect("flush");
        let ledger = cache.keeps_ledger();
        (store, ledger)
    }

    #[test]
    fn new_rows_are_not_looked_up_after_the_cache_drops_rows() {
        let ops: Vec<Op> = (0..1_000).map(|id| Op::Move(id, "230100")).collect();
        let (store, ledger) = project(&ops, 16, usize::MAX);
        assert_eq!(store.loads, 0);
        assert!(ledger);
        assert_eq!(store.rows.len(), 1_000);
        assert!(
            store
                .rows
                .values()
                .all(|row| row == &[Value::Int(1), "230100".into()])
        );

        // Past its bound the ledger is dropped: the cache drops its 17 rows
        // at a time, so the sixth drop takes the ledger to 102 fingerprints,
        // past 100; each of the 898 new rows after is looked up, and the
        // rows are the same.
        let (bounded, ledger) = project(&ops, 16, 100);
        assert_eq!(bounded.loads, 898);
        assert!(!ledger);
        assert_eq!(bounded.rows, store.rows);
    }

    #[test]
    fn rows_dropped_from_the_cache_are_looked_up_and_kept_right() {
        // Three passes over 300 persons with the cache far smaller: rows
        // come back after being dropped, some are deleted and created again.
        let mut ops = Vec::new();
        for pass in 0..3 {
            for id in 0..300 {
                if pass == 1 && id % 3 == 0 {
                    ops.push(Op::Delete(id));
                } else {
                    ops.push(Op::Move(id, if pass == 0 { "230100" } else { "230200" }));
                }
            }
        }
        let (unbounded, _) = project(&ops, usize::MAX, usize::MAX);
        assert_eq!(unbounded.loads, 0);
        let (small, ledger) = project(&ops, 16, usize::MAX);
        assert!(ledger);
        assert_eq!(small.rows, unbounded.rows);
        assert_eq!(
            small.rows[&vec![Value::Int(3)]],
            [Value::Int(1), "230200".into()]
        );
        assert_eq!(
            small.rows[&vec![Value::Int(4)]],
            [Value::Int(3), "230100".into()]
        );
        // Only rows seen before are looked up: none in the first pass.
        assert!(small.loads > 0 && small.loads <= 600, "{}", small.loads);
    }

    #[test]
    fn a_failed_batch_drops_the_ledger() {
        let mut cache = RowCache::new(TABLES, 16, usize::MAX, true);
        assert!(cache.keeps_ledger());
        cache.clear();
        assert!(!cache.keeps_ledger());
        let mut store = Counted::default();
        let mut tx = CachedTx {
            cache: &mut cache,
            store: &mut store,
            all_tables: TABLES,
            projection: "test",
        };
        assert_eq!(tx.get(&TABLES[0], &[Value::Int(7)]).expect("get"), None);
        assert_eq!(store.loads, 1);
    }

    #[test]
    fn a_flush_hands_on_its_rows_in_key_order() {
        static REFS: &[Table] = &[Table {
            name: "refs",
            key: &[Column::text("ref"), Column::int("year")],
            values: &[Column::int("n")],
        }];
        // Texts that share their first eight bytes or are shorter, and
        // integers of both signs after them: the order past a prefix.
        let texts = [
            "",
            "0000bdfe",
            "0000bdfe-0724",
            "0000bdfe-0723",
            "0000bdf",
            "0000bdfe\u{0}",
            "ffffffffffff",
            "\u{9ed1}\u{9f99}\u{6c5f}",
            "\u{9ed1}\u{9f99}",
            "Z",
            "a",
        ];
        let years = [2024, -1, 0, i64::MIN, i64::MAX, 2022];
        let mut keys: Vec<Vec<Value>> = texts
            .iter()
            .flat_map(|t| {
                years
                    .iter()
                    .map(move |y| vec![Value::from(*t), Value::Int(*y)])
            })
            .collect();
        let mut cache = RowCache::new(REFS, usize::MAX, usize::MAX, true);
        let mut store = Counted::default();
        let mut tx = CachedTx {
            cache: &mut cache,
            store: &mut store,
            all_tables: REFS,
            projection: "test",
        };
        for key in &keys {
            tx.add(&REFS[0], key, &[("n", 1)]).expect("add");
        }
        tx.flush().expect("flush");
        keys.sort();
        assert_eq!(store.flushed, keys);
    }

    #[test]
    fn sort_prefixes_follow_the_order_of_values() {
        let values = [
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(-5),
            Value::Int(-4),
            Value::Int(0),
            Value::Int(3),
            Value::Int(4),
            Value::Int(i64::MAX),
            Value::from(""),
            Value::from("2301"),
            Value::from("2301000"),
            Value::from("23010000"),
            Value::from("230100000"),
            Value::from("2302"),
            Value::from("\u{9ed1}"),
        ];
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                assert!(a < b, "the list is in order: {a:?} < {b:?}");
                let (pa, pb) = (
                    sort_prefix(std::slice::from_ref(a)),
                    sort_prefix(std::slice::from_ref(b)),
                );
                assert!(pa <= pb, "{a:?} ({pa:#x}) before {b:?} ({pb:#x})");
            }
        }
        // Distinct leading values that fit the prefix tell apart by it alone.
        assert!(sort_prefix(&[Value::Int(-5)]) < sort_prefix(&[Value::Int(0)]));
        assert!(sort_prefix(&[Value::from("2301")]) < sort_prefix(&[Value::from("2302")]));
        assert!(sort_prefix(&[Value::Bool(true)]) < sort_prefix(&[Value::Int(i64::MIN)]));
    }
}
