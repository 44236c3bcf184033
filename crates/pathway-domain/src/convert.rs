//! Small conversions between wire types and domain values.

use chrono::{Datelike, NaiveDate};

use crate::{Rejection, pb};

/// A calendar date on the wire.
pub fn date(d: NaiveDate) -> Option<pb::Date> {
    Some(pb::Date {
        year: d.year(),
        month: d.month(),
        day: d.day(),
    })
}

/// A wire date back as a calendar date; `None` if absent or impossible.
pub fn naive(d: Option<&pb::Date>) -> Option<NaiveDate> {
    d.and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month, d.day))
}

/// A wire date that a command requires, or a rejection naming the field.
pub fn require_date(field: &'static str, d: Option<&pb::Date>) -> Result<NaiveDate, Rejection> {
    match d {
        None => Err(Rejection::new(field, "is missing", "required field")),
        Some(w) => NaiveDate::from_ymd_opt(w.year, w.month, w.day).ok_or_else(|| {
            Rejection::new(
                field,
                format!(
                    "{:04}-{:02}-{:02} is not a calendar date",
                    w.year, w.month, w.day
                ),
                "ISO 8601",
            )
        }),
    }
}

/// A personal text field in the clear (sealed later by the engine).
pub fn personal_text(s: impl Into<String>) -> Option<pb::Personal> {
    Some(pb::Personal {
        value: Some(pb::personal::Value::Text(s.into())),
    })
}

/// A personal integer field in the clear (sealed later by the engine).
pub fn personal_int(i: i64) -> Option<pb::Personal> {
    Some(pb::Personal {
        value: Some(pb::personal::Value::Integer(i)),
    })
}

/// The clear integer of a personal field; `None` if absent, sealed or erased.
pub fn clear_int(p: Option<&pb::Personal>) -> Option<i64> {
    match p.and_then(|p| p.value.as_ref()) {
        Some(pb::personal::Value::Integer(i)) => Some(*i),
        _ => None,
    }
}

/// The clear text of a personal field; `None` if absent, sealed or erased.
pub fn clear_text(p: Option<&pb::Personal>) -> Option<&str> {
    match p.and_then(|p| p.value.as_ref()) {
        Some(pb::personal::Value::Text(s)) => Some(s),
        _ => None,
    }
}
