//! Money, dates, free text and age.

use chrono::{Datelike, NaiveDate};

use crate::Rejection;

/// Largest amount of money accepted, in fen (10^12 fen = 10 billion yuan).
pub const MONEY_FEN_MAX: i64 = 1_000_000_000_000;
/// Earliest date accepted by [`date_in_range`].
const DATE_MIN: NaiveDate = ymd(1900, 1, 1);
/// Latest date accepted by [`date_in_range`].
const DATE_MAX: NaiveDate = ymd(2100, 12, 31);

const fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(d) => d,
        None => panic!("not a calendar date"),
    }
}

/// Validate an amount of money in integer fen: `0..=MONEY_FEN_MAX`.
pub fn money_fen(field: &'static str, fen: i64) -> Result<i64, Rejection> {
    if fen < 0 {
        return Err(Rejection::new(
            field,
            format!("{fen} fen is negative"),
            "money in fen",
        ));
    }
    if fen > MONEY_FEN_MAX {
        return Err(Rejection::new(
            field,
            format!("{fen} fen is above the maximum {MONEY_FEN_MAX} fen"),
            "money in fen",
        ));
    }
    Ok(fen)
}

/// Validate a business date: within 1900-01-01..=2100-12-31. Whether it falls
/// in a plan year is a policy question, checked by the deciders.
pub fn date_in_range(field: &'static str, d: NaiveDate) -> Result<NaiveDate, Rejection> {
    if (DATE_MIN..=DATE_MAX).contains(&d) {
        Ok(d)
    } else {
        Err(Rejection::new(
            field,
            format!("{d} is outside {DATE_MIN}..={DATE_MAX}"),
            "date range",
        ))
    }
}

/// Validate free text: trimmed of surrounding whitespace, non-empty, at most
/// `max_chars` characters (Unicode scalar values), no control characters.
/// Returns the trimmed text.
pub fn text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, Rejection> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Rejection::new(field, "is empty", "text"));
    }
    let chars = trimmed.chars().count();
    if chars > max_chars {
        return Err(Rejection::new(
            field,
            format!("has {chars} characters, more than {max_chars}"),
            "text",
        ));
    }
    if let Some(c) = trimmed.chars().find(|c| c.is_control()) {
        return Err(Rejection::new(
            field,
            format!("contains the control character U+{:04X}", u32::from(c)),
            "text",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Completed years of age on `on` for someone born on `birth`; 0 before birth.
/// Someone born on 29 February completes a year on 1 March in common years.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    if on <= birth {
        return 0;
    }
    let years = on.year() - birth.year();
    let before_birthday = (on.month(), on.day()) < (birth.month(), birth.day());
    let completed = if before_birthday { years - 1 } else { years };
    u32::try_from(completed).unwrap_or(0)
}
