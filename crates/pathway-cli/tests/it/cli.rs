//! Every subcommand has help; validation answers and exit codes; the demo
//! runs end to end on the embedded store and verifies its chain.

use std::process::{Command, Output};

fn pathway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(args)
        .output()
        .expect("run pathway")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A demo of `persons` persons run into a temporary directory: the
/// directory (removed when dropped) and the demo's data directory in it.
fn demo_store(persons: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let data = data.to_str().expect("utf-8 path").to_owned();
    let demo = pathway(&["demo", "--persons", persons, "--data-dir", &data]);
    assert!(demo.status.success(), "{}", stdout(&demo));
    (dir, data)
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["demo"],
        vec!["validate"],
        vec!["policy"],
        vec!["events"],
        vec!["verify"],
        vec!["bench"],
        vec!["bench", "append"],
        vec!["bench", "read"],
        vec!["import"],
        vec!["query"],
        vec!["report"],
        vec!["projections"],
        vec!["projections", "run"],
        vec!["projections", "rebuild"],
        vec!["projections", "status"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = pathway(&args);
        assert!(out.status.success(), "{sub:?} --help failed");
        assert!(
            stdout(&out).contains("Usage: pathway"),
            "{sub:?}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn validate_answers_with_the_rule_and_exit_code() {
    let cases: &[(&[&str], bool, &str)] = &[
        (
            &[
                "validate",
                "id",
                "11010519491231002X",
                "--today",
                "2024-01-01",
            ],
            true,
            "born 1949-12-31, female",
        ),
        (
            &[
                "validate",
                "id",
                "130402198207290622",
                "--today",
                "2024-01-01",
            ],
            false,
            "expected 4 (GB 11643)",
        ),
        (
            &["validate", "credit-code", "91350200776049653A"],
            true,
            "valid unified social credit code",
        ),
        (
            &["validate", "region", "110105"],
            false,
            "not in Heilongjiang",
        ),
        (&["validate", "region", "230102"], true, "Harbin"),
        (
            &[
                "validate",
                "certificate",
                "11010519491231002X91",
                "--id",
                "11010519491231002X",
            ],
            false,
            "certificate_number",
        ),
        (
            &[
                "validate",
                "certificate",
                "11010519491231002X43",
                "--id",
                "11010519491231002X",
            ],
            true,
            "category 4, grade 3",
        ),
    ];
    for (args, ok, needle) in cases {
        let out = pathway(args);
        assert_eq!(out.status.success(), *ok, "{args:?}: {}", stdout(&out));
        assert!(stdout(&out).contains(needle), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn events_lists_the_contract() {
    let out = pathway(&["events"]);
    assert!(out.status.success());
    let names: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(names, pathway_proto::events::v1::EVENT_TYPES);
}

#[test]
fn demo_runs_and_verifies_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    let out = pathway(&[
        "demo",
        "--persons",
        "120",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Chain verified"), "{text}");
    assert!(
        text.contains("progress toward the target of 33000"),
        "{text}"
    );
    // The dashboards count rows in the store; the counts are those of the
    // rows a query returns.
    let persons = pathway(&[
        "query",
        "dpf",
        "persons",
        "--format",
        "json",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&persons.stdout).expect("JSON");
    let rows = json["tables"]["persons"].as_array().expect("persons rows");
    let employed = rows.iter().filter(|r| r["employed"] == true).count();
    assert!(
        employed > 0 && employed < rows.len(),
        "{employed} of {}",
        rows.len()
    );
    assert!(
        text.contains(&format!(
            "registered persons {}, employed now {employed},",
            rows.len()
        )),
        "{text}"
    );
    // The kept store verifies again through the verify command.
    let verify = pathway(&["verify", "--data-dir", data.to_str().expect("utf-8 path")]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("chain ok"));
}

#[test]
fn bad_flags_are_clear_errors() {
    let out = pathway(&["demo", "--persons", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--persons must be at least 1"));
    let out = pathway(&["validate", "certificate", "12345"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--id is required"));
}

#[test]
fn read_models_can_be_queried_reported_rebuilt_and_watched() {
    let (_dir, data) = demo_store("150");
    let data = data.as_str();

    // The committee's small cells are suppressed; exact counts never leak.
    let out = pathway(&[
        "query",
        "committee",
        "new_employment",
        "--format",
        "json",
        "--data-dir",
        data,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("query prints JSON");
    let rows = json["tables"]["new_employment"].as_array().expect("rows");
    assert!(!rows.is_empty());
    for row in rows {
        match &row["persons"] {
            serde_json::Value::Number(n) => {
                let n = n.as_i64().expect("integer");
                assert!(n == 0 || n >= 5, "small cell shown: {row}");
            }
            serde_json::Value::String(s) => assert_eq!(s, "<5"),
            other => panic!("unexpected cell {other}"),
        }
    }

    // A city's rows only.
    let out = pathway(&[
        "query",
        "dpf",
        "four_ones",
        "--city",
        "230100",
        "--data-dir",
        data,
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .skip(3)
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with("230100")),
        "{text}"
    );

    let out = pathway(&["report", "--year", "2023", "--data-dir", data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("Annual monitoring report 2023"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("23"))
            .count(),
        13,
        "{text}"
    );

    let out = pathway(&[
        "report",
        "--evaluation",
        "2024",
        "--format",
        "json",
        "--data-dir",
        data,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evaluation: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the evaluation prints JSON");
    assert!(evaluation.is_object(), "{evaluation}");

    let out = pathway(&["report", "--year", "2021", "--data-dir", data]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a plan year"));

    let out = pathway(&["projections", "rebuild", "dpf", "--data-dir", data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("dpf: rebuilt to position"));
    // Progress on stderr (not a terminal here: a line per tenth, and the
    // last), ending with the whole log read.
    let progress: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("  rebuilding: "))
        .map(str::to_owned)
        .collect();
    let head = stdout(&out)
        .split("dpf: rebuilt to position ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("checkpoint")
        .to_owned();
    assert_eq!(
        progress.last().map(String::as_str),
        Some(format!("{head}/{head} events (100%)").as_str()),
        "{progress:?}"
    );

    let out = pathway(&["projections", "status", "--data-dir", data]);
    let text = stdout(&out);
    assert!(out.status.success());
    for model in [
        "dpf",
        "hrss",
        "civil_affairs",
        "education",
        "sasac",
        "committee",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(model))
            .unwrap_or_else(|| panic!("{text}"));
        let behind: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(behind[3], "0", "{model} is behind: {line}");
    }

    // From empty models, `projections run` brings all six to the head in
    // one pass over the log (read, decoded and opened once for all).
    std::fs::remove_dir_all(std::path::Path::new(data).join("models")).expect("drop the models");
    let out = pathway(&["projections", "run", "--data-dir", data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let caught_up: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let every_model: Vec<String> = pathway_projections::models::all()
        .iter()
        .map(|model| format!("{}: caught up to position {head}", model.name()))
        .collect();
    assert_eq!(caught_up, every_model);
    let passes = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| *l == format!("  catching up: {head}/{head} events (100%)"))
        .count();
    assert_eq!(passes, 1, "{}", String::from_utf8_lossy(&out.stderr));

    let out = pathway(&["query", "nosuch", "--data-dir", data]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown read model"));
}

#[test]
fn a_reader_closing_the_pipe_ends_the_command_quietly() {
    use std::io::Read as _;
    let (_dir, data) = demo_store("700");
    let data = data.as_str();
    // Far more output than a pipe buffers, so writing must hit the closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(["query", "dpf", "persons", "--data-dir", data])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pathway");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn civil_affairs_sees_phase_outs_ending_within_thirty_days() {
    let (_dir, data) = demo_store("400");
    let data = data.as_str();
    let calendar = |today: &str| -> serde_json::Value {
        let out = pathway(&[
            "phase-outs",
            "--today",
            today,
            "--format",
            "json",
            "--data-dir",
            data,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let all = calendar("2024-01-01");
    let lines = all["phase_outs"].as_array().expect("phase-outs").clone();
    assert!(
        !lines.is_empty(),
        "the simulated province has active phase-outs: {all}"
    );
    // Ten days before the first planned end, exactly the phase-outs ending
    // within thirty days are flagged, with their days left.
    let first_end: chrono::NaiveDate = lines[0]["planned_end"]
        .as_str()
        .expect("date")
        .parse()
        .expect("ISO date");
    let today = first_end - chrono::Days::new(10);
    let near = calendar(&today.to_string());
    for line in near["phase_outs"].as_array().expect("phase-outs") {
        let end: chrono::NaiveDate = line["planned_end"]
            .as_str()
            .expect("date")
            .parse()
            .expect("date");
        let days = (end - today).num_days();
        assert_eq!(line["days_left"], serde_json::json!(days), "{line}");
        assert_eq!(
            line["ending_soon"],
            serde_json::json!((0..=30).contains(&days)),
            "{line}"
        );
    }
    assert_eq!(near["phase_outs"][0]["days_left"], serde_json::json!(10));
    assert_eq!(
        near["phase_outs"][0]["ending_soon"],
        serde_json::json!(true)
    );
}

#[test]
fn saga_run_completes_phase_outs_whose_deadline_has_passed() {
    let (_dir, data) = demo_store("400");
    let data = data.as_str();
    let active = || -> usize {
        let out = pathway(&["phase-outs", "--format", "json", "--data-dir", data]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        json["phase_outs"].as_array().expect("phase-outs").len()
    };
    // The simulated phase-outs started in 2024 end in 2025: past today.
    let before = active();
    assert!(before > 0, "the simulation leaves phase-outs running");
    let mut workflows = Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args([
            "saga",
            "run",
            "--sweep-interval-ms",
            "100",
            "--data-dir",
            data,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the workflows");
    // Wait for the condition, bounded: every deadline fires, once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut left = before;
    while left > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        left = active();
    }
    workflows.kill().expect("stop the workflows");
    workflows.wait().expect("reap");
    assert_eq!(left, 0, "phase-outs still active after their deadline");
    let out = pathway(&[
        "query",
        "civil_affairs",
        "households",
        "--format",
        "json",
        "--data-dir",
        data,
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let phased_out = json["tables"]["households"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|h| h["benefit"] == serde_json::json!("phased_out"))
        .count();
    assert!(
        phased_out >= before,
        "{phased_out} households phased out, {before} were due"
    );
}

/// A demo on PostgreSQL leaves its log behind, so its master key must stay
/// too, where every other command looks for it by default
/// (`pathway-data/master.key` in the working directory): the next command
/// opens the sealed fields instead of failing on an unknown master key.
#[test]
fn a_postgres_demo_keeps_its_master_key_for_the_next_command() {
    let db = pathway_testkit::TestDb::create();
    let cwd = tempfile::tempdir().expect("working directory");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pathway"))
            .args(args)
            .current_dir(cwd.path())
            .env_remove("PATHWAY_DATA_DIR")
            .env_remove("PATHWAY_MASTER_KEY")
            .env_remove("PATHWAY_MASTER_KEY_FILE")
            .env_remove("PATHWAY_DATABASE_URL")
            .output()
            .expect("run pathway")
    };
    let demo = run(&["demo", "--persons", "100", "--database-url", db.url()]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(cwd.path().join("pathway-data/master.key").is_file());

    let rebuilt = run(&["projections", "rebuild", "dpf", "--database-url", db.url()]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    // The certificates' grades were opened: sealed, they would read as NULL.
    let out = run(&[
        "query",
        "dpf",
        "persons",
        "--format",
        "json",
        "--database-url",
        db.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let persons = json["tables"]["persons"].as_array().expect("rows");
    assert_eq!(persons.len(), 100);
    assert!(
        persons.iter().all(|p| p["certificate_grade"].is_i64()),
        "{persons:?}"
    );
}

/// `projections run --follow` keeps every model at the head while another
/// process appends, and stops at its checkpoints on SIGTERM.
#[test]
fn projections_follow_the_log_until_sigterm() {
    use std::io::BufRead as _;

    let (dir, data) = demo_store("30");
    let data = data.as_str();

    let mut follower = Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(["projections", "run", "--follow", "--data-dir", data])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the follower");
    let stderr = std::io::BufReader::new(follower.stderr.take().expect("stderr"));
    let mut said = String::new();
    for line in stderr.lines() {
        let line = line.expect("follower output");
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("following the log") {
            break;
        }
    }
    assert!(said.contains("following the log"), "{said}");

    let person = super::hostile::example("person", "register_person");
    let person_ref = person["command"]["person_ref"]
        .as_str()
        .expect("person_ref")
        .to_owned();
    let file = dir.path().join("more.jsonl");
    std::fs::write(&file, format!("{person}\n")).expect("write commands");
    let out = pathway(&["import", file.to_str().expect("path"), "--data-dir", data]);
    assert!(out.status.success(), "{}", stdout(&out));

    // The follower, not this test, brings the models to the new head.
    let started = std::time::Instant::now();
    let lags = loop {
        let out = pathway(&["projections", "status", "--data-dir", data]);
        assert!(out.status.success(), "{}", stdout(&out));
        let lags: Vec<(String, u64, u64)> = stdout(&out)
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].to_owned(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                )
            })
            .collect();
        if lags.iter().all(|(_, checkpoint, head)| checkpoint == head) {
            break lags;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the follower did not reach the head: {lags:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(lags.len(), 6, "{lags:?}");

    let _ = Command::new("kill")
        .args(["-TERM", &follower.id().to_string()])
        .status();
    let status = follower.wait().expect("wait for the follower");
    assert!(status.success(), "the follower stopped with {status}");

    let out = pathway(&[
        "query",
        "dpf",
        "persons",
        "--format",
        "json",
        "--data-dir",
        data,
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&person_ref),
        "the imported person is in the DPF model"
    );
}
