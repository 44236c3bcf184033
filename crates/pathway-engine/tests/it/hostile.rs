//! Hostile input through the one JSON form of a command (`json::parse`, then
//! `json::apply` on an embedded log): each case gets a clear error naming
//! what is wrong, nothing reaches the log (the head does not move), and the
//! engine goes on working afterwards. Also the regression tests of what the
//! fuzzers (`fuzz/`, docs/reliability.md) found in decoding and folding.

use std::path::Path;

use pathway_engine::{
    Engine, EngineError, decode, decode_envelope,
    json::{self, AnyCommand, Parsed},
};
use pathway_store::{EventStore, embedded::EmbeddedStore};
use serde_json::{Value, json};

/// Every example line of docs/commands.md, in order.
fn documented() -> Vec<Value> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    std::fs::read_to_string(docs)
        .expect("read docs/commands.md")
        .lines()
        .filter(|l| l.starts_with(r#"{"command_id""#))
        .map(|l| serde_json::from_str(l).expect("documented example is JSON"))
        .collect()
}

/// The documented example of `aggregate.type`.
fn example(aggregate: &str, kind: &str) -> Value {
    documented()
        .into_iter()
        .find(|v| v["command"]["aggregate"] == aggregate && v["command"]["type"] == kind)
        .unwrap_or_else(|| panic!("no example of {aggregate}.{kind}"))
}

fn engine() -> (tempfile::TempDir, Engine<EmbeddedStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open store");
    (dir, Engine::unsealed(store))
}

async fn head(engine: &Engine<EmbeddedStore>) -> u64 {
    engine.store().head().await.expect("head").position
}

fn parse(v: &Value) -> Parsed {
    json::parse(&v.to_string()).unwrap_or_else(|e| panic!("{v} does not parse: {e}"))
}

/// The parse error of `line`.
fn malformed(line: &str) -> String {
    match json::parse(line) {
        Ok(p) => panic!("{line:?} parsed as {}", p.name),
        Err(e) => e,
    }
}

/// Applies `v` and returns the engine's error.
async fn refused(engine: &Engine<EmbeddedStore>, v: &Value) -> EngineError {
    match json::apply(engine, &parse(v)).await {
        Ok(h) => panic!("{v} was accepted: {h:?}"),
        Err(e) => e,
    }
}

/// The engine still takes a good command after the hostile ones: a fund
/// budget (a fresh stream each time, picked by `year`).
async fn still_works(engine: &Engine<EmbeddedStore>, year: i32) {
    let before = head(engine).await;
    let mut budget = example("fund", "budget_fund");
    budget["command"]["year"] = json!(year);
    budget["command_id"] = json!(uuid::Uuid::from_u128(0xf00d_0000 + year as u128));
    let handled = json::apply(engine, &parse(&budget))
        .await
        .expect("a good command after hostile input is accepted");
    assert_eq!(handled.events.len(), 1);
    assert_eq!(head(engine).await, before + 1);
}

#[test]
fn malformed_truncated_and_oversized_json_is_refused_by_the_parser() {
    let line = example("person", "register_person").to_string();
    for (input, expected) in [
        ("", "EOF while parsing a value at line 1 column 0"),
        ("{", "EOF while parsing an object at line 1 column 1"),
        ("not json", "expected ident at line 1 column 2"),
        (
            "[1, 2, 3]",
            "invalid type: integer `1`, expected a formatted UUID string",
        ),
        ("null", "invalid type: null, expected struct Envelope"),
        (&line[..line.len() / 2], "EOF while parsing"),
        (&line[..line.len() - 1], "EOF while parsing an object"),
        (&format!("{line}{line}"), "trailing characters"),
    ] {
        let e = malformed(input);
        assert!(e.contains(expected), "{input:?}: {e}");
    }
    // Deeply nested JSON: serde_json's recursion limit answers, no stack
    // overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(
        malformed(&deep).contains("recursion limit exceeded"),
        "{}",
        malformed(&deep)
    );
    // An oversized field: the actor is bounded.
    let mut long = example("person", "register_person");
    long["actor"] = json!("a".repeat(json::ACTOR_CHARS_MAX + 1));
    assert!(malformed(&long.to_string()).contains("1 to 100 characters expected"));
}

