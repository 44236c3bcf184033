//! Hostile input through `pathway import` (the built binary, as a user runs
//! it) and through the graduate exchange's batch handler (protobuf, as NATS
//! delivers it): each case is reported with a clear reason, leaves the log's
//! head where it was, and a good command is still accepted afterwards.

use std::{
    path::Path,
    process::{Command, Output},
};

use pathway_proto::Message as _;
use pathway_store::{EventStore, embedded::EmbeddedStore};
use serde_json::{Value, json};

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

/// Every example line of docs/commands.md.
fn documented() -> Vec<Value> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    std::fs::read_to_string(docs)
        .expect("read docs/commands.md")
        .lines()
        .filter(|l| l.starts_with(r#"{"command_id""#))
        .map(|l| serde_json::from_str(l).expect("documented example is JSON"))
        .collect()
}

pub(super) fn example(aggregate: &str, kind: &str) -> Value {
    documented()
        .into_iter()
        .find(|v| v["command"]["aggregate"] == aggregate && v["command"]["type"] == kind)
        .unwrap_or_else(|| panic!("no example of {aggregate}.{kind}"))
}

/// A log in a temporary directory, driven by `pathway import`.
struct Log {
    dir: tempfile::TempDir,
}

impl Log {
    fn new() -> Self {
        Log {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn data(&self) -> String {
        self.dir
            .path()
            .join("store")
            .to_str()
            .expect("utf-8 path")
            .to_owned()
    }

    /// Imports `lines` (raw bytes, each followed by a line break).
    fn import(&self, lines: &[Vec<u8>]) -> Output {
        let path = self.dir.path().join("input.jsonl");
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        std::fs::write(&path, bytes).expect("write input");
        pathway(&[
            "import",
            "--data-dir",
            &self.data(),
            path.to_str().expect("utf-8 path"),
        ])
    }

    /// Imports one hostile line: refused with `expected` on stderr, exit
    /// code 1, and nothing appended.
    fn refused(&self, line: Vec<u8>, expected: &str) {
        let before = self.head();
        let out = self.import(&[line]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(text(&out.stdout), "0 accepted, 1 rejected\n", "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert_eq!(self.head(), before, "a refused line reached the log");
    }

    /// Imports good lines: all accepted.
    fn accepted(&self, lines: &[Value]) {
        let out = self.import(
            &lines
                .iter()
                .map(|l| l.to_string().into_bytes())
                .collect::<Vec<_>>(),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{} accepted, 0 rejected\n", lines.len())
        );
    }

    /// The head position, as `pathway verify` reports it.
    fn head(&self) -> u64 {
        if !Path::new(&self.data()).exists() {
            return 0;
        }
        let out = pathway(&["verify", "--data-dir", &self.data()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("head position "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no head position in {stdout}"))
    }

    /// The import still applies a good command: a fund budget for `year`.
    fn still_works(&self, year: i32) {
        let before = self.head();
        let mut budget = example("fund", "budget_fund");
        budget["command"]["year"] = json!(year);
        budget["command_id"] = json!(uuid::Uuid::from_u128(0xf00d_0000 + year as u128));
        self.accepted(&[budget]);
        assert_eq!(self.head(), before + 1);
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn import_refuses_malformed_truncated_and_oversized_lines() {
    let log = Log::new();
    log.refused(
        b"{not json".to_vec(),
        "line 1: malformed: key must be a string",
    );
    let good = bytes(&example("person", "register_person"));
    log.refused(
        good[..good.len() / 2].to_vec(),
        "line 1: malformed: EOF while parsing",
    );
    log.refused(
        b"[1, 2, 3]".to_vec(),
        "line 1: malformed: invalid type: integer `1`, expected a formatted UUID string",
    );
    // One byte over the documented 1 MiB line limit.
    let mut long = example("evaluation", "complete_evaluation");
    long["command"]["findings"] = json!("");
    let base = long.to_string().len();
    long["command"]["findings"] = json!("x".repeat(1024 * 1024 + 1 - base));
    assert_eq!(long.to_string().len(), 1024 * 1024 + 1);
    log.refused(bytes(&long), "line 1: longer than 1048576 bytes, skipped");
    // A NUL byte and a lone carriage return are no JSON either.
    log.refused(b"\0".to_vec(), "line 1: malformed: expected value");
    log.still_works(2023);
}

#[test]
fn import_refuses_invalid_utf8() {
    let log = Log::new();
    let mut line = bytes(&example("employer", "register_employer"));
    let at = line
        .windows(3)
        .position(|w| w == "黑".as_bytes())
        .expect("a Chinese name");
    line[at] = 0xff;
    log.refused(line, "line 1: malformed: not UTF-8: invalid utf-8 sequence");
    // Overlong encoding of '/' and a UTF-16 surrogate encoded as UTF-8.
    log.refused(
        b"{\"actor\": \"\xc0\xaf\"}".to_vec(),
        "line 1: malformed: not UTF-8",
    );
    log.refused(
        b"{\"actor\": \"\xed\xa0\x80\"}".to_vec(),
        "line 1: malformed: not UTF-8",
    );
    // A lone surrogate as a JSON escape is refused by the JSON parser.
    let mut escaped = example("employer", "register_employer").to_string();
    escaped = escaped.replace("黑龙江省农业科学院", "\\ud800");
    log.refused(
        escaped.into_bytes(),
        "line 1: malformed: unexpected end of hex escape",
    );
    log.still_works(2023);
}

#[test]
fn import_stores_sql_looking_text_verbatim() {
    let log = Log::new();
    let name = "Robert'); DROP TABLE events; --";
    let actor = "x' OR '1'='1";
    let mut employer = example("employer", "register_employer");
    employer["command"]["name"] = json!(name);
    employer["actor"] = json!(actor);
    log.accepted(std::slice::from_ref(&employer));
    assert_eq!(log.head(), 1);
    // Read back from the log as stored.
    let store = EmbeddedStore::open(Path::new(&log.data())).expect("open");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stored = rt
        .block_on(store.read_stream("employer-12230000MB0123456X", 1, 10))
        .expect("read");
    assert_eq!(stored.len(), 1);
    let event = pathway_engine::decode(&stored[0]).expect("decodes");
    let pathway_domain::Event::EmployerRegistered(e) = event else {
        panic!("{event:?}")
    };
    assert_eq!(e.name, name);
    assert_eq!(
        pathway_engine::decode_envelope(&stored[0])
            .expect("envelope")
            .actor_id,
        actor
    );
    drop(store);
    log.still_works(2023);
}

#[test]
fn import_rejects_dates_in_year_9999_and_before_1900() {
    let log = Log::new();
    let history: Vec<Value> = documented().into_iter().take(1).collect();
    log.accepted(&history);
    for on in ["9999-12-31", "1899-12-31"] {
        let mut verify = example("person", "verify_basic_info");
        verify["command"]["verified_on"] = json!(on);
        log.refused(bytes(&verify), "rejected: verified_on: ");
    }
    for at in ["9999-12-31T10:00:00+08:00", "1899-12-31T10:00:00+08:00"] {
        let mut budget = example("fund", "budget_fund");
        budget["at"] = json!(at);
        let date = &at[..10];
        log.refused(
            bytes(&budget),
            &format!("line 1: malformed: at {at}: {date} is outside 1900-01-01..=2100-12-31"),
        );
    }
    let mut far = example("person", "verify_basic_info");
    far["command"]["verified_on"] = json!("+10000-01-01");
    log.refused(
        bytes(&far),
        "rejected: verified_on: +10000-01-01 is outside 1900-01-01..=2100-12-31 (date range)",
    );
    let mut impossible = example("person", "verify_basic_info");
    impossible["command"]["verified_on"] = json!("2023-02-30");
    log.refused(
        bytes(&impossible),
        "line 1: malformed: input is out of range",
    );
    log.still_works(2023);
}

#[test]
fn import_rejects_negative_and_overflowing_money() {
    let log = Log::new();
    let line = example("fund", "budget_fund").to_string();
    log.refused(
        line.replace("5000000000", "9223372036854775808")
            .into_bytes(),
        "line 1: malformed: invalid value: integer `9223372036854775808`, expected i64",
    );
    log.refused(
        line.replace("5000000000", "-1").into_bytes(),
        "line 1: command 6f1c2a4e-0000-4000-8000-000000000034: rejected: fund_base_fen: -1 fen is negative (money in fen)",
    );
    // A negative wage on an otherwise valid placement.
    log.accepted(&documented().into_iter().take(10).collect::<Vec<_>>());
    let mut place = example("person", "place_person");
    place["command"]["monthly_wage_fen"] = json!(-1);
    log.refused(
        bytes(&place),
        "rejected: monthly_wage_fen: -1 fen is negative (money in fen)",
    );
    log.still_works(2024);
}

#[test]
fn import_refuses_unknown_enum_values() {
    let log = Log::new();
    let mut dept = example("fund", "budget_fund");
    dept["department"] = json!("police");
    log.refused(bytes(&dept), "line 1: malformed: unknown variant `police`");
    let mut status = example("person", "verify_basic_info");
    status["command"]["employment_status"] = json!("astronaut");
    log.refused(
        bytes(&status),
        "line 1: malformed: unknown variant `astronaut`",
    );
    log.still_works(2023);
}

#[test]
fn import_refuses_a_command_id_reused_for_other_content() {
    let log = Log::new();
    let budget = example("fund", "budget_fund");
    log.accepted(std::slice::from_ref(&budget));
    let before = log.head();
    let mut other = budget.clone();
    other["command"]["fund_base_fen"] = json!(1);
    log.refused(
        bytes(&other),
        "line 1: command 6f1c2a4e-0000-4000-8000-000000000034: stream fund-230100-2023: command id 6f1c2a4e-0000-4000-8000-000000000034 was already used for a different command",
    );
    assert_eq!(log.head(), before);
    log.still_works(2024);
}

// ---------------------------------------------------------------------------
// The graduate exchange: protobuf batches as NATS delivers them.
// ---------------------------------------------------------------------------

mod exchange {
    use pathway_bus::exchange_service::{ExchangeService, Reply};
    use pathway_proto::exchange::v1::{
        CohortBatch, Date, ExchangeVersion, GraduateLevel, GraduateRecord, RejectionReason,
    };

    use super::*;

    /// The service over a fresh embedded log, with a NATS client that is
    /// never connected: `handle_batch` decides on the log alone.
    async fn service() -> (
        tempfile::TempDir,
        EmbeddedStore,
        ExchangeService<EmbeddedStore>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("log")).expect("open");
        let client = pathway_bus::async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("127.0.0.1:1")
            .await
            .expect("an offline client");
        let service = ExchangeService::new(store.clone(), client).with_clock(|| {
            chrono::DateTime::parse_from_rfc3339("2024-03-01T10:00:00+08:00")
                .expect("time")
                .to_utc()
        });
        (dir, store, service)
    }

    fn record(i: u8, school: &str) -> GraduateRecord {
        GraduateRecord {
            id_hmac: vec![i; 32],
            school: school.into(),
            major: "Software engineering".into(),
            level: GraduateLevel::Bachelor as i32,
            expected_graduation: Some(Date {
                year: 2024,
                month: 7,
                day: 1,
            }),
            residence_city: "230100".into(),
        }
    }

    fn batch(id: &str, records: Vec<GraduateRecord>) -> CohortBatch {
        CohortBatch {
            version: ExchangeVersion::ExchangeVersion1 as i32,
            batch_id: id.into(),
            year: 2024,
            record_count: records.len() as u32,
            records,
        }
    }

    async fn head(store: &EmbeddedStore) -> u64 {
        store.head().await.expect("head").position
    }

    /// `bytes` is rejected for `reason` with `detail`, and nothing is written.
    async fn rejected(
        store: &EmbeddedStore,
        service: &ExchangeService<EmbeddedStore>,
        bytes: &[u8],
        reason: RejectionReason,
        detail: &str,
    ) {
        let before = head(store).await;
        match service.handle_batch(bytes).await.expect("the log answers") {
            Reply::Rejected(r) => {
                assert_eq!(r.reason(), reason, "{}", r.detail);
                assert!(
                    r.detail.contains(detail),
                    "{detail:?} not in {:?}",
                    r.detail
                );
            }
            Reply::Accepted(o) => panic!("accepted: {o:?}"),
        }
        assert_eq!(
            head(store).await,
            before,
            "a rejected batch reached the log"
        );
    }

    async fn still_works(
        store: &EmbeddedStore,
        service: &ExchangeService<EmbeddedStore>,
        id: &str,
    ) {
        let before = head(store).await;
        let good = batch(id, vec![record(1, "黑龙江大学")]);
        match service
            .handle_batch(&good.encode_to_vec())
            .await
            .expect("the log answers")
        {
            Reply::Accepted(o) => assert_eq!((o.received, o.unmatched), (1, 1)),
            Reply::Rejected(r) => panic!("a good batch was rejected: {r:?}"),
        }
        assert!(head(store).await > before);
    }

    #[tokio::test]
    async fn malformed_truncated_and_oversized_batches_are_rejected() {
        let (_dir, store, service) = service().await;
        let good = batch("edu-2024-01", vec![record(1, "a"), record(2, "b")]).encode_to_vec();
        rejected(
            &store,
            &service,
            b"\xff\xff\xff",
            RejectionReason::Malformed,
            "not a pathway.exchange.v1.CohortBatch: failed to decode Protobuf message: invalid varint",
        )
        .await;
        rejected(
            &store,
            &service,
            &good[..good.len() - 5],
            RejectionReason::Malformed,
            "not a pathway.exchange.v1.CohortBatch",
        )
        .await;
        // JSON where protobuf is expected.
        rejected(
            &store,
            &service,
            br#"{"batch_id": "edu-2024-01"}"#,
            RejectionReason::Malformed,
            "not a pathway.exchange.v1.CohortBatch",
        )
        .await;
        let over = vec![0u8; pathway_bus::exchange::EXCHANGE_BATCH_BYTES_MAX + 1];
        rejected(
            &store,
            &service,
            &over,
            RejectionReason::Oversized,
            "batch is 16777217 bytes, at most 16777216 are accepted",
        )
        .await;
        // A record_count far above what the batch holds.
        let mut lying = batch("edu-2024-01", vec![record(1, "a")]);
        lying.record_count = 10_000;
        rejected(
            &store,
            &service,
            &lying.encode_to_vec(),
            RejectionReason::RecordCountMismatch,
            "record_count says 10000 but the batch holds 1",
        )
        .await;
        still_works(&store, &service, "edu-2024-02").await;
    }

    #[tokio::test]
    async fn invalid_utf8_unknown_enums_and_odd_dates_are_rejected() {
        let (_dir, store, service) = service().await;
        // The school's bytes made invalid UTF-8 after encoding.
        let mut bytes = batch("edu-2024-01", vec![record(1, "schoolXname")]).encode_to_vec();
        let at = bytes
            .windows(11)
            .position(|w| w == b"schoolXname")
            .expect("school");
        bytes[at + 6] = 0xff;
        rejected(
            &store,
            &service,
            &bytes,
            RejectionReason::Malformed,
            "invalid string value: data is not UTF-8 encoded",
        )
        .await;
        let mut level = batch("edu-2024-01", vec![record(1, "a")]);
        level.records[0].level = 99;
        rejected(
            &store,
            &service,
            &level.encode_to_vec(),
            RejectionReason::Malformed,
            "record 0: level is missing or unknown",
        )
        .await;
        let mut version = batch("edu-2024-01", vec![record(1, "a")]);
        version.version = 7;
        rejected(
            &store,
            &service,
            &version.encode_to_vec(),
            RejectionReason::UnknownVersion,
            "schema version 7 is not supported",
        )
        .await;
        let mut year = batch("edu-2024-01", vec![record(1, "a")]);
        year.year = 9999;
        rejected(
            &store,
            &service,
            &year.encode_to_vec(),
            RejectionReason::Malformed,
            "batch: year: ",
        )
        .await;
        let mut day = batch("edu-2024-01", vec![record(1, "a")]);
        day.records[0].expected_graduation = Some(Date {
            year: 2024,
            month: 2,
            day: 30,
        });
        rejected(
            &store,
            &service,
            &day.encode_to_vec(),
            RejectionReason::Malformed,
            "record 0: expected_graduation is missing or not a date",
        )
        .await;
        still_works(&store, &service, "edu-2024-02").await;
    }

    #[tokio::test]
    async fn a_batch_id_reused_for_other_content_is_rejected() {
        let (_dir, store, service) = service().await;
        still_works(&store, &service, "edu-2024-01").await;
        let other = batch("edu-2024-01", vec![record(1, "a"), record(2, "b")]);
        rejected(
            &store,
            &service,
            &other.encode_to_vec(),
            RejectionReason::Malformed,
            "batch edu-2024-01 was received before with other content",
        )
        .await;
        still_works(&store, &service, "edu-2024-03").await;
    }
}
