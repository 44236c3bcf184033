//! The saga crate's one integration-test binary.

mod city_report;
mod decide;
mod flow;
mod ledger;
mod mem;
mod pg;
mod shutdown;
mod sim;
mod support;
