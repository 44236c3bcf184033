//! The console's one integration-test binary: pages rendered over a seeded
//! province (the simulator through the engine, embedded store in a temporary
//! directory), checked against the read models and the policy; and the
//! browser tests (playwright-core driving Debian's chromium, axe-core).

mod browser;
mod helpers;
mod pages;
