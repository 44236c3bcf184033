//! The DPF's read model: the case registry and its coverage counts by city
//! and year — Four Ones, training, placements, graduates. Each city DPF
//! reads the rows of its own `city`. No wage or income reaches it.

use super::{PhaseOutChange, Rows, foreign_view, households, year};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, DpfView, city_of},
};

const MODEL: &str = "dpf";

const PERSONS: Table = Table {
    name: "persons",
    key: &[Column::text("person_ref")],
    values: &[
        Column::text("city"),
        Column::text("county"),
        Column::text("sex"),
        Column::int("birth_year"),
        Column::text("registered_on"),
        Column::int("certificate_category"),
        Column::int("certificate_grade"),
        Column::bool("employed"),
        Column::text("employment_form"),
        Column::int("open_placements"),
        Column::bool("in_phase_out"),
        Column::text("phase_out_until"),
    ],
};

const FOUR_ONES: Table = Table {
    name: "four_ones",
    key: &[Column::text("city"), Column::int("year")],
    values: &[
        Column::int("verified"),
        Column::int("wants_work"),
        Column::int("assessed"),
        Column::int("need_registered"),
        Column::int("served"),
    ],
};

const TRAINING: Table = Table {
    name: "training",
    key: &[Column::text("city"), Column::int("year")],
    values: &[
        Column::int("enrolled"),
        Column::int("completed"),
        Column::int("passed"),
        Column::int("subsidy_fen"),
    ],
};

const PLACEMENTS: Table = Table {
    name: "placements",
    key: &[
        Column::text("city"),
        Column::int("year"),
        Column::text("employment_form"),
    ],
    values: &[
        Column::int("placed"),
        Column::int("ended"),
        Column::int("new_employment"),
    ],
};

const GRADUATES: Table = Table {
    name: "graduates",
    key: &[Column::text("city"), Column::int("year")],
    values: &[
        Column::int("ledgers_opened"),
        Column::int("plans_set"),
        Column::int("services_delivered"),
        Column::int("outcomes_recorded"),
        Column::int("employed"),
    ],
};

/// Which of the Four Ones a person already has in a year (one bit per step,
/// [`FourOne::bit`]), so each counts once: one row per person and year.
const LOOKUP_FOUR_ONES: Table = Table {
    name: "lookup_four_ones",
    key: &[Column::text("person_ref"), Column::int("year")],
    values: &[Column::int("steps")],
};

/// One of the Four Ones (四个一).
#[derive(Debug, Clone, Copy)]
enum FourOne {
    Verified,
    Assessed,
    NeedRegistered,
    Served,
}

impl FourOne {
    /// Its column in `four_ones`.
    fn column(self) -> &'static str {
        match self {
            FourOne::Verified => "verified",
            FourOne::Assessed => "assessed",
            FourOne::NeedRegistered => "need_registered",
            FourOne::Served => "served",
        }
    }

    /// Its bit in `lookup_four_ones.steps`.
    fn bit(self) -> i64 {
        1 << self as u32
    }
}

/// A placement's form and whether it is still open, for its end.
const LOOKUP_PLACEMENTS: Table = Table {
    name: "lookup_placements",
    key: &[Column::text("placement_id")],
    values: &[
        Column::text("person_ref"),
        Column::text("employment_form"),
        Column::bool("open"),
    ],
};

/// A ledger's city and year, for its plan and outcome.
const LOOKUP_LEDGERS: Table = Table {
    name: "lookup_ledgers",
    key: &[Column::text("ledger_id")],
    values: &[
        Column::text("city"),
        Column::int("year"),
        Column::bool("planned"),
        Column::bool("outcome_recorded"),
    ],
};

const TABLES: &[Table] = &[
    PERSONS,
    FOUR_ONES,
    TRAINING,
    PLACEMENTS,
    GRADUATES,
    LOOKUP_FOUR_ONES,
    LOOKUP_PLACEMENTS,
    LOOKUP_LEDGERS,
    households::LOOKUP,
];

department_projection!(Dpf, Dpf, views::dpf);

fn person(p: &str) -> [Value; 1] {
    [Value::from(p)]
}

fn city_year(city: &str, year: i32) -> [Value; 2] {
    [Value::from(city), Value::from(year)]
}

/// Creates the person's row with its defaults if it does not exist yet.
fn ensure_person(rows: &mut Rows<'_>, p: &str) -> Result<(), ProjectionError> {
    if !rows.exists(&PERSONS, &person(p))? {
        rows.set(
            &PERSONS,
            &person(p),
            &[
                ("birth_year", Value::Null),
                ("certificate_category", Value::Null),
                ("certificate_grade", Value::Null),
                ("employed", Value::from(false)),
                ("open_placements", Value::from(0)),
                ("in_phase_out", Value::from(false)),
            ],
        )?;
    }
    Ok(())
}

