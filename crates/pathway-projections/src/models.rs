//! One read model per department, each a [`Projection`] of that department's
//! [`View`](crate::views::View)s into its own tables.
//!
//! | model | tables |
//! |---|---|
//! | `dpf` | `persons`, `four_ones`, `training`, `placements`, `graduates` (+ lookups) |
//! | `hrss` | `job_seekers`, `training`, `placements`, `welfare_posts`, `phase_out_flags` (+ lookup) |
//! | `civil_affairs` | `households`, `members`, `member_employment` |
//! | `education` | `cohorts`, `graduate_outcomes`, `school_outcomes` |
//! | `sasac` | `employers`, `quota`, `public_units`, `dpf_cadres` |
//! | `committee` | `new_employment`, `four_ones`, `training`, `welfare_posts`, `fund`, `city_reports`, `evaluation` (+ lookup) |
//!
//! Tables whose name starts with `lookup_` are a model's working state (which
//! household a person belongs to, which form a placement had) and are not
//! meant to be queried. Counters are written with [`Tx::add`], so each event
//! changes a count once; the runtime applies each event exactly once.
//!
//! Money is integer fen, dates ISO 8601 text. A city is the prefecture code
//! of a GB/T 2260 region ([`city_of`](crate::views::city_of)); a person's
//! city in the DPF model is that of their residence when the event happened.

/// A department's projection: the unit struct `$ty` whose name and tables
/// are the module's `MODEL` and `TABLES`, whose view is `$view_fn` wrapped in
/// `View::$variant`, and which applies it with the module's `apply`.
macro_rules! department_projection {
    ($ty:ident, $variant:ident, $view_fn:path) => {
        pub(super) struct $ty;

        impl crate::Projection for $ty {
            fn name(&self) -> &'static str {
                MODEL
            }

            fn tables(&self) -> &'static [crate::Table] {
                TABLES
            }

            fn view(&self, event: &pathway_domain::Event) -> Option<crate::views::View> {
                $view_fn(event).map(crate::views::View::$variant)
            }

            // A department's model counts what happened, not who recorded it.
            fn reads_actor(&self) -> bool {
                false
            }

            fn apply(
                &self,
                event: &crate::ProjectedEvent<crate::views::View>,
                tx: &mut dyn crate::Tx,
            ) -> Result<(), crate::ProjectionError> {
                let crate::views::View::$variant(view) = &event.view else {
                    return Err(foreign_view(MODEL));
                };
                apply(&mut Rows::new(MODEL, tx), view)
            }
        }
    };
}

mod civil_affairs;
mod committee;
mod dpf;
mod education;
mod hrss;
mod sasac;

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use pathway_domain::policy::PolicyTable;

use crate::{Projection, ProjectionError, Table, Tx, Value};

/// Every department's read model, in a fixed order.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(dpf::Dpf),
        Arc::new(hrss::Hrss),
        Arc::new(civil_affairs::CivilAffairs),
        Arc::new(education::Education),
        Arc::new(sasac::Sasac),
        Arc::new(committee::Committee),
    ]
}

/// The read model called `name`, if there is one.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    all().into_iter().find(|p| p.name() == name)
}

/// Replaces, in rows of `model`'s `table` (every column, key first), each
/// person count of [`suppressed_columns`] above zero and below the
/// small-cell minimum of the policy in force `on` that day (the built-in
/// policy table) by the text `"<N"`, as every reader of the committee's
/// model is shown it: the API, the console and the CLI all suppress here.
pub fn suppress_small_cells(model: &str, table: &Table, rows: &mut [Vec<Value>], on: NaiveDate) {
    let hidden = suppressed_columns(model, table.name);
    if hidden.is_empty() {
        return;
    }
    let small = i64::from(PolicyTable::builtin().at(on).small_cell_min);
    for row in rows {
        for (value, column) in row.iter_mut().zip(table.columns()) {
            if hidden.contains(&column.name)
                && matches!(value, Value::Int(n) if *n > 0 && *n < small)
            {
                *value = Value::Text(format!("<{small}"));
            }
        }
    }
}

/// The columns of `model`'s `table` that count persons and must be hidden
/// when below the policy's small-cell minimum. Only the committee's
/// aggregates are suppressed; every other model serves its own caseload.
pub fn suppressed_columns(model: &str, table: &str) -> &'static [&'static str] {
    match (model, table) {
        ("committee", "new_employment") => &["persons"],
        ("committee", "four_ones") => &["verified"],
        ("committee", "training") => &["completed"],
        ("committee", "city_reports") => &["new_employment", "four_ones_verified", "trained"],
        ("committee", "evaluation") => &["new_employment_total"],
        _ => &[],
    }
}

/// The year of a date, 0 when the event carried none.
fn year(d: Option<NaiveDate>) -> i32 {
    d.map_or(0, |d| d.year())
}

/// The error for a view of another department reaching a projection.
fn foreign_view(model: &'static str) -> ProjectionError {
    ProjectionError::Schema {
        projection: model,
        detail: "received another department's view".to_owned(),
    }
}

