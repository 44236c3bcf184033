//! The store's integration tests, one binary: the backend-independent
//! conformance suite, its instantiation per backend, and crash tests.

mod conformance;
mod crash;
mod embedded;
mod postgres;
