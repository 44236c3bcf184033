//! Hostile input through the HTTP API of `pathway serve` (embedded store in
//! a temporary directory): each case is answered with a clear status and
//! message, leaves the log's head where it was (`/readyz` reports it), and
//! the server goes on accepting good commands afterwards.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_embedded, token};

/// The documented example of `aggregate.type` (docs/commands.md).
fn example(aggregate: &str, kind: &str) -> Value {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    std::fs::read_to_string(docs)
        .expect("read docs/commands.md")
        .lines()
        .filter(|l| l.starts_with(r#"{"command_id""#))
        .map(|l| serde_json::from_str::<Value>(l).expect("documented example is JSON"))
        .find(|v| v["command"]["aggregate"] == aggregate && v["command"]["type"] == kind)
        .unwrap_or_else(|| panic!("no example of {aggregate}.{kind}"))
}

/// A fund budget for `year` under a fresh command id.
fn budget(year: i32) -> Value {
    let mut b = example("fund", "budget_fund");
    b["command"]["year"] = json!(year);
    b["command_id"] = json!(Uuid::new_v4());
    b
}

async fn head(app: &TestApp) -> u64 {
    let (_, body) = app.get_text("/readyz").await;
    let body: Value = serde_json::from_str(&body).expect("readyz answers JSON");
    body["head_position"].as_u64().expect("head_position")
}

/// POSTs raw `body` to /v1/commands as `content_type`.
async fn post_bytes(app: &TestApp, token: &str, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/v1/commands", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `body` is refused with `status`, `error` and a message containing
/// `message`; the head does not move and a good command still goes through.
async fn refused(
    app: &TestApp,
    token: &str,
    body: Vec<u8>,
    status: u16,
    error: &str,
    message: &str,
) {
    let before = head(app).await;
    let (got, answer) = post_bytes(app, token, body, "application/json").await;
    assert_eq!(got, status, "{answer}");
    assert_eq!(answer["error"], json!(error), "{answer}");
    let text = answer["message"].as_str().unwrap_or_default();
    assert!(text.contains(message), "{message:?} not in {text:?}");
    assert_eq!(head(app).await, before, "a refused request reached the log");
}

async fn still_works(app: &TestApp, year: i32) {
    let before = head(app).await;
    let (status, body) = app.post(&token("finance", None), &budget(year)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], json!(["EmploymentSecurityFundBudgeted"]));
    assert_eq!(head(app).await, before + 1);
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[tokio::test]
async fn malformed_truncated_and_oversized_bodies_are_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let finance = token("finance", None);
    refused(
        &app,
        &finance,
        b"{not json".to_vec(),
        400,
        "malformed",
        "body is not JSON: key must be a string",
    )
    .await;
    let good = bytes(&budget(2023));
    refused(
        &app,
        &finance,
        good[..good.len() / 2].to_vec(),
        400,
        "malformed",
        "body is not JSON: EOF while parsing",
    )
    .await;
    refused(
        &app,
        &finance,
        Vec::new(),
        400,
        "malformed",
        "body is not JSON: EOF while parsing a value",
    )
    .await;
    refused(
        &app,
        &finance,
        b"\"a string\"".to_vec(),
        400,
        "malformed",
        "invalid type: string \"a string\", expected struct Envelope",
    )
    .await;
    // Over the documented request_body_bytes_max (1 MiB by default).
    let mut big = budget(2023);
    big["actor"] = json!("a".repeat(1_048_576));
    refused(
        &app,
        &finance,
        bytes(&big),
        413,
        "too_large",
        "request body over request_body_bytes_max 1048576",
    )
    .await;
    // Deep nesting is refused by the JSON parser's recursion limit.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    refused(
        &app,
        &finance,
        deep.into_bytes(),
        400,
        "malformed",
        "recursion limit exceeded",
    )
    .await;
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn protobuf_where_json_is_expected_is_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let education = token("education", None);
    // A graduate CohortBatch (version 1, batch "edu-2024-01", year 2024) in
    // its protobuf encoding: the HTTP API takes JSON only; batches go
    // through the NATS exchange (tested in pathway-cli's hostile tests).
    let mut batch = vec![0x08, 0x01, 0x12, 0x0b];
    batch.extend_from_slice(b"edu-2024-01");
    batch.extend_from_slice(&[0x18, 0xe8, 0x0f, 0x20, 0x00]);
    let before = head(&app).await;
    let (status, body) = post_bytes(&app, &education, batch, "application/x-protobuf").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], json!("malformed"));
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("body is not JSON: "),
        "{body}"
    );
    assert_eq!(head(&app).await, before);
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let organization = token("organization", None);
    let mut employer = bytes(&example("employer", "register_employer"));
    let at = employer
        .windows(3)
        .position(|w| w == "黑".as_bytes())
        .expect("a Chinese name");
    employer[at] = 0xff;
    refused(
        &app,
        &organization,
        employer,
        400,
        "malformed",
        "body is not JSON: invalid unicode code point",
    )
    .await;
    let escaped = example("employer", "register_employer")
        .to_string()
        .replace("黑龙江省农业科学院", "\\udc00");
    refused(
        &app,
        &organization,
        escaped.into_bytes(),
        400,
        "malformed",
        "lone leading surrogate in hex escape",
    )
    .await;
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn sql_looking_text_is_stored_and_read_back_verbatim() {
    let app = spawn_embedded(|_, _| {}).await;
    let organization = token("organization", None);
    let name = "Robert'); DROP TABLE employers; --";
    let mut employer = example("employer", "register_employer");
    employer["command"]["name"] = json!(name);
    employer["actor"] = json!("x' OR '1'='1");
    let (status, body) = app.post(&organization, &employer).await;
    assert_eq!(status, 200, "{body}");
    app.wait_ready().await;
    let (status, body) = app.get(&organization, "/v1/models/sasac/employers").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["rows"][0]["name"], json!(name));
    // SQL in query parameters and paths is data, not SQL.
    let (status, body) = app
        .get(
            &organization,
            "/v1/models/sasac/employers?city=230100'%20OR%20'1'='1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([]), "{body}");
    let (status, body) = app
        .get(
            &organization,
            "/v1/models/sasac/employers%3B%20DROP%20TABLE%20employers",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .get(
            &organization,
            "/v1/models/sasac/employers?year=1%20OR%201=1",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // The table is still there, with its one row.
    let (_, body) = app.get(&organization, "/v1/models/sasac/employers").await;
    assert_eq!(body["rows"][0]["name"], json!(name));
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn dates_in_year_9999_and_before_1900_are_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let finance = token("finance", None);
    for at in ["9999-12-31T10:00:00+08:00", "1899-12-31T10:00:00+08:00"] {
        let mut b = budget(2023);
        b["at"] = json!(at);
        refused(
            &app,
            &finance,
            bytes(&b),
            400,
            "malformed",
            &format!("at {at}: "),
        )
        .await;
    }
    let dpf = token("dpf", None);
    let registration = example("person", "register_person");
    let (status, body) = app.post(&dpf, &registration).await;
    assert_eq!(status, 200, "{body}");
    for on in ["9999-12-31", "1899-12-31"] {
        let mut verify = example("person", "verify_basic_info");
        verify["command"]["verified_on"] = json!(on);
        let before = head(&app).await;
        let (status, body) = app.post(&dpf, &verify).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], json!("rejected"), "{body}");
        assert_eq!(body["field"], json!("verified_on"), "{body}");
        assert_eq!(head(&app).await, before);
    }
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn negative_and_overflowing_money_is_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let finance = token("finance", None);
    let line = budget(2023).to_string();
    refused(
        &app,
        &finance,
        line.replace("5000000000", "9223372036854775808")
            .into_bytes(),
        400,
        "malformed",
        "invalid value: integer `9223372036854775808`, expected i64",
    )
    .await;
    refused(
        &app,
        &finance,
        line.replace("5000000000", "1e400").into_bytes(),
        400,
        "malformed",
        "number out of range",
    )
    .await;
    let before = head(&app).await;
    let (status, body) = post_bytes(
        &app,
        &finance,
        line.replace("5000000000", "-1").into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({"error": "rejected", "message": "fund_base_fen: -1 fen is negative (money in fen)", "field": "fund_base_fen", "rule": "money in fen"})
    );
    assert_eq!(head(&app).await, before);
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn unknown_enum_values_are_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    let finance = token("finance", None);
    let mut dept = budget(2023);
    dept["department"] = json!("police");
    refused(
        &app,
        &finance,
        bytes(&dept),
        400,
        "malformed",
        "unknown variant `police`",
    )
    .await;
    let mut aggregate = budget(2023);
    aggregate["command"]["aggregate"] = json!("spaceship");
    refused(
        &app,
        &finance,
        bytes(&aggregate),
        400,
        "malformed",
        "unknown variant `spaceship`",
    )
    .await;
    let mut kind = budget(2023);
    kind["command"]["type"] = json!("embezzle_fund");
    refused(
        &app,
        &finance,
        bytes(&kind),
        400,
        "malformed",
        "unknown variant `embezzle_fund`",
    )
    .await;
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn unknown_fields_inside_the_command_are_refused() {
    let app = spawn_embedded(|_, _| {}).await;
    // A misspelt field of a command wrapping a struct (person), of a struct
    // variant (fund, employer) and of a training programme: each refused by
    // name, as an unknown envelope field is.
    for (department, aggregate, kind, field) in [
        ("hrss", "person", "place_person", "wagee"),
        ("finance", "fund", "budget_fund", "fund_base_fenn"),
        ("organization", "employer", "register_employer", "is_admin"),
        ("hrss", "training", "register_programme", "subsidy_fen"),
    ] {
        let mut line = example(aggregate, kind);
        line["command"][field] = json!(5000);
        refused(
            &app,
            &token(department, None),
            bytes(&line),
            400,
            "malformed",
            &format!("unknown field `{field}`, expected "),
        )
        .await;
    }
    let mut envelope = budget(2023);
    envelope["is_admin"] = json!(true);
    refused(
        &app,
        &token("finance", None),
        bytes(&envelope),
        400,
        "malformed",
        "unknown field `is_admin`, expected one of ",
    )
    .await;
    still_works(&app, 2023).await;
}

#[tokio::test]
async fn ten_thousand_commands_in_one_batch_are_refused_whole() {
    // A body limit large enough for the batch, so that the batch limit is
    // what answers.
    let app = spawn_embedded(|s, _| s.limits.request_body_bytes_max = 16 * 1024 * 1024).await;
    let finance = token("finance", None);
    let batch: Vec<Value> = (0..10_000).map(|i| budget(2000 + i % 100)).collect();
    refused(
        &app,
        &finance,
        bytes(&Value::Array(batch.clone())),
        413,
        "too_large",
        "batch of 10000 commands over commands_per_batch_max 100",
    )
    .await;
    // With the default body limit the same batch is over the body limit.
    let small = spawn_embedded(|_, _| {}).await;
    refused(
        &small,
        &finance,
        bytes(&Value::Array(batch)),
        413,
        "too_large",
        "request body over request_body_bytes_max",
    )
    .await;
    still_works(&app, 2023).await;
    still_works(&small, 2023).await;
}

#[tokio::test]
async fn the_same_command_id_with_other_content_is_a_conflict() {
    let app = spawn_embedded(|_, _| {}).await;
    let finance = token("finance", None);
    let first = budget(2023);
    let (status, body) = app.post(&finance, &first).await;
    assert_eq!(status, 200, "{body}");
    let before = head(&app).await;
    // The same command again: its first result.
    let (status, again) = app.post(&finance, &first).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, body);
    let mut other = first.clone();
    other["command"]["fund_base_fen"] = json!(1);
    let id = first["command_id"].as_str().expect("id");
    refused(
        &app,
        &finance,
        bytes(&other),
        409,
        "conflict",
        &format!(
            "stream fund-230100-2023: command id {id} was already used for a different command"
        ),
    )
    .await;
    assert_eq!(head(&app).await, before);
    still_works(&app, 2024).await;
}