#[test]
fn unknown_enum_values_and_fields_are_refused_by_name() {
    let mut dept = example("person", "register_person");
    dept["department"] = json!("police");
    let e = malformed(&dept.to_string());
    assert!(e.contains("unknown variant `police`"), "{e}");

    let mut status = example("person", "verify_basic_info");
    status["command"]["employment_status"] = json!("astronaut");
    let e = malformed(&status.to_string());
    assert!(e.contains("unknown variant `astronaut`"), "{e}");

    let mut aggregate = example("person", "verify_basic_info");
    aggregate["command"]["aggregate"] = json!("spaceship");
    let e = malformed(&aggregate.to_string());
    assert!(e.contains("unknown variant `spaceship`"), "{e}");

    // An enum as a number (a protobuf enum value sneaking into JSON).
    let mut numeric = example("person", "verify_basic_info");
    numeric["command"]["employment_status"] = json!(99);
    let e = malformed(&numeric.to_string());
    assert!(
        e.contains("expected value") || e.contains("invalid type"),
        "{e}"
    );

    // An unknown envelope field is refused, so a misspelt one is never
    // ignored; so is one inside `command` (next tests).
    let mut extra = example("person", "verify_basic_info");
    extra["is_admin"] = json!(true);
    let e = malformed(&extra.to_string());
    assert!(e.contains("unknown field `is_admin`"), "{e}");
}

/// `c` serialises to JSON that deserialises back to `c` (its `type` tag is
/// not taken for an unknown field).
fn round_trips<T>(c: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value = serde_json::to_value(c).expect("a command serialises");
    let back: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{value} does not deserialise: {e}"));
    assert_eq!(&back, c);
}

#[test]
fn every_documented_example_parses_and_round_trips() {
    let examples = documented();
    assert!(examples.len() >= 40, "{} examples", examples.len());
    for v in &examples {
        let parsed = parse(v);
        assert_eq!(
            parsed.name,
            format!(
                "{}.{}",
                v["command"]["aggregate"].as_str().unwrap_or_default(),
                v["command"]["type"].as_str().unwrap_or_default()
            )
        );
        match &parsed.envelope.command {
            AnyCommand::Person(c) => round_trips(c),
            AnyCommand::Household(c) => round_trips(c),
            AnyCommand::Employer(c) => round_trips(c),
            AnyCommand::DpfOrgan(c) => round_trips(c),
            AnyCommand::WelfarePosts(c) => round_trips(c),
            AnyCommand::Fund(c) => round_trips(c),
            AnyCommand::Cohort(c) => round_trips(c),
            AnyCommand::Ledger(c) => round_trips(c),
            AnyCommand::CityReport(c) => round_trips(c),
            AnyCommand::Evaluation(c) => round_trips(c),
            AnyCommand::Training(c) => round_trips(c),
        }
    }
}

