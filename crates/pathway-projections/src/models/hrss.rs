//! HRSS's read model: job seekers (referred only with the person's consent),
//! training with its subsidies, placements by city, public-welfare posts and
//! the phase-out flag. No disability detail, assessment, wage or low-income
//! status reaches it.

use super::{PhaseOutChange, Rows, foreign_view, households, year};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, HrssView, city_of},
};

const MODEL: &str = "hrss";

/// Persons who registered an employment need; `referred` once they consent
/// to referral to HRSS. Withdrawing consent removes the row.
const JOB_SEEKERS: Table = Table {
    name: "job_seekers",
    key: &[Column::text("person_ref")],
    values: &[
        Column::text("city"),
        Column::int("year"),
        Column::text("intended_occupations"),
        Column::text("intended_region"),
        Column::bool("referred"),
    ],
};

const TRAINING: Table = Table {
    name: "training",
    key: &[Column::text("programme_id"), Column::text("person_ref")],
    values: &[
        Column::text("training_type"),
        Column::text("enrolled_on"),
        Column::text("completed_on"),
        Column::bool("passed"),
        Column::int("tuition_fen"),
        Column::int("living_allowance_fen"),
    ],
};

/// Placements by the workplace's city, start year and form.
const PLACEMENTS: Table = Table {
    name: "placements",
    key: &[
        Column::text("city"),
        Column::int("year"),
        Column::text("employment_form"),
    ],
    values: &[Column::int("placed"), Column::int("social_insurance_paid")],
};

const WELFARE_POSTS: Table = Table {
    name: "welfare_posts",
    key: &[Column::text("region"), Column::int("year")],
    values: &[
        Column::int("total_posts"),
        Column::int("disabled_posts"),
        Column::int("assigned"),
    ],
};

/// Persons whose household is in phase-out, and until when.
const PHASE_OUT_FLAGS: Table = Table {
    name: "phase_out_flags",
    key: &[Column::text("person_ref")],
    values: &[Column::text("until")],
};

const TABLES: &[Table] = &[
    JOB_SEEKERS,
    TRAINING,
    PLACEMENTS,
    WELFARE_POSTS,
    PHASE_OUT_FLAGS,
    households::LOOKUP,
];

department_projection!(Hrss, Hrss, views::hrss);

fn phase_out_flags(
    rows: &mut Rows<'_>,
    changes: Vec<(String, PhaseOutChange)>,
) -> Result<(), ProjectionError> {
    for (p, change) in changes {
        let key = [Value::from(p)];
        match change {
            PhaseOutChange::On(until) => {
                rows.set(&PHASE_OUT_FLAGS, &key, &[("until", Value::from(until))])?
            }
            PhaseOutChange::Off => rows.delete(&PHASE_OUT_FLAGS, &key)?,
        }
    }
    Ok(())
}

fn apply(rows: &mut Rows<'_>, view: &HrssView) -> Result<(), ProjectionError> {
    match view {
        HrssView::NeedRegistered(v) => {
            let key = [Value::from(v.person_ref.as_str())];
            let referred = rows.flag(&JOB_SEEKERS, &key, "referred")?;
            rows.set(
                &JOB_SEEKERS,
                &key,
                &[
                    ("city", Value::from(city_of(&v.intended_region))),
                    ("year", Value::from(v.year)),
                    (
                        "intended_occupations",
                        Value::from(v.intended_occupations.join(",")),
                    ),
                    ("intended_region", Value::from(v.intended_region.as_str())),
                    ("referred", Value::from(referred)),
                ],
            )
        }
        HrssView::Referral(v) => {
            let key = [Value::from(v.person_ref.as_str())];
            if v.consented {
                rows.set(&JOB_SEEKERS, &key, &[("referred", Value::from(true))])
            } else {
                rows.delete(&JOB_SEEKERS, &key)
            }
        }
        HrssView::Enrolled(v) => rows.set(
            &TRAINING,
            &[
                Value::from(v.programme_id.as_str()),
                Value::from(v.person_ref.as_str()),
            ],
            &[
                ("training_type", Value::from(v.training_type.as_str())),
                ("enrolled_on", Value::from(v.enrolled_on)),
            ],
        ),
        HrssView::TrainingCompleted(v) => rows.set(
            &TRAINING,
            &[
                Value::from(v.programme_id.as_str()),
                Value::from(v.person_ref.as_str()),
            ],
            &[
                ("completed_on", Value::from(v.completed_on)),
                ("passed", Value::from(v.passed)),
            ],
        ),
        HrssView::Subsidy(v) => rows.add(
            &TRAINING,
            &[
                Value::from(v.programme_id.as_str()),
                Value::from(v.person_ref.as_str()),
            ],
            &[
                ("tuition_fen", v.tuition_fen),
                ("living_allowance_fen", v.living_allowance_fen),
            ],
        ),
        HrssView::Placed(v) => rows.add(
            &PLACEMENTS,
            &[
                Value::from(city_of(&v.region)),
                Value::from(year(v.start_date)),
                Value::from(v.employment_form.as_str()),
            ],
            &[
                ("placed", 1),
                ("social_insurance_paid", i64::from(v.social_insurance_paid)),
            ],
        ),
        HrssView::PostsDeveloped(v) => rows.add(
            &WELFARE_POSTS,
            &[Value::from(v.region.as_str()), Value::from(v.year)],
            &[
                ("total_posts", v.total_posts),
                ("disabled_posts", v.disabled_posts),
            ],
        ),
        HrssView::PostAssigned(v) => rows.add(
            &WELFARE_POSTS,
            &[Value::from(v.region.as_str()), Value::from(v.year)],
            &[("assigned", 1)],
        ),
        HrssView::PostVacated(v) => rows.add(
            &WELFARE_POSTS,
            &[Value::from(v.region.as_str()), Value::from(v.year)],
            &[("assigned", -1)],
        ),
        HrssView::PhaseOut(v) => {
            let changes = households::phase_out(rows, v)?;
            phase_out_flags(rows, changes)
        }
    }
}