/// The person's city now; `unknown` for a person not registered here.
fn city(rows: &mut Rows<'_>, p: &str) -> Result<String, ProjectionError> {
    Ok(rows
        .text(&PERSONS, &person(p), "city")?
        .unwrap_or_else(|| "unknown".to_owned()))
}

/// Counts one of the Four Ones for the person's city and year, once.
fn four_ones(
    rows: &mut Rows<'_>,
    p: &str,
    year: i32,
    step: FourOne,
    wants_work: bool,
) -> Result<(), ProjectionError> {
    let seen = [Value::from(p), Value::from(year)];
    let steps = rows.int(&LOOKUP_FOUR_ONES, &seen, "steps")?;
    if steps & step.bit() != 0 {
        return Ok(());
    }
    rows.set(
        &LOOKUP_FOUR_ONES,
        &seen,
        &[("steps", Value::Int(steps | step.bit()))],
    )?;
    let city = city(rows, p)?;
    let mut deltas = vec![(step.column(), 1)];
    if wants_work {
        deltas.push(("wants_work", 1));
    }
    rows.add(&FOUR_ONES, &city_year(&city, year), &deltas)
}

fn phase_out_flags(
    rows: &mut Rows<'_>,
    changes: Vec<(String, PhaseOutChange)>,
) -> Result<(), ProjectionError> {
    for (p, change) in changes {
        ensure_person(rows, &p)?;
        let (on, until) = match change {
            PhaseOutChange::On(until) => (true, until),
            PhaseOutChange::Off => (false, None),
        };
        rows.set(
            &PERSONS,
            &person(&p),
            &[
                ("in_phase_out", Value::from(on)),
                ("phase_out_until", Value::from(until)),
            ],
        )?;
    }
    Ok(())
}

