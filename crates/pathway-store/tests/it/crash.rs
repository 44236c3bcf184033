//! Crash tests: a child process appends in a loop and prints every
//! acknowledged event; the test kills it with SIGKILL at a random point
//! (after a seeded random number of acknowledgements), reopens the store and
//! checks that every acknowledged event is there exactly once at its
//! position, positions are dense, the chain verifies and appends still work.
//!
//! The child is this test binary itself, re-invoked to run only a child test
//! (e.g. [`child_writer`]) with an environment variable telling it where the
//! store is. Without that variable the child test returns at once and passes,
//! so an ordinary test run is unaffected; this avoids a separate helper
//! binary that would have to be built and found.
//!
//! The helpers are generic over the backend: [`run_crash_rounds`] takes a
//! function building the child's command and one reopening the store, and
//! [`child_append_loop`] is the child's body for any [`EventStore`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pathway_store::embedded::EmbeddedStore;
use pathway_store::{EventStore, ExpectedVersion, ReadFilter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::conformance::{assert_log_sound, new_event, new_events};

/// Names the embedded store's directory for [`child_writer`].
pub(crate) const CHILD_DIR_ENV: &str = "PATHWAY_CRASH_CHILD_DIR";
/// Replays a crash test: set to the seed printed by a failing run.
pub(crate) const SEED_ENV: &str = "PATHWAY_CRASH_SEED";
/// Kill rounds per crash test.
pub(crate) const CRASH_ROUNDS: usize = 6;
/// The child is killed after 1..=this many acknowledged events.
const ACKS_BEFORE_KILL_MAX: usize = 600;
/// Concurrent appenders in the child, so kills land mid group commit.
const CHILD_WRITERS: usize = 8;
/// Events per append in the child cycle through 1..=this.
const CHILD_EVENTS_PER_APPEND_MAX: usize = 3;
const ACK_PREFIX: &str = "ack ";

/// One acknowledged event, as printed by the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ack {
    pub(crate) event_id: Uuid,
    pub(crate) position: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    // Only whole lines count: a line cut short by the kill has no newline.
    let rest = line.strip_suffix('\n')?.strip_prefix(ACK_PREFIX)?;
    let (id, position) = rest.split_once(' ')?;
    Some(Ack {
        event_id: id.parse().ok()?,
        position: position.parse().ok()?,
    })
}

