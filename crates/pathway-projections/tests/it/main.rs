//! Read models end to end.

mod runtime;
mod models;
mod views;
mod e2e;
