//! The saga crate's one integration-test binary.

mod decide;
mod flow;
mod pg;
mod sim;
mod support;
