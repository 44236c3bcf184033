//! Education's read model: its cohorts with matched and unmatched counts,
//! each graduate ledger's outcome category, and outcomes per school and year.
//! A ledger opened without an outcome yet counts as `pending`.

use super::{Rows, foreign_view};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, EducationView},
};

const MODEL: &str = "education";

/// The outcome of a ledger that has none yet.
const PENDING: &str = "pending";

const COHORTS: Table = Table {
    name: "cohorts",
    key: &[Column::text("batch_id")],
    values: &[
        Column::int("year"),
        Column::int("record_count"),
        Column::text("received_on"),
        Column::int("matched"),
        Column::int("unmatched"),
    ],
};

const GRADUATE_OUTCOMES: Table = Table {
    name: "graduate_outcomes",
    key: &[Column::text("ledger_id")],
    values: &[
        Column::text("school"),
        Column::int("year"),
        Column::text("outcome"),
    ],
};

const SCHOOL_OUTCOMES: Table = Table {
    name: "school_outcomes",
    key: &[
        Column::text("school"),
        Column::int("year"),
        Column::text("outcome"),
    ],
    values: &[Column::int("graduates")],
};

const TABLES: &[Table] = &[COHORTS, GRADUATE_OUTCOMES, SCHOOL_OUTCOMES];

department_projection!(Education, Education, views::education);

/// Moves one graduate of a school and year into `outcome`'s count, out of
/// `from`'s; a count that reaches zero is removed.
fn count_outcome(
    rows: &mut Rows<'_>,
    school: &str,
    year: i64,
    from: Option<&str>,
    outcome: &str,
) -> Result<(), ProjectionError> {
    if let Some(from) = from {
        let key = [Value::from(school), Value::Int(year), Value::from(from)];
        rows.add(&SCHOOL_OUTCOMES, &key, &[("graduates", -1)])?;
        if rows.int(&SCHOOL_OUTCOMES, &key, "graduates")? <= 0 {
            rows.delete(&SCHOOL_OUTCOMES, &key)?;
        }
    }
    rows.add(
        &SCHOOL_OUTCOMES,
        &[Value::from(school), Value::Int(year), Value::from(outcome)],
        &[("graduates", 1)],
    )
}

fn apply(rows: &mut Rows<'_>, view: &EducationView) -> Result<(), ProjectionError> {
    match view {
        EducationView::CohortReceived(v) => {
            let key = [Value::from(v.batch_id.as_str())];
            rows.set(
                &COHORTS,
                &key,
                &[
                    ("year", Value::from(v.year)),
                    ("record_count", Value::from(v.record_count)),
                    ("received_on", Value::from(v.received_on)),
                ],
            )?;
            // Counts start at zero rather than NULL.
            rows.add(&COHORTS, &key, &[("matched", 0), ("unmatched", 0)])
        }
        EducationView::Matched(v) => rows.add(
            &COHORTS,
            &[Value::from(v.batch_id.as_str())],
            &[("matched", 1)],
        ),
        EducationView::Unmatched(v) => rows.add(
            &COHORTS,
            &[Value::from(v.batch_id.as_str())],
            &[("unmatched", 1)],
        ),
        EducationView::LedgerOpened(v) => {
            let key = [Value::from(v.ledger_id.as_str())];
            if rows.exists(&GRADUATE_OUTCOMES, &key)? {
                return Ok(());
            }
            rows.set(
                &GRADUATE_OUTCOMES,
                &key,
                &[
                    ("school", Value::from(v.school.as_str())),
                    ("year", Value::from(v.year)),
                    ("outcome", Value::from(PENDING)),
                ],
            )?;
            count_outcome(rows, &v.school, v.year.into(), None, PENDING)
        }
        EducationView::Outcome(v) => {
            let key = [Value::from(v.ledger_id.as_str())];
            // An outcome for a ledger Education never saw opened is not one of
            // its graduates.
            let Some(school) = rows.text(&GRADUATE_OUTCOMES, &key, "school")? else {
                return Ok(());
            };
            let year = rows.int(&GRADUATE_OUTCOMES, &key, "year")?;
            let from = rows.text(&GRADUATE_OUTCOMES, &key, "outcome")?;
            if from.as_deref() == Some(v.outcome.as_str()) {
                return Ok(());
            }
            rows.set(
                &GRADUATE_OUTCOMES,
                &key,
                &[("outcome", Value::from(v.outcome.as_str()))],
            )?;
            count_outcome(rows, &school, year, from.as_deref(), &v.outcome)
        }
    }
}
