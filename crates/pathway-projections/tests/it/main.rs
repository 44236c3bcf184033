//! Read models end to end.
