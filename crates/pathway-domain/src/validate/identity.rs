//! Resident ID numbers (GB 11643) and disability certificate numbers (ID +
//! category + grade).

use chrono::{Datelike, NaiveDate};

use crate::{Rejection, pb};

/// Rule cited by resident ID rejections.
const RULE_ID: &str = "GB 11643";
/// Rule cited by certificate number format rejections.
const RULE_CERTIFICATE: &str = "disability certificate number = ID + category + grade";
/// Rule cited by certificate category and grade rejections.
const RULE_CLASSIFICATION: &str = "GB/T 26341";

/// Characters in a resident ID number.
const ID_CHARS: usize = 18;
/// Characters in a first-issue disability certificate number.
const CERTIFICATE_CHARS: usize = 20;
/// MOD 11-2 weights of positions 1–17 (2^(17−i) mod 11).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder 0..=10.
const ID_CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
/// Province-level prefixes of GB/T 2260 (including Taiwan, Hong Kong and
/// Macao, which GB 11643 numbers may carry).
const PROVINCE_PREFIXES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];
/// Earliest birth date accepted.
const BIRTH_MIN: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => panic!("1900-01-01 is a date"),
};
/// Most severe grade counted as severe (grades 1 and 2).
const SEVERE_GRADE_MAX: u8 = 2;

/// A valid resident ID number (GB 11643), normalised to an upper-case `X`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentId {
    number: String,
    birth_date: NaiveDate,
}

impl ResidentId {
    /// The 18 characters, check character upper case.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The birth date encoded in characters 7–14.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// The sex encoded by the parity of the sequence's last digit (character
    /// 17): odd is male, even is female.
    pub fn sex(&self) -> pb::Sex {
        let digit = self.number.as_bytes()[16] - b'0';
        if digit % 2 == 1 {
            pb::Sex::Male
        } else {
            pb::Sex::Female
        }
    }

    /// The address code (GB/T 2260 county code at registration), characters 1–6.
    pub fn address_code(&self) -> &str {
        &self.number[..6]
    }
}

/// Validate a resident ID number (GB 11643): 18 characters, 17 digits and a
/// check character (a digit or `X`, lower-case `x` accepted), the ISO 7064
/// MOD 11-2 check, an address code with a GB/T 2260 province prefix (the
/// county part is not checked: codes of abolished counties stay on IDs) and
/// a calendar birth date in 1900-01-01..=`today`. Surrounding whitespace is
/// ignored.
pub fn resident_id(
    field: &'static str,
    raw: &str,
    today: NaiveDate,
) -> Result<ResidentId, Rejection> {
    let reject = |problem: String| Rejection::new(field, problem, RULE_ID);
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if length != ID_CHARS {
        return Err(reject(format!(
            "has {length} characters, expected {ID_CHARS}"
        )));
    }
    if let Some(problem) = bad_id_character(trimmed) {
        return Err(reject(problem));
    }
    let number = trimmed.to_ascii_uppercase();
    // All 18 characters are ASCII from here on.
    let found = char::from(number.as_bytes()[ID_CHARS - 1]);
    let expected = id_check_char(&number[..ID_CHARS - 1]);
    if found != expected {
        return Err(reject(format!(
            "check digit is {found}, expected {expected}"
        )));
    }
    let province = &number[..2];
    if !PROVINCE_PREFIXES.contains(&province) {
        let address = &number[..6];
        return Err(reject(format!(
            "address code {address} is not in a province (prefix {province})"
        )));
    }
    let digits = &number[6..14];
    let birth_date = NaiveDate::parse_from_str(digits, "%Y%m%d")
        .map_err(|_| reject(format!("birth date {digits} is not a calendar date")))?;
    if birth_date < BIRTH_MIN {
        return Err(reject(format!(
            "birth date {birth_date} is before {BIRTH_MIN}"
        )));
    }
    if birth_date > today {
        return Err(reject(format!(
            "birth date {birth_date} is after today {today}"
        )));
    }
    Ok(ResidentId { number, birth_date })
}

