//! `pathway erase` end to end on the embedded store: the person's sealed
//! fields read as erased in the read models and the auditors' history, the
//! log still verifies, the key is destroyed, and a rerun is harmless.

use std::process::{Command, Output};

const PERSON: &str = "3f6c9a2e-7b41-4d8e-9c15-2a7e5b8d0f14";

fn pathway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(args)
        .env_remove("PATHWAY_DATABASE_URL")
        .env_remove("PATHWAY_MASTER_KEY")
        .output()
        .expect("run pathway")
}

fn ok(args: &[&str]) -> String {
    let out = pathway(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The registration and certificate examples of docs/commands.md.
fn person_commands() -> String {
    let docs = include_str!("../../../../docs/commands.md");
    let lines: Vec<&str> = docs
        .lines()
        .filter(|l| {
            l.starts_with('{')
                && l.contains(PERSON)
                && (l.contains("\"register_person\"") || l.contains("\"record_certificate\""))
        })
        .collect();
    assert_eq!(lines.len(), 2, "the two examples are in docs/commands.md");
    lines.join("\n") + "\n"
}

fn grade(dir: &str) -> serde_json::Value {
    let out = ok(&[
        "query",
        "dpf",
        "persons",
        "--data-dir",
        dir,
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = json["tables"]["persons"].as_array().expect("persons rows");
    let row = rows
        .iter()
        .find(|r| r["person_ref"] == PERSON)
        .unwrap_or_else(|| panic!("no row of {PERSON}: {out}"));
    row["certificate_grade"].clone()
}

#[test]
fn erase_destroys_the_key_and_every_reader_shows_the_fields_erased() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8 path");
    let file = tmp.path().join("person.jsonl");
    std::fs::write(&file, person_commands()).expect("write");
    let out = ok(&["import", file.to_str().expect("path"), "--data-dir", dir]);
    assert!(out.contains("2 accepted, 0 rejected"), "{out}");
    assert_eq!(grade(dir), serde_json::json!(2));
    let history = ok(&["audit", "history", "--person", PERSON, "--data-dir", dir]);
    assert!(history.contains("[personal "), "pseudonymised: {history}");

    let out = ok(&[
        "erase",
        "--person",
        PERSON,
        "--reason",
        "the person asked",
        "--data-dir",
        dir,
    ]);
    assert!(out.contains("data key is destroyed"), "{out}");
    assert_eq!(grade(dir), serde_json::Value::Null);
    let history = ok(&["audit", "history", "--person", PERSON, "--data-dir", dir]);
    assert!(history.contains("[personal, erased]"), "{history}");
    assert!(!history.contains("王伟"), "{history}");
    let verify = ok(&["verify", "--data-dir", dir]);
    assert!(verify.contains("chain ok"), "{verify}");

    // A rebuild from the log keeps the fields erased; a rerun is harmless.
    ok(&["projections", "rebuild", "--data-dir", dir]);
    assert_eq!(grade(dir), serde_json::Value::Null);
    let out = ok(&[
        "erase",
        "--person",
        PERSON,
        "--reason",
        "the person asked",
        "--data-dir",
        dir,
    ]);
    assert!(out.contains("data key is destroyed"), "{out}");
}