/// A model's rows in the open transaction, with typed reads by column name.
struct Rows<'a> {
    model: &'static str,
    tx: &'a mut dyn Tx,
}

impl<'a> Rows<'a> {
    fn new(model: &'static str, tx: &'a mut dyn Tx) -> Self {
        Rows { model, tx }
    }

    /// The value of `column` in the row with `key`; `None` if there is no row.
    fn value(
        &mut self,
        table: &Table,
        key: &[Value],
        column: &str,
    ) -> Result<Option<Value>, ProjectionError> {
        if !table.values.iter().any(|c| c.name == column) {
            return Err(ProjectionError::Schema {
                projection: self.model,
                detail: format!("table {} has no value column {column}", table.name),
            });
        }
        self.tx.value(table, key, column)
    }

    fn exists(&mut self, table: &Table, key: &[Value]) -> Result<bool, ProjectionError> {
        self.tx.exists(table, key)
    }

    /// A text cell; `None` if the row is absent or the cell is not text.
    fn text(
        &mut self,
        table: &Table,
        key: &[Value],
        column: &str,
    ) -> Result<Option<String>, ProjectionError> {
        Ok(match self.value(table, key, column)? {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        })
    }

    /// An integer cell; 0 if the row is absent or the cell is NULL.
    fn int(&mut self, table: &Table, key: &[Value], column: &str) -> Result<i64, ProjectionError> {
        Ok(match self.value(table, key, column)? {
            Some(Value::Int(i)) => i,
            _ => 0,
        })
    }

    /// A boolean cell; false if the row is absent or the cell is NULL.
    fn flag(
        &mut self,
        table: &Table,
        key: &[Value],
        column: &str,
    ) -> Result<bool, ProjectionError> {
        Ok(matches!(
            self.value(table, key, column)?,
            Some(Value::Bool(true))
        ))
    }

    fn set(
        &mut self,
        table: &Table,
        key: &[Value],
        values: &[(&str, Value)],
    ) -> Result<(), ProjectionError> {
        self.tx.upsert(table, key, values)
    }

    fn add(
        &mut self,
        table: &Table,
        key: &[Value],
        deltas: &[(&str, i64)],
    ) -> Result<(), ProjectionError> {
        self.tx.add(table, key, deltas)
    }

    fn delete(&mut self, table: &Table, key: &[Value]) -> Result<(), ProjectionError> {
        self.tx.delete(table, key)
    }
}

/// A change to a person's "household in phase-out" flag.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PhaseOutChange {
    /// In phase-out, until the date (if the event gave one).
    On(Option<NaiveDate>),
    Off,
}

/// Phase-out state of households, shared by the DPF and HRSS models: a
/// `lookup_households` table keyed by `household_ref` with the comma-joined
/// `members` named by its last phase-out event, `in_phase_out` and
/// `phase_out_until`. Returns the
/// flag changes for persons, which each model writes into its own table.
mod households {
    use super::*;
    use crate::{Column, views::PhaseOutFlag};

    pub(super) const LOOKUP: Table = Table {
        name: "lookup_households",
        key: &[Column::text("household_ref")],
        values: &[
            Column::text("members"),
            Column::bool("in_phase_out"),
            Column::text("phase_out_until"),
        ],
    };

    fn state(
        rows: &mut Rows<'_>,
        household: &str,
    ) -> Result<(Vec<String>, Option<PhaseOutChange>), ProjectionError> {
        let key = [Value::from(household)];
        let members = rows
            .text(&LOOKUP, &key, "members")?
            .map(|m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let on = rows.flag(&LOOKUP, &key, "in_phase_out")?;
        let until = rows
            .text(&LOOKUP, &key, "phase_out_until")?
            .and_then(|d| d.parse().ok());
        Ok((members, on.then_some(PhaseOutChange::On(until))))
    }

    /// Every member named by the phase-out event takes its flag; a member the
    /// household had at its previous phase-out event but no longer names
    /// loses it.
    pub(super) fn phase_out(
        rows: &mut Rows<'_>,
        f: &PhaseOutFlag,
    ) -> Result<Vec<(String, PhaseOutChange)>, ProjectionError> {
        let (old, _) = state(rows, &f.household_ref)?;
        let mut members = f.member_person_refs.clone();
        members.sort();
        members.dedup();
        rows.set(
            &LOOKUP,
            &[Value::from(f.household_ref.as_str())],
            &[
                ("members", Value::from(members.join(","))),
                ("in_phase_out", Value::from(f.in_phase_out)),
                (
                    "phase_out_until",
                    Value::from(f.until.filter(|_| f.in_phase_out)),
                ),
            ],
        )?;
        let change = if f.in_phase_out {
            PhaseOutChange::On(f.until)
        } else {
            PhaseOutChange::Off
        };
        let mut changes: Vec<(String, PhaseOutChange)> = old
            .into_iter()
            .filter(|p| !members.contains(p))
            .map(|p| (p, PhaseOutChange::Off))
            .collect();
        changes.extend(members.into_iter().map(|p| (p, change.clone())));
        Ok(changes)
    }
}
