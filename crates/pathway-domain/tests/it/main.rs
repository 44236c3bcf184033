//! Integration tests of the pure domain: data-driven given/when/then cases,
//! one module per aggregate, plus validators, policy and property tests.

mod check;
mod employer;
mod governance;
mod graduates;
mod household;
mod person;
mod policy;
mod props;
mod training;
mod validators;
mod welfare;
