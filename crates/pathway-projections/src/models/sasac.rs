//! The read model of SASAC and the Organization Department: employers, quota
//! compliance with disclosures, public-unit obligations and DPF cadre ratios.
//! Organisations and counts only.

use super::{Rows, foreign_view};
use crate::{
    Column, ProjectionError, Table, Value,
    views::{self, SasacView},
};

const MODEL: &str = "sasac";

const EMPLOYERS: Table = Table {
    name: "employers",
    key: &[Column::text("uscc")],
    values: &[
        Column::text("name"),
        Column::text("org_type"),
        Column::text("level"),
        Column::text("region"),
        Column::bool("is_soe"),
    ],
};

const QUOTA: Table = Table {
    name: "quota",
    key: &[Column::text("uscc"), Column::int("year")],
    values: &[
        Column::int("staff"),
        Column::int("counted_disabled"),
        Column::int("required_disabled_milli"),
        Column::bool("meets_quota"),
        Column::bool("disclosed"),
        Column::int("disclosed_disabled"),
    ],
};

const PUBLIC_UNITS: Table = Table {
    name: "public_units",
    key: &[Column::text("uscc"), Column::int("year")],
    values: &[
        Column::text("level"),
        Column::text("org_type"),
        Column::int("establishment"),
        Column::bool("rule_applies"),
        Column::bool("obligated"),
        Column::text("deadline"),
        Column::text("rule"),
    ],
};

const DPF_CADRES: Table = Table {
    name: "dpf_cadres",
    key: &[Column::text("dpf_org"), Column::int("year")],
    values: &[
        Column::text("region"),
        Column::int("total_cadres"),
        Column::int("disabled_cadres"),
        Column::bool("compliant"),
    ],
};

const TABLES: &[Table] = &[EMPLOYERS, QUOTA, PUBLIC_UNITS, DPF_CADRES];

department_projection!(Sasac, Sasac, views::sasac);

fn unit_year(uscc: &str, year: i32) -> [Value; 2] {
    [Value::from(uscc), Value::from(year)]
}

fn apply(rows: &mut Rows<'_>, view: &SasacView) -> Result<(), ProjectionError> {
    match view {
        SasacView::Employer(v) => rows.set(
            &EMPLOYERS,
            &[Value::from(v.uscc.as_str())],
            &[
                ("name", Value::from(v.name.as_str())),
                ("org_type", Value::from(v.org_type.as_str())),
                ("level", Value::from(v.level.as_str())),
                ("region", Value::from(v.region.as_str())),
                (
                    "is_soe",
                    Value::from(v.org_type == "state_owned_enterprise"),
                ),
            ],
        ),
        SasacView::Establishment(v) => rows.set(
            &PUBLIC_UNITS,
            &unit_year(&v.uscc, v.year),
            &[("establishment", Value::from(v.approved_establishment))],
        ),
        SasacView::Quota(v) => {
            let key = unit_year(&v.uscc, v.year);
            let disclosed = rows.flag(&QUOTA, &key, "disclosed")?;
            rows.set(
                &QUOTA,
                &key,
                &[
                    ("staff", Value::from(v.staff)),
                    ("counted_disabled", Value::from(v.counted_disabled)),
                    (
                        "required_disabled_milli",
                        Value::from(v.required_disabled_milli),
                    ),
                    ("meets_quota", Value::from(v.meets_quota)),
                    ("disclosed", Value::from(disclosed)),
                ],
            )
        }
        SasacView::Obligation(v) => rows.set(
            &PUBLIC_UNITS,
            &unit_year(&v.uscc, v.year),
            &[
                ("level", Value::from(v.level.as_str())),
                ("org_type", Value::from(v.org_type.as_str())),
                ("establishment", Value::from(v.establishment)),
                ("rule_applies", Value::from(v.rule_applies)),
                ("obligated", Value::from(v.obligated_to_hire_one)),
                ("deadline", Value::from(v.deadline)),
                ("rule", Value::from(v.rule.as_str())),
            ],
        ),
        SasacView::Disclosure(v) => rows.set(
            &QUOTA,
            &unit_year(&v.uscc, v.year),
            &[
                ("disclosed", Value::from(true)),
                ("disclosed_disabled", Value::from(v.disabled_count)),
            ],
        ),
        SasacView::DpfCadres(v) => rows.set(
            &DPF_CADRES,
            &[Value::from(v.dpf_org.as_str()), Value::from(v.year)],
            &[
                ("region", Value::from(v.region.as_str())),
                ("total_cadres", Value::from(v.total_cadres)),
                ("disabled_cadres", Value::from(v.disabled_cadres)),
                ("compliant", Value::from(v.compliant)),
            ],
        ),
    }
}
