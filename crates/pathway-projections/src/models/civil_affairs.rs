//! Civil Affairs' read model: the households it asserted, their
//! reassessments and phase-outs with income and status, and the employment
//! of their members with start, end, employer and wage.
//!
//! A person's placement is kept only while the person belongs to a household
//! Civil Affairs tracks: one it asserted with a low-income status other than
//! `none` (a sealed status counts as tracked — the office asserted it for a
//! reason). Everyone else's placements are dropped on arrival.

use super::{Rows, foreign_view};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, CivilAffairsView},
};

const MODEL: &str = "civil_affairs";

const HOUSEHOLDS: Table = Table {
    name: "households",
    key: &[Column::text("household_ref")],
    values: &[
        Column::text("status"),
        Column::int("members"),
        Column::text("member_refs"),
        Column::text("status_effective_on"),
        Column::text("reassessment_requested_on"),
        Column::int("last_income_fen"),
        Column::text("last_assessed_on"),
        Column::text("benefit"),
        Column::text("phase_out_id"),
        Column::text("phase_out_start"),
        Column::text("planned_end"),
        Column::text("phase_out_state"),
    ],
};

const MEMBERS: Table = Table {
    name: "members",
    key: &[Column::text("person_ref")],
    values: &[Column::text("household_ref")],
};

const MEMBER_EMPLOYMENT: Table = Table {
    name: "member_employment",
    key: &[Column::text("placement_id")],
    values: &[
        Column::text("person_ref"),
        Column::text("household_ref"),
        Column::text("employer_uscc"),
        Column::text("start_date"),
        Column::text("end_date"),
        Column::int("monthly_wage_fen"),
    ],
};

/// Working table: the placements of each person, so an erasure can find
/// the wages it must drop (`placement_ids` space-separated).
const LOOKUP_PERSON_PLACEMENTS: Table = Table {
    name: "lookup_person_placements",
    key: &[Column::text("person_ref")],
    values: &[Column::text("placement_ids")],
};

const TABLES: &[Table] = &[
    HOUSEHOLDS,
    MEMBERS,
    MEMBER_EMPLOYMENT,
    LOOKUP_PERSON_PLACEMENTS,
];

department_projection!(CivilAffairs, CivilAffairs, views::civil_affairs);

fn tracked(status: Option<&str>) -> bool {
    status != Some("none")
}

/// Points `members` at the household for each current member while it is
/// tracked; drops the household's former members and, if it is no longer
/// tracked, all of them.
fn sync_members(
    rows: &mut Rows<'_>,
    household: &str,
    members: &[String],
    status: Option<&str>,
) -> Result<(), ProjectionError> {
    let key = [Value::from(household)];
    let former = rows
        .text(&HOUSEHOLDS, &key, "member_refs")?
        .unwrap_or_default();
    for p in former.split(',').filter(|p| !p.is_empty()) {
        let person = [Value::from(p)];
        let keep = tracked(status) && members.iter().any(|m| m == p);
        if !keep && rows.text(&MEMBERS, &person, "household_ref")?.as_deref() == Some(household) {
            rows.delete(&MEMBERS, &person)?;
        }
    }
    if tracked(status) {
        for p in members {
            rows.set(
                &MEMBERS,
                &[Value::from(p.as_str())],
                &[("household_ref", Value::from(household))],
            )?;
        }
    }
    rows.set(
        &HOUSEHOLDS,
        &key,
        &[
            ("members", Value::from(members.len() as i64)),
            ("member_refs", Value::from(members.join(","))),
        ],
    )
}

fn household(h: &str) -> [Value; 1] {
    [Value::from(h)]
}

