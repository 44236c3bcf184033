//! The operations walkthrough (docs/operations.md, "Run two instances on
//! one machine without Docker") run for real: `tests/ops/walkthrough.sh`
//! with this build's `pathway`, a unique database on the local PostgreSQL,
//! free ports and a fresh scratch directory. The doc's block and the
//! script's marked section must be the same text, so the doc shows exactly
//! what the script runs.

use pathway_testkit::{free_ports, nats_server_binary as nats_binary};
use std::path::PathBuf;
use std::process::Command;

/// The line before the doc's block.
const DOC_MARKER: &str = "<!-- tests/ops/walkthrough.sh runs this block verbatim -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fenced block after [`DOC_MARKER`] in docs/operations.md.
fn doc_block() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/operations.md")).expect("read the doc");
    let after = doc
        .split_once(DOC_MARKER)
        .unwrap_or_else(|| panic!("docs/operations.md has no {DOC_MARKER}"))
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block after the marker");
    body.split_once("\n```\n")
        .expect("the block ends")
        .0
        .to_owned()
}

/// The lines between the script's `>>>` and `<<<` markers.
fn script_block() -> String {
    let script =
        std::fs::read_to_string(repo().join("tests/ops/walkthrough.sh")).expect("read the script");
    let after = script
        .split_once("# >>> docs/operations.md\n")
        .expect("start marker")
        .1;
    after
        .split_once("# <<< docs/operations.md\n")
        .expect("end marker")
        .0
        .trim_end_matches('\n')
        .to_owned()
}

/// Whether database `name` exists on the local PostgreSQL.
fn database_exists(name: &str) -> bool {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-tAc"])
        .arg(format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

#[test]
fn the_doc_block_is_the_script() {
    let doc = doc_block();
    let script = script_block();
    assert!(
        doc == script,
        "docs/operations.md and tests/ops/walkthrough.sh differ: copy the script's \
         block between its markers into the doc\n--- doc ---\n{doc}\n--- script ---\n{script}"
    );
}

#[test]
fn walkthrough_runs_from_nothing_to_two_instances_and_back() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let work = scratch.path().join("work");
    let db = format!("pathway_walkthrough_{}", uuid::Uuid::new_v4().simple());
    let ports = free_ports(3);
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg("tests/ops/walkthrough.sh")
        .current_dir(repo())
        .env("PATHWAY_BIN", env!("CARGO_BIN_EXE_pathway"))
        .env("NATS_SERVER_BIN", nats_binary())
        .env("DB", &db)
        .env("WORK", &work)
        .env("NATS_PORT", ports[0].to_string())
        .env("PORT_A", ports[1].to_string())
        .env("PORT_B", ports[2].to_string())
        .output()
        .expect("run tests/ops/walkthrough.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("walkthrough took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "walkthrough failed: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
    let expected = [
        format!("listening on {}", ports[0]),
        format!("check: instance on port {} ready", ports[1]),
        format!("check: instance on port {} ready", ports[2]),
        "check: command accepted by instance A".to_owned(),
        "read back through instance B".to_owned(),
        "received from NATS".to_owned(),
        "check: exactly one relay leader".to_owned(),
        "check: both instances ready".to_owned(),
        "check: stopped cleanly".to_owned(),
    ];
    let checks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("check: "))
        .collect();
    assert_eq!(checks.len(), expected.len(), "{stdout}");
    for (line, want) in checks.iter().zip(&expected) {
        assert!(line.contains(want.as_str()), "{line:?}: {want:?}\n{stdout}");
    }
    assert!(
        stdout.contains("\"events\":[\"LowIncomeStatusAsserted\"]"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("\"ready\":true").count(),
        2,
        "both /readyz: {stdout}"
    );
    assert!(!database_exists(&db), "the walkthrough drops {db}");
    assert!(!work.exists(), "the walkthrough removes {}", work.display());
}
