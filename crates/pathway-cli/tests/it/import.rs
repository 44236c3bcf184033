//! `pathway import`: the documented examples cover every command and import
//! cleanly; a file with good, rejected and malformed lines is applied line by
//! line and reported; importing it again acts on nothing twice.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use pathway_domain::{
    employer::{DpfOrganCommand, EmployerCommand},
    governance::{CityReportCommand, EvaluationCommand},
    graduates::{CohortCommand, LedgerCommand},
    household::HouseholdCommand,
    person::PersonCommand,
    training::TrainingCommand,
    welfare::{FundCommand, WelfarePostsCommand},
};
use serde::de::DeserializeOwned;

fn pathway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(args)
        .env_remove("PATHWAY_DATABASE_URL")
        .env_remove("PATHWAY_DATA_DIR")
        .output()
        .expect("run pathway")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write input");
    path
}

/// The names serde lists for an unknown `tag` value: every variant of a
/// serde-tagged enum, straight from its derive.
fn variants_in(message: &str) -> BTreeSet<String> {
    let listed = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no variant list in {message:?}"))
        .1;
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn variants<T: DeserializeOwned>() -> BTreeSet<String> {
    match serde_json::from_str::<T>(r#"{"type": "?"}"#) {
        Ok(_) => panic!("\"?\" parsed as a command"),
        Err(e) => variants_in(&e.to_string()),
    }
}

/// Every example line of docs/commands.md.
fn documented_lines() -> Vec<String> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    let text = std::fs::read_to_string(&docs).expect("read docs/commands.md");
    text.lines()
        .filter(|l| l.starts_with(r#"{"command_id""#))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_documented_examples_cover_every_command_of_every_aggregate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = documented_lines();
    let input = write(dir.path(), "docs.jsonl", &lines);
    let out = pathway(&["import", "--dry-run", input.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seen: BTreeSet<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();

    let expected: Vec<(&str, BTreeSet<String>)> = vec![
        ("person", variants::<PersonCommand>()),
        ("household", variants::<HouseholdCommand>()),
        ("employer", variants::<EmployerCommand>()),
        ("dpf_organ", variants::<DpfOrganCommand>()),
        ("welfare_posts", variants::<WelfarePostsCommand>()),
        ("fund", variants::<FundCommand>()),
        ("cohort", variants::<CohortCommand>()),
        ("ledger", variants::<LedgerCommand>()),
        ("city_report", variants::<CityReportCommand>()),
        ("evaluation", variants::<EvaluationCommand>()),
        ("training", variants::<TrainingCommand>()),
    ];
    // The aggregates the import knows, as its parser lists them.
    let probe = write(
        dir.path(),
        "probe.jsonl",
        &[r#"{"command_id": "00000000-0000-4000-8000-000000000001", "department": "dpf", "region": "230100", "actor": "a", "at": "2023-05-01T10:00:00+08:00", "command": {"aggregate": "?", "type": "?"}}"#.to_owned()],
    );
    let out = pathway(&["import", "--dry-run", probe.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let aggregates = variants_in(&text(&out.stderr));
    assert_eq!(
        aggregates,
        expected.iter().map(|(a, _)| (*a).to_owned()).collect(),
        "an aggregate of the import is missing here, or the other way round"
    );

    let mut missing = Vec::new();
    let mut total = 0;
    for (aggregate, commands) in &expected {
        assert!(!commands.is_empty(), "{aggregate}: no variants found");
        for command in commands {
            total += 1;
            let name = format!("{aggregate}.{command}");
            if !seen.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/commands.md has no example of {missing:?}"
    );
    assert!(total >= 45, "only {total} commands found");
}

#[test]
fn the_documented_examples_import_cleanly_into_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(dir.path(), "docs.jsonl", &documented_lines());
    let data = dir.path().join("store");
    let args = [
        "import",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        input.to_str().expect("utf-8 path"),
    ];
    let out = pathway(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let n = documented_lines().len();
    assert_eq!(text(&out.stdout), format!("{n} accepted, 0 rejected\n"));
}

const REGISTER: &str = r#"{"command_id": "0b2e6f8a-1c3d-4e5f-8a9b-000000000001", "department": "dpf", "region": "230100", "actor": "dpf-worker-1", "at": "2023-03-01T10:00:00+08:00", "command": {"aggregate": "person", "type": "register_person", "person_ref": "p-1", "name": "王伟", "id_number": "23010219900412015X", "id_hmac": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hukou_region": "230102", "residence_region": "230102", "registering_org": "230102-dpf"}}"#;
const VERIFY: &str = r#"{"command_id": "0b2e6f8a-1c3d-4e5f-8a9b-000000000002", "department": "dpf", "region": "230100", "actor": "dpf-worker-1", "at": "2023-05-01T10:00:00+08:00", "command": {"aggregate": "person", "type": "verify_basic_info", "person_ref": "p-1", "year": 2023, "verified_by_org": "230102-dpf", "employment_status": "unemployed", "wants_work": true, "has_work_capacity": true, "verified_on": "2023-04-01"}}"#;
// The same ID number for another person: refused by the registration check.
const REGISTER_AGAIN: &str = r#"{"command_id": "0b2e6f8a-1c3d-4e5f-8a9b-000000000003", "department": "dpf", "region": "230100", "actor": "dpf-worker-2", "at": "2023-05-02T10:00:00+08:00", "command": {"aggregate": "person", "type": "register_person", "person_ref": "p-2", "name": "王伟", "id_number": "23010219900412015X", "id_hmac": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hukou_region": "230102", "residence_region": "230102", "registering_org": "230102-dpf"}}"#;
const MALFORMED: &str = r#"{"command_id": "0b2e6f8a-1c3d-4e5f-8a9b-000000000004", "department": "#;

#[test]
fn a_file_is_applied_line_by_line_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write(
        dir.path(),
        "commands.jsonl",
        &[
            REGISTER.to_owned(),
            VERIFY.to_owned(),
            String::new(),
            REGISTER_AGAIN.to_owned(),
            MALFORMED.to_owned(),
        ],
    );
    let data = dir.path().join("store");
    let data = data.to_str().expect("utf-8 path");
    let args = [
        "import",
        "--data-dir",
        data,
        input.to_str().expect("utf-8 path"),
    ];
    let out = pathway(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2 accepted, 2 rejected\n");
    let stderr = text(&out.stderr);
    let reports: Vec<&str> = stderr.lines().collect();
    assert_eq!(reports.len(), 2, "{stderr}");
    assert_eq!(
        reports[0],
        "line 4: command 0b2e6f8a-1c3d-4e5f-8a9b-000000000003: rejected: id_number: already registered as person p-1 (one active registration per person)"
    );
    assert!(
        reports[1].starts_with("line 5: malformed: EOF while parsing"),
        "{}",
        reports[1]
    );

    // Again: the accepted lines are answered with their first results, so
    // nothing is appended twice.
    let again = pathway(&args);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(text(&again.stdout), "2 accepted, 2 rejected\n");
    let verify = pathway(&["verify", "--data-dir", data]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("head position 3\n"),
        "reservation, registration and verification only: {}",
        text(&verify.stdout)
    );
}

#[test]
fn lines_that_cannot_be_routed_are_reported_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quota = |stream: Option<&str>| {
        let stream = stream.map_or(String::new(), |s| format!(r#""stream": "{s}", "#));
        format!(
            r#"{{"command_id": "0b2e6f8a-1c3d-4e5f-8a9b-000000000010", "department": "hrss", "region": "230100", "actor": "a", "at": "2023-12-28T10:00:00+08:00", {stream}"command": {{"aggregate": "employer", "type": "report_quota", "year": 2023, "staff": 400, "disabled_employees": 5, "severe_disabled_employees": 1}}}}"#
        )
    };
    let too_long = format!(r#"{{"actor": "{}"}}"#, "x".repeat(1024 * 1024));
    let input = write(
        dir.path(),
        "routes.jsonl",
        &[
            quota(None),
            quota(Some("fund-230100-2023")),
            quota(Some("employer-91230100MA1C2D3E44")),
            too_long,
            VERIFY.replace(
                r#""department": "dpf""#,
                r#""department": "dpf", "colour": "red""#,
            ),
            // Inside the command as well as in the envelope.
            VERIFY.replace(
                r#""type": "verify_basic_info","#,
                r#""type": "verify_basic_info", "colour": "red","#,
            ),
        ],
    );
    let out = pathway(&["import", "--dry-run", input.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).lines().last(),
        Some("1 valid, 5 invalid (dry run, nothing applied)")
    );
    let stderr = text(&out.stderr);
    let reports: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        reports[..4],
        [
            r#"line 1: malformed: employer.report_quota does not name its stream: "stream": "employer-…" is required"#,
            r#"line 2: malformed: stream "fund-230100-2023" is not a stream of employer-…"#,
            "line 4: longer than 1048576 bytes, skipped",
            "line 5: malformed: unknown field `colour`, expected one of `command_id`, `correlation_id`, `causation_id`, `department`, `region`, `actor`, `at`, `stream`, `command`",
        ],
        "{stderr}"
    );
    assert!(
        reports[4].starts_with("line 6: malformed: unknown field `colour`, expected one of ")
            && reports[4].contains("`verified_by_org`"),
        "{stderr}"
    );
    assert_eq!(reports.len(), 5, "{stderr}");
}