fn apply(rows: &mut Rows<'_>, view: &DpfView) -> Result<(), ProjectionError> {
    match view {
        DpfView::Registered(v) => {
            ensure_person(rows, &v.person_ref)?;
            rows.set(
                &PERSONS,
                &person(&v.person_ref),
                &[
                    ("city", Value::from(city_of(&v.residence_region))),
                    ("county", Value::from(v.residence_region.as_str())),
                    ("sex", Value::from(v.sex.as_str())),
                    ("birth_year", Value::from(v.birth_year)),
                    ("registered_on", Value::from(v.registered_on)),
                ],
            )
        }
        DpfView::Certificate(v) => {
            ensure_person(rows, &v.person_ref)?;
            rows.set(
                &PERSONS,
                &person(&v.person_ref),
                &[
                    (
                        "certificate_category",
                        v.category.map_or(Value::Null, Value::from),
                    ),
                    (
                        "certificate_grade",
                        v.grade.map_or(Value::Null, Value::from),
                    ),
                ],
            )
        }
        DpfView::Moved(v) => {
            ensure_person(rows, &v.person_ref)?;
            rows.set(
                &PERSONS,
                &person(&v.person_ref),
                &[
                    ("city", Value::from(city_of(&v.to_region))),
                    ("county", Value::from(v.to_region.as_str())),
                ],
            )
        }
        // The key is gone: what was read in the clear goes with it.
        DpfView::Erased(v) => {
            if !rows.exists(&PERSONS, &person(&v.person_ref))? {
                return Ok(());
            }
            rows.set(
                &PERSONS,
                &person(&v.person_ref),
                &[
                    ("certificate_category", Value::Null),
                    ("certificate_grade", Value::Null),
                ],
            )
        }
        DpfView::Verified(v) => {
            four_ones(rows, &v.person_ref, v.year, FourOne::Verified, v.wants_work)
        }
        DpfView::Assessed(v) => four_ones(rows, &v.person_ref, v.year, FourOne::Assessed, false),
        DpfView::NeedRegistered(v) => {
            four_ones(rows, &v.person_ref, v.year, FourOne::NeedRegistered, false)
        }
        DpfView::Served(v) => four_ones(rows, &v.person_ref, v.year, FourOne::Served, false),
        DpfView::Enrolled(v) => {
            let city = city(rows, &v.person_ref)?;
            rows.add(
                &TRAINING,
                &city_year(&city, year(v.enrolled_on)),
                &[("enrolled", 1)],
            )
        }
        DpfView::TrainingCompleted(v) => {
            let city = city(rows, &v.person_ref)?;
            rows.add(
                &TRAINING,
                &city_year(&city, year(v.completed_on)),
                &[("completed", 1), ("passed", i64::from(v.passed))],
            )
        }
        DpfView::Subsidy(v) => {
            let city = city(rows, &v.person_ref)?;
            rows.add(
                &TRAINING,
                &city_year(&city, year(v.granted_on)),
                &[("subsidy_fen", v.subsidy_fen)],
            )
        }
        DpfView::Placed(v) => {
            let city = city(rows, &v.person_ref)?;
            rows.set(
                &LOOKUP_PLACEMENTS,
                &[Value::from(v.placement_id.as_str())],
                &[
                    ("person_ref", Value::from(v.person_ref.as_str())),
                    ("employment_form", Value::from(v.employment_form.as_str())),
                    ("open", Value::from(true)),
                ],
            )?;
            rows.add(
                &PLACEMENTS,
                &[
                    Value::from(city),
                    Value::from(year(v.start_date)),
                    Value::from(v.employment_form.as_str()),
                ],
                &[("placed", 1)],
            )?;
            ensure_person(rows, &v.person_ref)?;
            rows.add(&PERSONS, &person(&v.person_ref), &[("open_placements", 1)])?;
            rows.set(
                &PERSONS,
                &person(&v.person_ref),
                &[
                    ("employed", Value::from(true)),
                    ("employment_form", Value::from(v.employment_form.as_str())),
                ],
            )
        }
        DpfView::NewEmployment(v) => rows.add(
            &PLACEMENTS,
            &[
                Value::from(city_of(&v.region)),
                Value::from(v.year),
                Value::from(v.employment_form.as_str()),
            ],
            &[("new_employment", 1)],
        ),
        DpfView::PlacementEnded(v) => {
            let placement = [Value::from(v.placement_id.as_str())];
            if !rows.flag(&LOOKUP_PLACEMENTS, &placement, "open")? {
                return Ok(());
            }
            let form = rows
                .text(&LOOKUP_PLACEMENTS, &placement, "employment_form")?
                .unwrap_or_default();
            rows.set(
                &LOOKUP_PLACEMENTS,
                &placement,
                &[("open", Value::from(false))],
            )?;
            let city = city(rows, &v.person_ref)?;
            rows.add(
                &PLACEMENTS,
                &[
                    Value::from(city),
                    Value::from(year(v.end_date)),
                    Value::from(form),
                ],
                &[("ended", 1)],
            )?;
            ensure_person(rows, &v.person_ref)?;
            rows.add(&PERSONS, &person(&v.person_ref), &[("open_placements", -1)])?;
            if rows.int(&PERSONS, &person(&v.person_ref), "open_placements")? <= 0 {
                rows.set(
                    &PERSONS,
                    &person(&v.person_ref),
                    &[
                        ("employed", Value::from(false)),
                        ("employment_form", Value::Null),
                    ],
                )?;
            }
            Ok(())
        }
        DpfView::PhaseOut(v) => {
            let changes = households::phase_out(rows, v)?;
            phase_out_flags(rows, changes)
        }
        DpfView::LedgerOpened(v) => {
            let city = city_of(&v.city);
            rows.set(
                &LOOKUP_LEDGERS,
                &[Value::from(v.ledger_id.as_str())],
                &[
                    ("city", Value::from(city.as_str())),
                    ("year", Value::from(v.year)),
                    ("planned", Value::from(false)),
                    ("outcome_recorded", Value::from(false)),
                ],
            )?;
            rows.add(
                &GRADUATES,
                &city_year(&city, v.year),
                &[("ledgers_opened", 1)],
            )
        }
        DpfView::PlanSet(v) => ledger_step(rows, &v.ledger_id, "planned", &[("plans_set", 1)]),
        DpfView::ServiceDelivered(v) => {
            let ledger = [Value::from(v.ledger_id.as_str())];
            let Some(city) = rows.text(&LOOKUP_LEDGERS, &ledger, "city")? else {
                return Ok(());
            };
            let year = rows.int(&LOOKUP_LEDGERS, &ledger, "year")?;
            rows.add(
                &GRADUATES,
                &[Value::from(city), Value::Int(year)],
                &[("services_delivered", 1)],
            )
        }
        DpfView::GraduateOutcome(v) => ledger_step(
            rows,
            &v.ledger_id,
            "outcome_recorded",
            &[
                ("outcomes_recorded", 1),
                ("employed", i64::from(v.outcome == "employed")),
            ],
        ),
    }
}

/// Counts a ledger's plan or outcome once, for the ledger's city and year;
/// nothing for a ledger never opened.
fn ledger_step(
    rows: &mut Rows<'_>,
    ledger_id: &str,
    done: &str,
    deltas: &[(&str, i64)],
) -> Result<(), ProjectionError> {
    let ledger = [Value::from(ledger_id)];
    let Some(city) = rows.text(&LOOKUP_LEDGERS, &ledger, "city")? else {
        return Ok(());
    };
    if rows.flag(&LOOKUP_LEDGERS, &ledger, done)? {
        return Ok(());
    }
    let year = rows.int(&LOOKUP_LEDGERS, &ledger, "year")?;
    rows.set(&LOOKUP_LEDGERS, &ledger, &[(done, Value::from(true))])?;
    rows.add(&GRADUATES, &[Value::from(city), Value::Int(year)], deltas)
}