/// A command re-invoking this test binary to run only the test
/// `test_path` (e.g. `crash::child_writer`), its stdout piped.
pub(crate) fn child_command(test_path: &str) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", test_path, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// The child's body: appends forever from [`CHILD_WRITERS`] tasks and prints
/// `ack <event id> <position>` for every event of every acknowledged append.
pub(crate) async fn child_append_loop<S: EventStore + Clone>(store: S) {
    let writers: Vec<_> = (0..CHILD_WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("crash-{w}-{}", Uuid::new_v4());
                let mut version = 0u64;
                for i in 0usize.. {
                    let n = i % CHILD_EVENTS_PER_APPEND_MAX + 1;
                    let events = new_events(&format!("{stream}-{i}"), n);
                    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                    let r = store
                        .append(&stream, ExpectedVersion::Exact(version), events)
                        .await
                        .expect("child append");
                    version = r.stream_version;
                    let mut out = std::io::stdout().lock();
                    for (id, position) in ids.iter().zip(r.first_position..) {
                        writeln!(out, "{ACK_PREFIX}{id} {position}").expect("write ack");
                    }
                    out.flush().expect("flush acks");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("child writer");
    }
}

/// Runs the child until it has acknowledged `acks_before_kill` events, kills
/// it, and returns every acknowledgement it printed (including those already
/// in the pipe when it died).
fn run_child_until_killed(mut command: Command, acks_before_kill: usize) -> Vec<Ack> {
    let mut child = command.spawn().expect("spawn crash child");
    let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut acks = Vec::new();
    let mut line = String::new();
    while acks.len() < acks_before_kill {
        line.clear();
        if stdout.read_line(&mut line).expect("read child stdout") == 0 {
            let status = child.wait().expect("wait for child");
            panic!(
                "crash child exited on its own ({status}) after {} acks",
                acks.len()
            );
        }
        acks.extend(parse_ack(&line));
    }
    child.kill().expect("kill crash child");
    loop {
        line.clear();
        if stdout.read_line(&mut line).expect("read child stdout") == 0 {
            break;
        }
        acks.extend(parse_ack(&line));
    }
    let status = child.wait().expect("wait for child");
    assert_eq!(
        status.signal(),
        Some(9),
        "child ended by SIGKILL, got {status}"
    );
    acks
}

/// The seed from [`SEED_ENV`], or a fresh one; printed so a failure can be replayed.
pub(crate) fn crash_seed() -> u64 {
    let seed = match std::env::var(SEED_ENV) {
        Ok(seed) => seed.parse().expect("seed is a u64"),
        Err(_) => rand::random(),
    };
    println!("crash test seed {seed} (replay with {SEED_ENV}={seed})");
    seed
}

/// Kills a child writer [`CRASH_ROUNDS`] times at seeded random points; after
/// each, reopens the store and checks every event acknowledged so far.
///
/// `make_child` builds the child's command (see [`child_command`]); `reopen`
/// opens the store in this process. The store must be dropped (closed) when
/// the returned handle is, since the next child writes to it again.
pub(crate) async fn run_crash_rounds<S, C, O>(mut make_child: C, mut reopen: O)
where
    S: EventStore + Clone,
    C: FnMut() -> Command,
    O: AsyncFnMut() -> S,
{
    let seed = crash_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut acked: HashMap<Uuid, u64> = HashMap::new();
    for round in 0..CRASH_ROUNDS {
        let acks_before_kill = rng.random_range(1..=ACKS_BEFORE_KILL_MAX);
        let command = make_child();
        let acks =
            tokio::task::spawn_blocking(move || run_child_until_killed(command, acks_before_kill))
                .await
                .expect("child round");
        assert!(acks.len() >= acks_before_kill);
        println!(
            "round {round}: killed after {} acknowledged events",
            acks.len()
        );
        for ack in acks {
            let earlier = acked.insert(ack.event_id, ack.position);
            assert_eq!(
                earlier, None,
                "seed {seed} round {round}: {ack:?} acknowledged twice"
            );
        }
        let store = reopen().await;
        check_acknowledged(&store, &acked, seed, round).await;
    }
}

/// Every acknowledged event is stored once at its acknowledged position, the
/// log is dense and verifies, and a new append lands right after the head.
pub(crate) async fn check_acknowledged<S: EventStore>(
    store: &S,
    acked: &HashMap<Uuid, u64>,
    seed: u64,
    round: usize,
) {
    let all = assert_log_sound(store).await;
    let stored: HashMap<Uuid, u64> = all.iter().map(|r| (r.event_id, r.position)).collect();
    for (id, position) in acked {
        assert_eq!(
            stored.get(id),
            Some(position),
            "seed {seed} round {round}: acknowledged event {id} lost or moved"
        );
    }
    let head = all.len() as u64;
    let r = store
        .append(
            &format!("after-crash-{round}"),
            ExpectedVersion::NoStream,
            vec![new_event("after")],
        )
        .await
        .expect("append after crash");
    assert_eq!(r.first_position, head + 1);
    let last = store
        .read_all(head + 1, 10, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        store
            .verify(head.saturating_sub(5), None)
            .await
            .unwrap()
            .first_break,
        None
    );
}

/// The embedded child: appends until killed. Runs only when re-invoked by
/// [`embedded_store_survives_sigkill`] with [`CHILD_DIR_ENV`] set; in an
/// ordinary test run it returns at once and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = EmbeddedStore::open(Path::new(&dir)).expect("child opens the store");
    child_append_loop(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().to_owned();
    let child_path = path.clone();
    run_crash_rounds(
        move || {
            let mut command = child_command("crash::child_writer");
            command.env(CHILD_DIR_ENV, &child_path);
            command
        },
        async || EmbeddedStore::open(&path).expect("reopen after crash"),
    )
    .await;
}
