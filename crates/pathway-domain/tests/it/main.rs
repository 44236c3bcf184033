//! Integration tests of the pure domain: data-driven given/when/then cases,
//! one module per aggregate, plus validators, policy and property tests.

mod check;
