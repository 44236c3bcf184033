//! `pathway import FILE`: commands as JSON lines, each applied on its own
//! through the command engine.
//!
//! One line is one command in an envelope (the schema and an example of every
//! command are in `docs/commands.md`):
//!
//! ```json
//! {"command_id": "…", "department": "dpf", "region": "230100", "actor": "…",
//!  "at": "2023-05-01T10:00:00+08:00", "command": {"aggregate": "person", "type": "register_person", …}}
//! ```
//!
//! `command.aggregate` picks the command enum, `command.type` the command; the
//! rest of `command` is that command's own fields. The stream is derived from
//! the command when the command names it; otherwise the envelope's `stream`
//! says it. A person's registration goes through
//! [`Engine::register_person`], so an ID number is registered once.
//!
//! Lines are applied in file order, one at a time (a later line may depend on
//! an earlier one). A line that is malformed, too long or rejected is reported
//! on stderr with its line number and skipped; the import goes on. Because
//! commands are idempotent by command id, importing the same file again
//! appends nothing and accepts every line that was accepted before. A failure
//! of the log itself stops the import.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Read as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use pathway_engine::{
    Engine, EngineError,
    json::{Parsed, apply, parse},
};
use pathway_store::EventStore;

use crate::store::{AnyStore, StoreArgs};

/// Longest line accepted, in bytes (without the line break).
pub(crate) const LINE_BYTES_MAX: usize = 1024 * 1024;
/// A progress line on stderr after this many lines.
pub(crate) const PROGRESS_EVERY_LINES: u64 = 10_000;
/// Read buffer of the input, in bytes.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// `pathway import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// JSON-lines file of commands (`-` reads standard input). The format is
    /// described in docs/commands.md.
    file: PathBuf,
    /// Parse every line and name its command and stream, without applying any.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// What reading one line found.
enum LineRead {
    /// A line (without its line break) is in the buffer.
    Line,
    /// The line was longer than [`LINE_BYTES_MAX`]; it was skipped.
    TooLong,
    /// End of input.
    End,
}

/// Reads one line of at most [`LINE_BYTES_MAX`] bytes into `buf`, never
/// holding more than that in memory.
fn read_line(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let n = input
        .take(LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(LineRead::Line);
    }
    if buf.len() <= LINE_BYTES_MAX {
        // The last line, without a line break.
        return Ok(LineRead::Line);
    }
    buf.clear();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                break;
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
    Ok(LineRead::TooLong)
}

/// Lines accepted and rejected so far.
#[derive(Debug, Default)]
struct Tally {
    lines: u64,
    accepted: u64,
    rejected: u64,
}

pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    // Reading blocks the thread that drives this future, not the runtime's
    // workers, where the log does its work.
    let mut input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, io::stdin()))
    } else {
        let file =
            File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
    };
    let tally = if args.dry_run {
        check(&mut *input).await?
    } else {
        let store = args.store.open().await?;
        let keyring = args.store.keyring(&store).await?;
        match store {
            AnyStore::Embedded(s) => import(&engine(s, keyring), &mut *input).await?,
            AnyStore::Postgres(s) => import(&engine(s, keyring), &mut *input).await?,
        }
    };
    if args.dry_run {
        println!(
            "{} valid, {} invalid (dry run, nothing applied)",
            tally.accepted, tally.rejected
        );
    } else {
        println!("{} accepted, {} rejected", tally.accepted, tally.rejected);
    }
    Ok(if tally.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The engine an import runs through: it seals personal fields, and it
/// sends a line's command again while the log is out of reach, so a
/// database restart does not end a long import.
fn engine<S: EventStore + Clone>(store: S, keyring: pathway_engine::Keyring) -> Engine<S> {
    Engine::new(store, keyring).resending_on_outage()
}

/// Applies every line of `input` through `engine`.
async fn import<S: EventStore + Clone>(
    engine: &Engine<S>,
    input: &mut dyn BufRead,
) -> anyhow::Result<Tally> {
    each_line(input, async |number, parsed: Parsed| {
        let id = parsed.envelope.command_id;
        match apply(engine, &parsed).await {
            Ok(_) => Ok(true),
            Err(
                e @ (EngineError::Rejected(_)
                | EngineError::CommandIdReused { .. }
                | EngineError::Conflict { .. }),
            ) => {
                eprintln!("line {number}: command {id}: {e}");
                Ok(false)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "line {number}: command {id} on stream {}",
                parsed.stream
            ))),
        }
    })
    .await
}

/// Parses every line of `input` and prints its command and stream.
async fn check(input: &mut dyn BufRead) -> anyhow::Result<Tally> {
    each_line(input, async |number, parsed: Parsed| {
        println!(
            "line {number}: {} on {} (command {})",
            parsed.name, parsed.stream, parsed.envelope.command_id
        );
        Ok(true)
    })
    .await
}

/// Reads `input` line by line, reports unusable lines and progress on
/// stderr, and hands each parsed line to `handle` (true when accepted).
async fn each_line(
    input: &mut dyn BufRead,
    mut handle: impl AsyncFnMut(u64, Parsed) -> anyhow::Result<bool>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        let read = read_line(input, &mut buf).context("reading the input")?;
        number += 1;
        let accepted = match read {
            LineRead::End => break,
            LineRead::TooLong => {
                eprintln!("line {number}: longer than {LINE_BYTES_MAX} bytes, skipped");
                false
            }
            LineRead::Line => match std::str::from_utf8(&buf) {
                Err(e) => {
                    eprintln!("line {number}: malformed: not UTF-8: {e}");
                    false
                }
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match parse(text.trim_start_matches('\u{feff}')) {
                    Ok(parsed) => handle(number, parsed).await?,
                    Err(e) => {
                        eprintln!("line {number}: malformed: {e}");
                        false
                    }
                },
            },
        };
        tally.lines += 1;
        if accepted {
            tally.accepted += 1;
        } else {
            tally.rejected += 1;
        }
        if tally.lines % PROGRESS_EVERY_LINES == 0 {
            eprintln!(
                "{} lines: {} accepted, {} rejected",
                tally.lines, tally.accepted, tally.rejected
            );
        }
    }
    Ok(tally)
}
