//! Validation of the values commands carry: identifiers (resident ID,
//! disability certificate, unified social credit code), Heilongjiang's
//! divisions, money, dates and free text.
//!
//! Every validator takes the command field's name and returns the parsed,
//! normalised value or a [`Rejection`](crate::Rejection) naming the field, the
//! offending value and the standard. Rejections about a resident ID name the
//! part at fault (a character, the birth date, the check digit), never the
//! whole number: it is personal data and rejections end up in logs.
//!
//! The `make_*` functions build valid identifiers for tests and the simulator.

mod credit_code;
mod identity;
mod region;
mod scalar;

pub use credit_code::{CreditCode, credit_code, make_credit_code};
pub use identity::{Certificate, ResidentId, certificate_number, make_resident_id, resident_id};
pub use region::{CITIES, City, city, city_code, region};
pub use scalar::{MONEY_FEN_MAX, age_on, date_in_range, money_fen, text};
