//! The provincial committee's read model: KPI aggregates by city (or region)
//! and year, the fund against its cap, city reports and the evaluation. No
//! table has a person column; person counts are suppressed below the small
//! cell minimum at query time (see [`suppressed_columns`](super::suppressed_columns)).

use super::{Rows, foreign_view};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, CommitteeView},
};

const MODEL: &str = "committee";

/// The fund line whose share of the base is capped.
const PWP_SOCIAL_INSURANCE: &str = "pwp_social_insurance";

const NEW_EMPLOYMENT: Table = Table {
    name: "new_employment",
    key: &[Column::text("city"), Column::int("year")],
    values: &[Column::int("persons")],
};

const FOUR_ONES: Table = Table {
    name: "four_ones",
    key: &[Column::text("city"), Column::int("year")],
    values: &[Column::int("verified")],
};

const TRAINING: Table = Table {
    name: "training",
    key: &[Column::text("city"), Column::int("year")],
    values: &[Column::int("completed")],
};

const WELFARE_POSTS: Table = Table {
    name: "welfare_posts",
    key: &[Column::text("region"), Column::int("year")],
    values: &[Column::int("total_posts"), Column::int("disabled_posts")],
};

const FUND: Table = Table {
    name: "fund",
    key: &[Column::text("region"), Column::int("year")],
    values: &[
        Column::int("fund_base_fen"),
        Column::int("allocated_fen"),
        Column::int("pwp_social_insurance_fen"),
        Column::int("pwp_override_fen"),
    ],
};

const CITY_REPORTS: Table = Table {
    name: "city_reports",
    key: &[Column::text("city"), Column::int("year")],
    values: &[
        Column::text("submitted_on"),
        Column::bool("overdue"),
        Column::int("new_employment"),
        Column::int("four_ones_verified"),
        Column::int("trained"),
    ],
};

const EVALUATION: Table = Table {
    name: "evaluation",
    key: &[Column::text("plan_id")],
    values: &[
        Column::text("completed_on"),
        Column::int("new_employment_total"),
        Column::int("target"),
    ],
};

/// The city each training programme runs in, for its completions.
const LOOKUP_PROGRAMMES: Table = Table {
    name: "lookup_programmes",
    key: &[Column::text("programme_id")],
    values: &[Column::text("city")],
};

const TABLES: &[Table] = &[
    NEW_EMPLOYMENT,
    FOUR_ONES,
    TRAINING,
    WELFARE_POSTS,
    FUND,
    CITY_REPORTS,
    EVALUATION,
    LOOKUP_PROGRAMMES,
];

department_projection!(Committee, Committee, views::committee);

fn at(place: &str, year: i32) -> [Value; 2] {
    [Value::from(place), Value::from(year)]
}

fn apply(rows: &mut Rows<'_>, view: &CommitteeView) -> Result<(), ProjectionError> {
    match view {
        CommitteeView::NewEmployment(v) => {
            rows.add(&NEW_EMPLOYMENT, &at(&v.city, v.year), &[("persons", 1)])
        }
        CommitteeView::FourOnesVerified(v) => {
            rows.add(&FOUR_ONES, &at(&v.city, v.year), &[("verified", 1)])
        }
        CommitteeView::ProgrammeRegistered(v) => rows.set(
            &LOOKUP_PROGRAMMES,
            &[Value::from(v.programme_id.as_str())],
            &[("city", Value::from(v.city.as_str()))],
        ),
        CommitteeView::TrainingCompleted(v) => {
            let city = rows
                .text(
                    &LOOKUP_PROGRAMMES,
                    &[Value::from(v.programme_id.as_str())],
                    "city",
                )?
                .unwrap_or_else(|| "unknown".to_owned());
            rows.add(&TRAINING, &at(&city, v.year), &[("completed", 1)])
        }
        CommitteeView::PostsDeveloped(v) => rows.add(
            &WELFARE_POSTS,
            &at(&v.region, v.year),
            &[
                ("total_posts", v.total_posts),
                ("disabled_posts", v.disabled_posts),
            ],
        ),
        CommitteeView::FundBudgeted(v) => rows.set(
            &FUND,
            &at(&v.region, v.year),
            &[("fund_base_fen", Value::from(v.fund_base_fen))],
        ),
        CommitteeView::FundAllocated(v) => {
            let key = at(&v.region, v.year);
            rows.add(&FUND, &key, &[("allocated_fen", v.amount_fen)])?;
            if v.purpose == PWP_SOCIAL_INSURANCE {
                rows.set(
                    &FUND,
                    &key,
                    &[("pwp_social_insurance_fen", Value::from(v.purpose_total_fen))],
                )?;
            }
            Ok(())
        }
        CommitteeView::CapOverride(v) if v.purpose == PWP_SOCIAL_INSURANCE => rows.set(
            &FUND,
            &at(&v.region, v.year),
            &[("pwp_override_fen", Value::from(v.approved_total_fen))],
        ),
        // The cap binds only the social-insurance line.
        CommitteeView::CapOverride(_) => Ok(()),
        CommitteeView::ReportSubmitted(v) => {
            let key = at(&v.city, v.year);
            // A late report stays marked overdue.
            let overdue = rows.flag(&CITY_REPORTS, &key, "overdue")?;
            rows.set(
                &CITY_REPORTS,
                &key,
                &[
                    ("submitted_on", Value::from(v.submitted_on)),
                    ("overdue", Value::from(overdue)),
                    ("new_employment", Value::from(v.new_employment)),
                    ("four_ones_verified", Value::from(v.four_ones_verified)),
                    ("trained", Value::from(v.trained)),
                ],
            )
        }
        CommitteeView::ReportOverdue(v) => rows.set(
            &CITY_REPORTS,
            &at(&v.city, v.year),
            &[("overdue", Value::from(true))],
        ),
        CommitteeView::Evaluation(v) => rows.set(
            &EVALUATION,
            &[Value::from(v.plan_id.as_str())],
            &[
                ("completed_on", Value::from(v.completed_on)),
                ("new_employment_total", Value::from(v.new_employment_total)),
                ("target", Value::from(v.target)),
            ],
        ),
    }
}