#[test]
fn an_unknown_field_inside_any_command_is_refused_by_name() {
    // Every documented command, of every aggregate: newtype variants
    // wrapping a struct (person, household, training) and struct variants
    // (the others) alike.
    let mut aggregates = std::collections::BTreeSet::new();
    for v in documented() {
        let mut extra = v.clone();
        extra["command"]["wagee"] = json!(5000);
        let e = malformed(&extra.to_string());
        assert!(e.contains("unknown field `wagee`, expected "), "{v}: {e}");
        aggregates.insert(
            v["command"]["aggregate"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(aggregates.len(), 11, "{aggregates:?}");
}

#[test]
fn a_misspelt_field_inside_a_command_is_refused_naming_the_real_ones() {
    for (aggregate, kind, field, misspelt) in [
        ("person", "place_person", "monthly_wage_fen", "monthly_wage"),
        (
            "household",
            "reassess_income",
            "per_capita_income_fen",
            "per_capita_income",
        ),
        ("training", "register_programme", "provider_org", "provider"),
        (
            "employer",
            "report_quota",
            "disabled_employees",
            "disabled_employes",
        ),
        ("fund", "budget_fund", "fund_base_fen", "fund_base"),
        ("ledger", "record_outcome", "recorded_on", "recorded_at"),
        ("city_report", "submit_report", "narrative", "narative"),
    ] {
        let mut line = example(aggregate, kind);
        let command = line["command"].as_object_mut().expect("command object");
        let value = command.remove(field).expect("documented field");
        command.insert(misspelt.to_owned(), value);
        let e = malformed(&line.to_string());
        assert!(
            e.contains(&format!("unknown field `{misspelt}`, expected one of ")),
            "{aggregate}.{kind}: {e}"
        );
        assert!(e.contains(&format!("`{field}`")), "{aggregate}.{kind}: {e}");
        // The tags are not fields of the command.
        assert!(!e.contains("`type`") && !e.contains("`aggregate`"), "{e}");
    }
    // An optional field, left out in the example, misspelt: not silently
    // taken as absent.
    let mut employer = example("employer", "register_employer");
    let command = employer["command"].as_object_mut().expect("command object");
    command.remove("supervisor_org");
    command.insert("supervisor".to_owned(), json!("SASAC"));
    let e = malformed(&employer.to_string());
    assert!(e.contains("unknown field `supervisor`"), "{e}");
}

#[tokio::test]
async fn an_unknown_field_inside_a_command_writes_nothing() {
    let (_dir, engine) = engine();
    let before = head(&engine).await;
    let mut budget = example("fund", "budget_fund");
    budget["command"]["year"] = json!(2030);
    budget["command"]["fund_base_fen_override"] = json!(1);
    let e = malformed(&budget.to_string());
    assert!(e.contains("unknown field `fund_base_fen_override`"), "{e}");
    assert_eq!(head(&engine).await, before);
    still_works(&engine, 2030).await;
}

#[test]
fn money_beyond_i64_or_not_an_integer_is_refused_by_the_parser() {
    for (fen, expected) in [
        (
            "9223372036854775808",
            "invalid value: integer `9223372036854775808`, expected i64",
        ),
        ("1e30", "invalid type: floating point"),
        ("-9223372036854775809", "invalid type: floating point"),
        ("12.5", "invalid type: floating point `12.5`, expected i64"),
        ("\"100\"", "invalid type: string \"100\", expected i64"),
    ] {
        let line = example("fund", "budget_fund")
            .to_string()
            .replace("5000000000", fen);
        let e = malformed(&line);
        assert!(e.contains(expected), "{fen}: {e}");
    }
}

#[tokio::test]
async fn negative_and_oversized_money_is_rejected_and_nothing_is_written() {
    let (_dir, engine) = engine();
    for fen in [-1_i64, i64::MIN, 1_000_000_000_001, i64::MAX] {
        let mut budget = example("fund", "budget_fund");
        budget["command"]["fund_base_fen"] = json!(fen);
        let e = refused(&engine, &budget).await;
        let EngineError::Rejected(r) = &e else {
            panic!("{fen}: {e}")
        };
        assert_eq!(r.field, "fund_base_fen", "{e}");
        assert_eq!(r.rule, "money in fen", "{e}");
        assert_eq!(head(&engine).await, 0, "{fen} reached the log");
    }
    // A negative wage on a placement that is otherwise in order: the
    // documented person's history up to the placement, then the placement.
    let history: Vec<Value> = documented().into_iter().take(10).collect();
    for line in &history {
        json::apply(&engine, &parse(line))
            .await
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let before = head(&engine).await;
    let mut place = example("person", "place_person");
    place["command"]["monthly_wage_fen"] = json!(-260_000);
    let e = refused(&engine, &place).await;
    let EngineError::Rejected(r) = &e else {
        panic!("{e}")
    };
    assert_eq!(r.field, "monthly_wage_fen", "{e}");
    assert!(r.problem.contains("-260000 fen is negative"), "{e}");
    assert_eq!(head(&engine).await, before);
    still_works(&engine, 2023).await;
}

#[tokio::test]
async fn dates_in_year_9999_and_before_1900_are_rejected_and_nothing_is_written() {
    let (_dir, engine) = engine();
    // A business date far in the future or the past.
    for on in ["9999-12-31", "1899-12-31", "0001-01-01", "+10000-01-01"] {
        let mut verify = example("person", "verify_basic_info");
        verify["command"]["verified_on"] = json!(on);
        let mut register = example("person", "register_person");
        register["command_id"] = json!(uuid::Uuid::new_v4());
        register["command"]["person_ref"] = json!(uuid::Uuid::new_v4().to_string());
        // The verification needs a registered person; register one per date.
        register["command"]["id_hmac"] = json!(format!("{:064x}", uuid::Uuid::new_v4().as_u128()));
        let registered = json::apply(&engine, &parse(&register))
            .await
            .expect("registration");
        assert!(!registered.events.is_empty());
        verify["command"]["person_ref"] = register["command"]["person_ref"].clone();
        let before = head(&engine).await;
        let e = refused(&engine, &verify).await;
        let EngineError::Rejected(r) = &e else {
            panic!("{on}: {e}")
        };
        assert_eq!(r.field, "verified_on", "{on}: {e}");
        assert_eq!(head(&engine).await, before, "{on} reached the log");
    }
    // A decision time in year 9999 or before 1900: refused by the parser,
    // not recorded with an absurd time.
    for (at, expected) in [
        (
            "9999-12-31T10:00:00+08:00",
            "at 9999-12-31T10:00:00+08:00: 9999-12-31 is outside 1900-01-01..=2100-12-31",
        ),
        (
            "1899-12-31T10:00:00+08:00",
            "at 1899-12-31T10:00:00+08:00: 1899-12-31 is outside 1900-01-01..=2100-12-31",
        ),
    ] {
        let mut budget = example("fund", "budget_fund");
        budget["at"] = json!(at);
        assert_eq!(malformed(&budget.to_string()), expected);
    }
    // Dates that are no dates at all are refused by the parser.
    for on in ["2023-02-30", "2023-13-01", "99999-01-01", "2023-1-1x"] {
        let mut verify = example("person", "verify_basic_info");
        verify["command"]["verified_on"] = json!(on);
        let e = malformed(&verify.to_string());
        assert!(
            e.contains("input is out of range")
                || e.contains("premature end")
                || e.contains("trailing input")
                || e.contains("invalid"),
            "{on}: {e}"
        );
    }
    still_works(&engine, 2024).await;
}

#[tokio::test]
async fn sql_looking_text_is_stored_verbatim_as_data() {
    let (_dir, engine) = engine();
    let name = "Robert'); DROP TABLE events;--";
    let actor = "x' OR '1'='1";
    let mut employer = example("employer", "register_employer");
    employer["command"]["name"] = json!(name);
    employer["actor"] = json!(actor);
    let handled = json::apply(&engine, &parse(&employer))
        .await
        .expect("SQL-looking text is just text");
    assert_eq!(handled.events.len(), 1);
    let stream = parse(&employer).stream;
    let stored = engine
        .store()
        .read_stream(&stream, 1, 10)
        .await
        .expect("read back");
    assert_eq!(stored.len(), 1);
    let event = decode(&stored[0]).expect("decodes");
    let pathway_domain::Event::EmployerRegistered(e) = event else {
        panic!("{event:?}")
    };
    assert_eq!(e.name, name);
    assert_eq!(
        decode_envelope(&stored[0]).expect("envelope").actor_id,
        actor
    );
    assert_eq!(head(&engine).await, 1);
    still_works(&engine, 2023).await;
}

#[tokio::test]
async fn the_same_command_id_with_other_content_is_refused_and_nothing_is_written() {
    let (_dir, engine) = engine();
    let budget = example("fund", "budget_fund");
    json::apply(&engine, &parse(&budget)).await.expect("first");
    let before = head(&engine).await;
    // The same command again: its first result, nothing appended.
    json::apply(&engine, &parse(&budget)).await.expect("retry");
    assert_eq!(head(&engine).await, before);
    let mut other = budget.clone();
    other["command"]["fund_base_fen"] = json!(4_000_000_000_i64);
    let e = refused(&engine, &other).await;
    assert!(matches!(e, EngineError::CommandIdReused { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "stream fund-230100-2023: command id 6f1c2a4e-0000-4000-8000-000000000034 was already used for a different command"
    );
    assert_eq!(head(&engine).await, before);
    still_works(&engine, 2024).await;
}

/// Fuzz finding (json_command, docs/reliability.md): a command that names
/// its own stream with an empty key (`"dpf_org": ""`) parsed to the stream
/// `dpf-`, which the `stream` field itself may never name. Every such
/// command is refused, and nothing reaches the log.
#[tokio::test]
async fn a_command_naming_its_stream_with_an_empty_key_is_refused() {
    let (_dir, engine) = engine();
    let cases = [
        ("person", "register_person", "person_ref"),
        ("household", "assert_low_income_status", "household_ref"),
        ("employer", "register_employer", "uscc"),
        ("dpf_organ", "report_cadre_ratio", "dpf_org"),
        ("cohort", "receive_cohort", "batch_id"),
        ("ledger", "open_ledger", "person_ref"),
        ("evaluation", "complete_evaluation", "plan_id"),
        ("training", "register_programme", "programme_id"),
    ];
    for (aggregate, kind, field) in cases {
        for key in ["", " ", "\t"] {
            let mut v = example(aggregate, kind);
            v["command"][field] = json!(key);
            let outcome = match json::parse(&v.to_string()) {
                Err(e) => e,
                Ok(parsed) => match json::apply(&engine, &parsed).await {
                    Ok(h) => panic!(
                        "{aggregate}.{kind} with {field} {key:?} was accepted on {}: {h:?}",
                        parsed.stream
                    ),
                    Err(e) => e.to_string(),
                },
            };
            assert!(!outcome.is_empty());
            assert_eq!(
                head(&engine).await,
                0,
                "{aggregate}.{kind} with {field} {key:?}: {outcome}"
            );
        }
    }
    still_works(&engine, 2023).await;
}
