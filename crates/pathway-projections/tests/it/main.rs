//! Read models end to end.

mod e2e;
mod models;
mod runtime;
mod views;
