//! Unified social credit codes of employers (GB 32100).

use crate::Rejection;

/// Rule cited by credit code rejections.
const RULE: &str = "GB 32100";
/// Characters in a credit code.
const CODE_CHARS: usize = 18;
/// The 31 characters of GB 32100, in value order (no I, O, S, V, Z).
const ALPHABET_TEXT: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// [`ALPHABET_TEXT`] as bytes: the character of each value 0..=30.
const ALPHABET: &[u8] = ALPHABET_TEXT.as_bytes();
/// Weights of positions 1–17 (3^(i−1) mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A valid unified social credit code, upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditCode(String);

impl CreditCode {
    /// The 18 characters, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validate a unified social credit code (GB 32100): 18 characters from
/// `0123456789ABCDEFGHJKLMNPQRTUWXY` (lower case accepted and normalised to
/// upper case) whose last is the MOD 31 check character of the first 17.
/// Surrounding whitespace is ignored.
pub fn credit_code(field: &'static str, raw: &str) -> Result<CreditCode, Rejection> {
    let code = raw.trim().to_ascii_uppercase();
    let length = code.chars().count();
    if length != CODE_CHARS {
        return Err(Rejection::new(
            field,
            format!("{code} has {length} characters, expected {CODE_CHARS}"),
            RULE,
        ));
    }
    if let Some((i, c)) = code
        .chars()
        .enumerate()
        .find(|(_, c)| value_of(*c).is_none())
    {
        return Err(Rejection::new(
            field,
            format!(
                "character {} of {code} is {c:?}, not one of {ALPHABET_TEXT}",
                i + 1
            ),
            RULE,
        ));
    }
    // All 18 characters are in the (ASCII) alphabet from here on.
    let found = char::from(code.as_bytes()[CODE_CHARS - 1]);
    let expected = check_char(&code[..CODE_CHARS - 1]);
    if found != expected {
        return Err(Rejection::new(
            field,
            format!("check character of {code} is {found}, expected {expected}"),
            RULE,
        ));
    }
    Ok(CreditCode(code))
}

/// Build a credit code from its first 17 characters (any case) by appending
/// the check character, for tests and the simulator.
///
/// # Panics
/// If `first17` is not 17 characters of the GB 32100 alphabet: a defect in the caller.
pub fn make_credit_code(first17: &str) -> String {
    let first17 = first17.to_ascii_uppercase();
    assert!(
        first17.len() == CODE_CHARS - 1 && first17.chars().all(|c| value_of(c).is_some()),
        "{first17:?} is not 17 characters of {ALPHABET_TEXT}"
    );
    let check = check_char(&first17);
    format!("{first17}{check}")
}

/// The value 0..=30 of an alphabet character.
fn value_of(c: char) -> Option<u32> {
    let byte = u8::try_from(c).ok()?;
    let index = ALPHABET.iter().position(|&a| a == byte)?;
    u32::try_from(index).ok()
}

/// The check character of 17 alphabet characters.
fn check_char(first17: &str) -> char {
    let sum: u32 = first17
        .chars()
        .zip(WEIGHTS)
        .map(|(c, w)| value_of(c).unwrap_or(0) * w)
        .sum();
    let check = (31 - sum % 31) % 31;
    char::from(ALPHABET[check as usize])
}
