//! The saga crate's one integration-test binary.

mod decide;
mod flow;
mod mem;
mod pg;
mod sim;
mod support;
