//! Integration tests of the pure domain: data-driven given/when/then cases,
//! one module per aggregate, plus validators, policy and property tests.

mod check;
mod policy;
mod validators;
mod employer;
mod welfare;
mod graduates;
mod governance;
mod person;
mod training;
mod household;
mod props;