fn apply(rows: &mut Rows<'_>, view: &CivilAffairsView) -> Result<(), ProjectionError> {
    match view {
        CivilAffairsView::StatusAsserted(v) => {
            let mut members = v.member_person_refs.clone();
            members.sort();
            members.dedup();
            sync_members(rows, &v.household_ref, &members, v.status.as_deref())?;
            rows.set(
                &HOUSEHOLDS,
                &household(&v.household_ref),
                &[
                    ("status", v.status.clone().map_or(Value::Null, Value::from)),
                    ("status_effective_on", Value::from(v.effective_on)),
                ],
            )
        }
        CivilAffairsView::ReassessmentRequested(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[("reassessment_requested_on", Value::from(v.requested_on))],
        ),
        CivilAffairsView::IncomeReassessed(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[
                (
                    "last_income_fen",
                    v.per_capita_income_fen.map_or(Value::Null, Value::from),
                ),
                ("last_assessed_on", Value::from(v.assessed_on)),
            ],
        ),
        CivilAffairsView::PhaseOutStarted(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[
                ("benefit", Value::from("phasing_out")),
                ("phase_out_id", Value::from(v.phase_out_id.as_str())),
                ("phase_out_start", Value::from(v.start_date)),
                ("planned_end", Value::from(v.planned_end)),
                ("phase_out_state", Value::from("active")),
            ],
        ),
        CivilAffairsView::PhaseOutExtended(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[("planned_end", Value::from(v.new_end))],
        ),
        CivilAffairsView::PhaseOutCancelled(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[("phase_out_state", Value::from("cancelled"))],
        ),
        CivilAffairsView::BenefitPhasedOut(v) => {
            let key = household(&v.household_ref);
            let members = rows
                .text(&HOUSEHOLDS, &key, "member_refs")?
                .unwrap_or_default();
            let members: Vec<String> = members
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            sync_members(rows, &v.household_ref, &members, Some(&v.resulting_status))?;
            rows.set(
                &HOUSEHOLDS,
                &key,
                &[
                    ("status", Value::from(v.resulting_status.as_str())),
                    ("benefit", Value::from("phased_out")),
                    ("phase_out_state", Value::from("completed")),
                ],
            )
        }
        CivilAffairsView::BenefitTerminated(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[("benefit", Value::from("terminated"))],
        ),
        CivilAffairsView::BenefitContinued(v) => rows.set(
            &HOUSEHOLDS,
            &household(&v.household_ref),
            &[("benefit", Value::from("continued"))],
        ),
        CivilAffairsView::Placed(v) => {
            let Some(household) = rows.text(
                &MEMBERS,
                &[Value::from(v.person_ref.as_str())],
                "household_ref",
            )?
            else {
                return Ok(());
            };
            let person = [Value::from(v.person_ref.as_str())];
            let ids = match rows.text(&LOOKUP_PERSON_PLACEMENTS, &person, "placement_ids")? {
                Some(ids) if ids.split(' ').any(|id| id == v.placement_id) => ids,
                Some(ids) => format!("{ids} {}", v.placement_id),
                None => v.placement_id.clone(),
            };
            rows.set(
                &LOOKUP_PERSON_PLACEMENTS,
                &person,
                &[("placement_ids", Value::from(ids))],
            )?;
            rows.set(
                &MEMBER_EMPLOYMENT,
                &[Value::from(v.placement_id.as_str())],
                &[
                    ("person_ref", Value::from(v.person_ref.as_str())),
                    ("household_ref", Value::from(household)),
                    ("employer_uscc", Value::from(v.employer_uscc.as_str())),
                    ("start_date", Value::from(v.start_date)),
                    ("end_date", Value::Null),
                    (
                        "monthly_wage_fen",
                        v.monthly_wage_fen.map_or(Value::Null, Value::from),
                    ),
                ],
            )
        }
        CivilAffairsView::Erased(v) => {
            let key = [Value::from(v.person_ref.as_str())];
            let Some(ids) = rows.text(&LOOKUP_PERSON_PLACEMENTS, &key, "placement_ids")? else {
                return Ok(());
            };
            for id in ids.split(' ') {
                let placement = [Value::from(id)];
                if rows.exists(&MEMBER_EMPLOYMENT, &placement)? {
                    rows.set(
                        &MEMBER_EMPLOYMENT,
                        &placement,
                        &[("monthly_wage_fen", Value::Null)],
                    )?;
                }
            }
            Ok(())
        }
        CivilAffairsView::PlacementEnded(v) => {
            let key = [Value::from(v.placement_id.as_str())];
            if !rows.exists(&MEMBER_EMPLOYMENT, &key)? {
                return Ok(());
            }
            rows.set(
                &MEMBER_EMPLOYMENT,
                &key,
                &[("end_date", Value::from(v.end_date))],
            )
        }
    }
}