// ---------------------------------------------------------------------------
// gRPC: the API that takes protobuf.
// ---------------------------------------------------------------------------

mod grpc {
    use pathway_proto::{
        Message as _,
        api::v1::{Command, CommandBatch, SubmitCommandRequest, submit_command_request::Request},
    };
    use prost_reflect::prost::bytes::{Buf as _, BufMut as _};
    use tonic::{
        Code, Status,
        codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    };

    use super::*;
    use crate::helpers::grpc_request;

    /// Sends and receives message bytes as they are, so that a request can
    /// be any bytes at all.
    #[derive(Debug, Clone, Copy, Default)]
    struct Raw;

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let n = src.remaining();
            Ok(Some(src.copy_to_bytes(n).to_vec()))
        }
    }

    /// `SubmitCommand` with `bytes` as the request message.
    async fn submit_raw(app: &TestApp, token: &str, bytes: Vec<u8>) -> Result<Vec<u8>, Status> {
        let channel = tonic::transport::Endpoint::from_shared(app.base.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("gRPC connects");
        let mut client = tonic::client::Grpc::new(channel)
            .max_encoding_message_size(64 * 1024 * 1024)
            .max_decoding_message_size(64 * 1024 * 1024);
        client.ready().await.expect("ready");
        client
            .unary(
                grpc_request(token, None, bytes),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/pathway.api.v1.Pathway/SubmitCommand",
                ),
                Raw,
            )
            .await
            .map(tonic::Response::into_inner)
    }

    /// `bytes` is refused with `code` and a message containing `message`,
    /// and nothing is written; returns the status.
    async fn refused(
        app: &TestApp,
        token: &str,
        bytes: Vec<u8>,
        code: Code,
        message: &str,
    ) -> Status {
        let before = head(app).await;
        let status = match submit_raw(app, token, bytes).await {
            Ok(answer) => panic!("accepted: {answer:?}"),
            Err(status) => status,
        };
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(message),
            "{message:?} not in {:?}",
            status.message()
        );
        assert_eq!(head(app).await, before, "a refused request reached the log");
        status
    }

    /// Undecodable protobuf: INVALID_ARGUMENT, `pathway-error: malformed`,
    /// a message naming the request message and then prost's decode error.
    async fn undecodable(app: &TestApp, token: &str, bytes: Vec<u8>, problem: &str) {
        let status = refused(
            app,
            token,
            bytes,
            Code::InvalidArgument,
            "request is not a valid SubmitCommandRequest protobuf message: \
             failed to decode Protobuf message: ",
        )
        .await;
        assert!(
            status.message().contains(problem),
            "{problem:?} not in {:?}",
            status.message()
        );
        assert_eq!(
            status
                .metadata()
                .get("pathway-error")
                .and_then(|v| v.to_str().ok()),
            Some("malformed"),
            "{status:?}"
        );
    }

    fn command(envelope: &Value) -> Command {
        Command {
            command_id: envelope["command_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            envelope_json: envelope.to_string(),
        }
    }

    fn single(envelope: &Value) -> Vec<u8> {
        SubmitCommandRequest {
            request: Some(Request::Command(command(envelope))),
        }
        .encode_to_vec()
    }

    #[tokio::test]
    async fn malformed_truncated_and_oversized_protobuf_is_refused() {
        let app = spawn_embedded(|_, _| {}).await;
        let finance = token("finance", None);
        // Bytes that are not a SubmitCommandRequest are the caller's mistake:
        // INVALID_ARGUMENT naming the message and the decode error
        // (`pathway_proto::codec::StrictProstCodec`), not tonic's INTERNAL.
        undecodable(&app, &finance, b"\xff\xff\xff".to_vec(), "invalid varint").await;
        // A valid message with its last bytes cut off.
        let good = single(&budget(2023));
        for cut in [1, 7] {
            undecodable(
                &app,
                &finance,
                good[..good.len() - cut].to_vec(),
                "buffer underflow",
            )
            .await;
        }
        // A length prefix promising more than the message holds.
        undecodable(
            &app,
            &finance,
            vec![0x0a, 0x7f, 0x0a, 0x01],
            "buffer underflow",
        )
        .await;
        // JSON where protobuf is expected.
        let json = bytes(&example("fund", "budget_fund"));
        undecodable(&app, &finance, json, "invalid wire type value: 7").await;
        // A request with no command at all.
        refused(
            &app,
            &finance,
            Vec::new(),
            Code::InvalidArgument,
            "is empty",
        )
        .await;
        // Malformed JSON inside a well-formed message.
        let mut broken = SubmitCommandRequest {
            request: Some(Request::Command(command(&budget(2023)))),
        };
        if let Some(Request::Command(c)) = &mut broken.request {
            c.envelope_json.truncate(c.envelope_json.len() / 2);
        }
        refused(
            &app,
            &finance,
            broken.encode_to_vec(),
            Code::InvalidArgument,
            "EOF while parsing",
        )
        .await;
        // Over request_body_bytes_max (1 MiB), the gRPC message limit too.
        let mut big = budget(2023);
        big["actor"] = json!("a".repeat(1_048_576));
        refused(
            &app,
            &finance,
            single(&big),
            Code::OutOfRange,
            "message length too large",
        )
        .await;
        still_works(&app, 2023).await;
    }

    #[tokio::test]
    async fn invalid_utf8_in_a_protobuf_string_is_refused() {
        let app = spawn_embedded(|_, _| {}).await;
        let finance = token("finance", None);
        let mut bytes = single(&budget(2023));
        let at = bytes
            .windows(7)
            .position(|w| w == b"finance")
            .expect("the department in the envelope");
        bytes[at] = 0xff;
        undecodable(
            &app,
            &finance,
            bytes,
            "invalid string value: data is not UTF-8 encoded",
        )
        .await;
        still_works(&app, 2023).await;
    }

    #[tokio::test]
    async fn ten_thousand_commands_in_one_grpc_batch_are_refused_whole() {
        let app = spawn_embedded(|s, _| s.limits.request_body_bytes_max = 16 * 1024 * 1024).await;
        let finance = token("finance", None);
        let batch = SubmitCommandRequest {
            request: Some(Request::Batch(CommandBatch {
                commands: (0..10_000)
                    .map(|i| command(&budget(2000 + i % 100)))
                    .collect(),
            })),
        };
        refused(
            &app,
            &finance,
            batch.encode_to_vec(),
            Code::InvalidArgument,
            "batch of 10000 commands over commands_per_batch_max 100",
        )
        .await;
        still_works(&app, 2023).await;
    }
}
