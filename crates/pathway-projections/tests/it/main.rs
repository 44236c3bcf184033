//! Read models end to end.

mod runtime;
mod models;
mod views;
