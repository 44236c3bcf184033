//! Tests of the wire format: golden fixtures pin the bytes of every event.

mod fixtures;
mod published;
mod sample;