/// The first character of `s` that does not fit an ID number (17 digits, then
/// a digit or `X`/`x`, then digits), described for a rejection.
fn bad_id_character(s: &str) -> Option<String> {
    s.chars().enumerate().find_map(|(i, c)| {
        let check_position = i == ID_CHARS - 1;
        let allowed = c.is_ascii_digit() || (check_position && (c == 'X' || c == 'x'));
        let expected = if check_position {
            "a digit or X"
        } else {
            "a digit"
        };
        (!allowed).then(|| format!("character {} is {c:?}, expected {expected}", i + 1))
    })
}

/// The MOD 11-2 check character of 17 ASCII digits.
fn id_check_char(first17: &str) -> char {
    let sum: u32 = first17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    ID_CHECK_CHARS[(sum % 11) as usize]
}

/// Build a resident ID number with a correct check character, for tests and
/// the simulator. The number is not validated otherwise (an old or a future
/// birth date is written as given).
///
/// # Panics
/// If `address_code` is not 6 ASCII digits, `sequence` is above 999 or the
/// birth year does not have 4 digits: a defect in the caller.
pub fn make_resident_id(address_code: &str, birth: NaiveDate, sequence: u16) -> String {
    assert!(
        address_code.len() == 6 && address_code.bytes().all(|b| b.is_ascii_digit()),
        "address code {address_code:?} is not 6 digits"
    );
    assert!(sequence <= 999, "sequence {sequence} is above 999");
    assert!(
        (1000..=9999).contains(&birth.year()),
        "birth year {} is not 4 digits",
        birth.year()
    );
    let first17 = format!("{address_code}{}{sequence:03}", birth.format("%Y%m%d"));
    let check = id_check_char(&first17);
    format!("{first17}{check}")
}

/// A disability certificate number and what it encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// 1 visual, 2 hearing, 3 speech, 4 physical, 5 intellectual, 6 mental, 7 multiple.
    pub category: u8,
    /// 1 (most severe) to 4.
    pub grade: u8,
    /// The 20 characters, check character of the ID part upper case.
    pub number: String,
}

impl Certificate {
    /// Severe disability (grades 1–2): counted twice toward the quota.
    pub fn is_severe(&self) -> bool {
        (1..=SEVERE_GRADE_MAX).contains(&self.grade)
    }
}

/// Validate a first-issue disability certificate number: 20 characters, the
/// holder's resident ID `id` (lower-case `x` accepted), then the category
/// digit 1–7 and the grade digit 1–4. Re-issue suffixes are not accepted yet:
/// their format is unverified. Surrounding whitespace is ignored.
pub fn certificate_number(
    field: &'static str,
    raw: &str,
    id: &ResidentId,
) -> Result<Certificate, Rejection> {
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if length != CERTIFICATE_CHARS {
        return Err(Rejection::new(
            field,
            format!("has {length} characters, expected {CERTIFICATE_CHARS}"),
            RULE_CERTIFICATE,
        ));
    }
    if let Some(problem) = bad_id_character(trimmed) {
        return Err(Rejection::new(field, problem, RULE_CERTIFICATE));
    }
    let number = trimmed.to_ascii_uppercase();
    // All 20 characters are ASCII digits (or X at 18) from here on.
    let bytes = number.as_bytes();
    let category = bytes[ID_CHARS] - b'0';
    if !(1..=7).contains(&category) {
        return Err(Rejection::new(
            field,
            format!("category {category} is not one of 1–7 (visual … multiple)"),
            RULE_CLASSIFICATION,
        ));
    }
    let grade = bytes[ID_CHARS + 1] - b'0';
    if !(1..=4).contains(&grade) {
        return Err(Rejection::new(
            field,
            format!("grade {grade} is not one of 1–4 (1 most severe)"),
            RULE_CLASSIFICATION,
        ));
    }
    if number[..ID_CHARS] != *id.as_str() {
        return Err(Rejection::new(
            field,
            "first 18 characters differ from the holder's resident ID number",
            RULE_CERTIFICATE,
        ));
    }
    Ok(Certificate {
        category,
        grade,
        number,
    })
}
