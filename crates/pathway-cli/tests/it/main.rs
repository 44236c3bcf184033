//! The `pathway` binary as a user runs it.

mod chaos;
mod cli;
mod deploy;
mod erase;
mod hostile;
mod import;
mod walkthrough;
