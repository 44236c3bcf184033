//! The gRPC API on the same port as HTTP, driven with the generated tonic
//! client next to plain HTTP: every status code on both transports, region
//! scoping, department policy, token refusals, access events read back from
//! the log, and department event streams.

use std::time::Duration;

use pathway_domain::pb;
use pathway_proto::{
    Message as _,
    api::v1::{
        Command, CommandBatch, QueryModelRequest, ReadStreamHistoryRequest, StreamEventsRequest,
        StreamEventsResponse, SubmitCommandRequest, batch_item, read_stream_history_request,
        submit_command_request, submit_command_response,
    },
    views::v1 as views,
};
use pathway_store::EventStore as _;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::helpers::{
    PURPOSE, TestApp, grpc_command, grpc_request, register, spawn_pg, token, token_with_id,
    verify_basic_info,
};

const HARBIN: &str = "230100";
const NANGANG: &str = "230102";
const LONGSHA: &str = "230202";
const QIQIHAR: &str = "230200";

fn query(model: &str, table: &str, city: Option<&str>) -> QueryModelRequest {
    QueryModelRequest {
        model: model.to_owned(),
        table: table.to_owned(),
        city: city.map(str::to_owned),
        year: None,
        after: String::new(),
        limit: None,
    }
}

fn text(v: &prost_types::Value) -> Option<&str> {
    match &v.kind {
        Some(prost_types::value::Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Every `PersonalDataAccessed` event in the log, in order.
async fn access_events(app: &TestApp) -> Vec<(pb::EventEnvelope, pb::PersonalDataAccessed)> {
    let store = app.store().await;
    let records = store
        .read_stream("audit-access", 1, 10_000)
        .await
        .expect("read audit-access");
    records
        .iter()
        .filter_map(|r| match pathway_engine::decode(r).expect("decodes") {
            pb::event::Kind::PersonalDataAccessed(a) => {
                Some((pathway_engine::decode_envelope(r).expect("envelope"), a))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn commands_and_queries_over_grpc_share_the_http_handlers() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    let dpf = token("dpf", None);
    let person = Uuid::new_v4();
    let envelope = register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, 21);
    let reply = client
        .submit_command(grpc_request(&dpf, None, grpc_command(&envelope)))
        .await
        .expect("accepted")
        .into_inner();
    let Some(submit_command_response::Response::Accepted(accepted)) = reply.response else {
        panic!("not accepted: {reply:?}")
    };
    assert_eq!(accepted.events, vec!["PersonRegistered"]);
    assert_eq!(accepted.stream, format!("person-{person}"));
    // The same command over HTTP is a retry: its first result.
    let (status, body) = app.post(&dpf, &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_position"], json!(accepted.first_position));

    // A batch answers each command on its own.
    let batch = SubmitCommandRequest {
        request: Some(submit_command_request::Request::Batch(CommandBatch {
            commands: vec![
                Command {
                    command_id: String::new(),
                    envelope_json: verify_basic_info(person, NANGANG).to_string(),
                },
                {
                    // An unregistered person: rejected by the domain.
                    let envelope = verify_basic_info(Uuid::new_v4(), NANGANG);
                    Command {
                        command_id: envelope["command_id"].as_str().unwrap_or("").to_owned(),
                        envelope_json: envelope.to_string(),
                    }
                },
            ],
        })),
    };
    let reply = client
        .submit_command(grpc_request(&dpf, None, batch))
        .await
        .expect("batch")
        .into_inner();
    let Some(submit_command_response::Response::Batch(batch)) = reply.response else {
        panic!("not a batch: {reply:?}")
    };
    assert!(matches!(
        batch.results[0].outcome,
        Some(batch_item::Outcome::Accepted(_))
    ));
    let Some(batch_item::Outcome::Failure(failure)) = &batch.results[1].outcome else {
        panic!("second command accepted: {batch:?}")
    };
    assert_eq!(failure.code, Code::InvalidArgument as i32, "{failure:?}");
    assert_eq!(failure.error, "rejected", "{failure:?}");

    app.wait_ready().await;
    let rows = client
        .query_model(grpc_request(
            &dpf,
            Some(PURPOSE),
            query("dpf", "persons", None),
        ))
        .await
        .expect("rows")
        .into_inner();
    assert_eq!(rows.rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows.rows[0].fields.get("person_ref").and_then(text),
        Some(person.to_string().as_str())
    );
    // Tables of counts hold no personal data: no purpose needed.
    let rows = client
        .query_model(grpc_request(&dpf, None, query("dpf", "four_ones", None)))
        .await
        .expect("counts")
        .into_inner();
    assert_eq!(rows.rows.len(), 1, "{rows:?}");
}

#[tokio::test]
async fn a_table_is_read_a_page_at_a_time_on_both_transports() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    let dpf = token("dpf", None);
    let mut persons: Vec<String> = Vec::new();
    for serial in 40..45 {
        let person = Uuid::new_v4();
        let envelope = register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, serial);
        let (status, body) = app.post(&dpf, &envelope).await;
        assert_eq!(status, 200, "{body}");
        persons.push(person.to_string());
    }
    persons.sort();
    app.wait_ready().await;

    // HTTP: pages of 2 in key order, `next` until the last page.
    let (mut seen, mut pages, mut after) = (Vec::new(), 0, None::<String>);
    loop {
        let path = match &after {
            None => "/v1/models/dpf/persons?limit=2".to_owned(),
            Some(cursor) => format!("/v1/models/dpf/persons?limit=2&after={cursor}"),
        };
        let (status, body) = app.get(&dpf, &path).await;
        assert_eq!(status, 200, "{body}");
        let rows = body["rows"].as_array().expect("rows");
        assert!(rows.len() <= 2, "{body}");
        seen.extend(
            rows.iter()
                .map(|r| r["person_ref"].as_str().expect("ref").to_owned()),
        );
        pages += 1;
        match body["next"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen, pages), (persons.clone(), 3));
    // Without a limit, one page of up to 1,000 rows and no `next`.
    let (_, body) = app.get(&dpf, "/v1/models/dpf/persons").await;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(5), "{body}");
    assert_eq!(body["next"], json!(null), "{body}");
    // A bad limit or cursor is a 400 naming the parameter.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("after=%21%21", "after"),
        // base64url of `[1]`: a cursor whose key does not fit the table.
        ("after=WzFd", "after"),
    ] {
        let (status, body) = app
            .get(&dpf, &format!("/v1/models/dpf/persons?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], json!(field), "{query}: {body}");
    }

    // gRPC: the same pages.
    let (mut seen, mut after) = (Vec::new(), String::new());
    loop {
        let request = QueryModelRequest {
            after: after.clone(),
            limit: Some(2),
            ..query("dpf", "persons", None)
        };
        let page = client
            .query_model(grpc_request(&dpf, Some(PURPOSE), request))
            .await
            .expect("page")
            .into_inner();
        seen.extend(
            page.rows
                .iter()
                .filter_map(|r| r.fields.get("person_ref").and_then(text).map(str::to_owned)),
        );
        if page.next.is_empty() {
            break;
        }
        after = page.next;
    }
    assert_eq!(seen, persons);
    let e = client
        .query_model(grpc_request(
            &dpf,
            Some(PURPOSE),
            QueryModelRequest {
                after: "WzFd".into(),
                ..query("dpf", "persons", None)
            },
        ))
        .await
        .expect_err("bad cursor");
    assert_eq!(e.code(), Code::InvalidArgument);
    app.shut_down().await.expect("clean shutdown");
}

#[tokio::test]
async fn each_refusal_has_its_status_on_both_transports() {
    let app = spawn_pg(|s, scratch| {
        let file = scratch.join("revoked");
        std::fs::write(&file, "").expect("write");
        s.revocation_file = Some(file);
    })
    .await;
    let mut client = app.grpc().await;
    let dpf = token("dpf", None);

    // Validation: 400 / INVALID_ARGUMENT, naming the field and the rule.
    let mut bad = register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 22);
    let id = bad["command"]["id_number"].as_str().expect("id").to_owned();
    let wrong = if id.ends_with('1') { "2" } else { "1" };
    bad["command"]["id_number"] = json!(format!("{}{wrong}", &id[..17]));
    let (status, body) = app.post(&dpf, &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], json!("id_number"));
    let e = client
        .submit_command(grpc_request(&dpf, None, grpc_command(&bad)))
        .await
        .expect_err("rejected");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.metadata()
            .get("pathway-error")
            .and_then(|v| v.to_str().ok()),
        Some("rejected")
    );
    let violations = e
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations;
    assert_eq!(violations[0].field, "id_number", "{violations:?}");
    assert!(
        violations[0].description.contains("GB 11643"),
        "{violations:?}"
    );
    // Malformed JSON too.
    let e = client
        .submit_command(grpc_request(
            &dpf,
            None,
            SubmitCommandRequest {
                request: Some(submit_command_request::Request::Command(Command {
                    command_id: Uuid::new_v4().to_string(),
                    envelope_json: "{not json".to_owned(),
                })),
            },
        ))
        .await
        .expect_err("malformed");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Conflict: 409 / ABORTED.
    let (command_id, person) = (Uuid::new_v4(), Uuid::new_v4());
    let first = register(command_id, person, "dpf", NANGANG, NANGANG, 23);
    assert_eq!(app.post(&dpf, &first).await.0, 200);
    let mut other = verify_basic_info(person, NANGANG);
    other["command_id"] = json!(command_id);
    assert_eq!(app.post(&dpf, &other).await.0, 409);
    let e = client
        .submit_command(grpc_request(&dpf, None, grpc_command(&other)))
        .await
        .expect_err("conflict");
    assert_eq!(e.code(), Code::Aborted, "{e:?}");

    // Not allowed: 403 / PERMISSION_DENIED — Education issuing a DPF command,
    // as itself or posing as the DPF, or reading the DPF model.
    let education = token("education", None);
    for envelope in [
        register(
            Uuid::new_v4(),
            Uuid::new_v4(),
            "education",
            NANGANG,
            NANGANG,
            24,
        ),
        register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 25),
    ] {
        assert_eq!(app.post(&education, &envelope).await.0, 403);
        let e = client
            .submit_command(grpc_request(&education, None, grpc_command(&envelope)))
            .await
            .expect_err("forbidden");
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    }
    assert_eq!(app.get(&education, "/v1/models/dpf/persons").await.0, 403);
    let e = client
        .query_model(grpc_request(
            &education,
            Some(PURPOSE),
            query("dpf", "persons", None),
        ))
        .await
        .expect_err("forbidden");
    assert_eq!(e.code(), Code::PermissionDenied);

    // Personal data without a purpose: 400 / INVALID_ARGUMENT.
    let (status, body) = app.get_for(&dpf, "/v1/models/dpf/persons", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], json!("x-pathway-purpose"), "{body}");
    let e = client
        .query_model(grpc_request(&dpf, None, query("dpf", "persons", None)))
        .await
        .expect_err("no purpose");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.get_details_bad_request()
            .expect("BadRequest")
            .field_violations[0]
            .field,
        "x-pathway-purpose"
    );

    // Unauthenticated: 401 / UNAUTHENTICATED — missing, forged, expired, revoked.
    let (expired, _) = token_with_id("dpf", None, -1);
    let (revoked, jti) = token_with_id("dpf", None, 3_600);
    std::fs::write(app.scratch.path().join("revoked"), format!("{jti}\n")).expect("write");
    for bad_token in ["", "pw1.e30.AAAA", expired.as_str(), revoked.as_str()] {
        let (status, reply) = app.get(bad_token, "/v1/models/dpf/persons").await;
        assert_eq!(status, 401, "{reply}");
        let e = client
            .query_model(grpc_request(
                bad_token,
                Some(PURPOSE),
                query("dpf", "persons", None),
            ))
            .await
            .expect_err("unauthenticated");
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    }
    let e = client
        .query_model(grpc_request(&expired, None, query("dpf", "persons", None)))
        .await
        .expect_err("expired");
    assert!(e.message().contains("expired"), "{e:?}");
    let e = client
        .query_model(grpc_request(&revoked, None, query("dpf", "persons", None)))
        .await
        .expect_err("revoked");
    assert!(e.message().contains("revoked"), "{e:?}");
}

#[tokio::test]
async fn over_the_rate_both_transports_answer_with_retry_advice() {
    let app = spawn_pg(|s, _| s.limits.requests_per_second_per_department = 1).await;
    let mut client = app.grpc().await;
    let hrss = token("hrss", None);
    client
        .query_model(grpc_request(&hrss, None, query("hrss", "placements", None)))
        .await
        .expect("first call admitted");
    let e = client
        .query_model(grpc_request(&hrss, None, query("hrss", "placements", None)))
        .await
        .expect_err("over the rate");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(
        e.metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|v| v.to_str().ok()),
        Some("1000")
    );
    assert_eq!(
        e.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );
    // HTTP shares the office's allowance: refused with Retry-After.
    let response = app
        .client
        .get(format!("{}/v1/models/hrss/placements", app.base))
        .bearer_auth(&hrss)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
}

#[tokio::test]
async fn a_city_dpf_cannot_read_another_citys_person_on_either_transport() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    let province = token("dpf", None);
    let harbin = token("dpf", Some(HARBIN));
    let (in_harbin, in_qiqihar) = (Uuid::new_v4(), Uuid::new_v4());
    for (person, region, serial) in [(in_harbin, NANGANG, 26), (in_qiqihar, LONGSHA, 27)] {
        let (status, body) = app
            .post(
                &province,
                &register(Uuid::new_v4(), person, "dpf", region, region, serial),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.wait_ready().await;

    let rows = client
        .query_model(grpc_request(
            &harbin,
            Some(PURPOSE),
            query("dpf", "persons", None),
        ))
        .await
        .expect("own city")
        .into_inner();
    let refs: Vec<&str> = rows
        .rows
        .iter()
        .filter_map(|r| r.fields.get("person_ref").and_then(text))
        .collect();
    assert_eq!(refs, vec![in_harbin.to_string().as_str()]);
    let e = client
        .query_model(grpc_request(
            &harbin,
            Some(PURPOSE),
            query("dpf", "persons", Some(QIQIHAR)),
        ))
        .await
        .expect_err("another city");
    assert_eq!(e.code(), Code::PermissionDenied);
    let (status, _) = app
        .get(&harbin, &format!("/v1/models/dpf/persons?city={QIQIHAR}"))
        .await;
    assert_eq!(status, 403);
    let (_, body) = app.get(&harbin, "/v1/models/dpf/persons").await;
    assert!(
        !body.to_string().contains(&in_qiqihar.to_string()),
        "{body}"
    );
    // Nor serve them, over gRPC either.
    let e = client
        .submit_command(grpc_request(
            &harbin,
            None,
            grpc_command(&verify_basic_info(in_qiqihar, NANGANG)),
        ))
        .await
        .expect_err("another city's resident");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("resides outside"), "{e:?}");
    // A city token cannot follow the provincial view.
    let e = client
        .stream_events(grpc_request(
            &harbin,
            Some(PURPOSE),
            StreamEventsRequest {
                view: String::new(),
                from_position: 1,
            },
        ))
        .await
        .expect_err("city stream");
    assert_eq!(e.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn reads_of_personal_data_append_access_events_with_who_whom_what_and_why() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    let (dpf, dpf_jti) = token_with_id("dpf", Some(HARBIN), 3_600);
    let person = Uuid::new_v4();
    let (status, body) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, 28),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_ready().await;
    assert!(access_events(&app).await.is_empty(), "a command is no read");

    // HTTP, then gRPC, each with its purpose.
    let (status, body) = app
        .get_for(&dpf, "/v1/models/dpf/persons", Some("placement follow-up"))
        .await;
    assert_eq!(status, 200, "{body}");
    client
        .query_model(grpc_request(
            &dpf,
            Some("annual verification"),
            query("dpf", "persons", None),
        ))
        .await
        .expect("rows");
    // Counts are not personal: no event.
    client
        .query_model(grpc_request(&dpf, None, query("dpf", "four_ones", None)))
        .await
        .expect("counts");
    let events = access_events(&app).await;
    assert_eq!(events.len(), 2, "{events:?}");
    for ((envelope, read), (channel, purpose)) in events.iter().zip([
        (pb::AccessChannel::Http, "placement follow-up"),
        (pb::AccessChannel::Grpc, "annual verification"),
    ]) {
        assert_eq!(read.accessor_id, "dpf-tester");
        assert_eq!(read.department, pb::Department::Dpf as i32);
        assert_eq!(read.city, HARBIN);
        assert_eq!(read.token_id, dpf_jti);
        assert_eq!(read.channel, channel as i32);
        assert_eq!(read.operation, "QueryModel");
        assert_eq!(read.resource, "dpf.persons");
        assert_eq!(read.subject_kind, pb::AuditSubjectKind::Person as i32);
        assert_eq!(read.subject_key, "person_ref");
        assert_eq!(read.subject_refs, vec![person.to_string()]);
        assert!(
            read.fields.contains(&"certificate_grade".to_owned()),
            "{read:?}"
        );
        assert_eq!(read.purpose, purpose);
        assert_eq!(read.records_returned, 1);
        assert_eq!((read.part, read.parts), (1, 1));
        assert_eq!(envelope.actor_id, "dpf-tester");
        assert_eq!(envelope.event_type, "PersonalDataAccessed");
    }

    // An auditor's history of the person, over gRPC: recorded too.
    let auditor = token("auditor", None);
    let history_of = |purpose| {
        grpc_request(
            &auditor,
            purpose,
            ReadStreamHistoryRequest {
                subject: Some(read_stream_history_request::Subject::Person(
                    person.to_string(),
                )),
            },
        )
    };
    let e = client
        .read_stream_history(history_of(None))
        .await
        .expect_err("no purpose");
    assert_eq!(e.code(), Code::InvalidArgument);
    let history = client
        .read_stream_history(history_of(Some("audit 2024-07")))
        .await
        .expect("history")
        .into_inner();
    assert!(!history.warranted);
    assert!(!history.entries.is_empty(), "{history:?}");
    assert!(!format!("{history:?}").contains("王伟"), "a name leaked");
    // Departments may not read histories.
    let e = client
        .read_stream_history(grpc_request(
            &dpf,
            Some(PURPOSE),
            ReadStreamHistoryRequest {
                subject: Some(read_stream_history_request::Subject::Person(
                    person.to_string(),
                )),
            },
        ))
        .await
        .expect_err("not an auditor");
    assert_eq!(e.code(), Code::PermissionDenied);
    let events = access_events(&app).await;
    let (_, read) = events.last().expect("history recorded");
    assert_eq!(read.operation, "ReadStreamHistory");
    assert_eq!(read.accessor_id, "auditor-tester");
    assert_eq!(read.department, pb::Department::Auditor as i32);
    assert_eq!(read.subject_refs, vec![person.to_string()]);
    assert_eq!(read.purpose, "audit 2024-07");
    assert!(
        read.fields.contains(&"PersonRegistered.name".to_owned()),
        "{read:?}"
    );
    assert_eq!(read.resource, format!("person-{person} (pseudonymised)"));
    // The history over HTTP, without and with a purpose.
    let path = format!("/v1/audit/history?person={person}");
    assert_eq!(app.get_for(&auditor, &path, None).await.0, 400);
    assert_eq!(app.get(&auditor, &path).await.0, 200);
    assert_eq!(access_events(&app).await.len(), events.len() + 1);
}

async fn next_event(stream: &mut tonic::Streaming<StreamEventsResponse>) -> StreamEventsResponse {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("an event within 20 s")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test]
async fn stream_events_delivers_the_departments_view_in_order_from_a_position() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    let dpf = token("dpf", None);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut positions = Vec::new();
    for (person, serial) in [(a, 29), (b, 30)] {
        let (status, body) = app
            .post(
                &dpf,
                &register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, serial),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        positions.push(body["first_position"].as_u64().expect("position"));
    }
    let (status, body) = app.post(&dpf, &verify_basic_info(a, NANGANG)).await;
    assert_eq!(status, 200, "{body}");
    let verified_at = body["first_position"].as_u64().expect("position");

    // A personal view needs a purpose.
    let e = client
        .stream_events(grpc_request(
            &dpf,
            None,
            StreamEventsRequest {
                view: "dpf".to_owned(),
                from_position: 1,
            },
        ))
        .await
        .expect_err("no purpose");
    assert_eq!(e.code(), Code::InvalidArgument);
    // Another department's view is refused.
    let e = client
        .stream_events(grpc_request(
            &dpf,
            Some(PURPOSE),
            StreamEventsRequest {
                view: "civil_affairs".to_owned(),
                from_position: 1,
            },
        ))
        .await
        .expect_err("not its view");
    assert_eq!(e.code(), Code::PermissionDenied);

    // From the second registration: it, the verification, then live.
    let mut stream = client
        .stream_events(grpc_request(
            &dpf,
            Some("case work"),
            StreamEventsRequest {
                view: String::new(),
                from_position: positions[1],
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    let first = next_event(&mut stream).await;
    assert_eq!(first.position, positions[1]);
    assert_eq!(first.event_type, "PersonRegistered");
    let any = first.view.as_ref().expect("view");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/pathway.views.v1.DpfEvent"
    );
    let view = views::DpfEvent::decode(any.value.as_slice()).expect("a DpfEvent");
    assert_eq!(view.position, positions[1]);
    assert!(format!("{view:?}").contains(&b.to_string()), "{view:?}");
    let second = next_event(&mut stream).await;
    assert_eq!(
        (second.position, second.event_type.as_str()),
        (verified_at, "BasicInfoVerified")
    );
    // Live: a command after the stream opened arrives next; the ID-number
    // reservation (no department's view) and access events never do.
    let c = Uuid::new_v4();
    let (status, body) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), c, "dpf", NANGANG, NANGANG, 31),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let live = next_event(&mut stream).await;
    assert_eq!(live.position, body["first_position"].as_u64().expect("pos"));
    assert!(live.position > second.position);
    drop(stream);

    // Each delivered batch was recorded, naming the persons it showed.
    let events = access_events(&app).await;
    let streamed: Vec<&pb::PersonalDataAccessed> = events
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.operation == "StreamEvents")
        .collect();
    assert!(!streamed.is_empty(), "{events:?}");
    let persons: Vec<&String> = streamed.iter().flat_map(|r| &r.subject_refs).collect();
    assert!(persons.contains(&&b.to_string()), "{streamed:?}");
    assert!(persons.contains(&&c.to_string()), "{streamed:?}");
    assert!(streamed.iter().all(|r| r.purpose == "case work"));
    assert!(
        streamed
            .iter()
            .flat_map(|r| &r.fields)
            .any(|f| f == "registered.sex"),
        "{streamed:?}"
    );

    // HRSS sees only its own view: consent events, not registrations.
    let hrss = token("hrss", None);
    let consent = json!({
        "command_id": Uuid::new_v4(),
        "department": "dpf",
        "region": NANGANG,
        "actor": "worker-1",
        "at": "2023-03-02T10:00:00+08:00",
        "command": {"aggregate": "person", "type": "grant_consent", "person_ref": a, "purpose": "refer_to_hrss"}
    });
    let (status, body) = app.post(&dpf, &consent).await;
    assert_eq!(status, 200, "{body}");
    let consent_at = body["first_position"].as_u64().expect("position");
    let mut stream = client
        .stream_events(grpc_request(
            &hrss,
            Some(PURPOSE),
            StreamEventsRequest {
                view: "hrss".to_owned(),
                from_position: 1,
            },
        ))
        .await
        .expect("hrss stream")
        .into_inner();
    let only = next_event(&mut stream).await;
    assert_eq!(
        (only.position, only.event_type.as_str()),
        (consent_at, "ConsentGranted")
    );
    assert_eq!(
        only.view.as_ref().map(|v| v.type_url.as_str()),
        Some("type.googleapis.com/pathway.views.v1.HrssEvent")
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_the_position_to_resume_from() {
    let app = spawn_pg(|_, _| {}).await;
    let mut client = app.grpc().await;
    // The committee's view holds no personal data: no purpose needed.
    let mut stream = client
        .stream_events(grpc_request(
            &token("committee", None),
            None,
            StreamEventsRequest {
                view: String::new(),
                from_position: 1,
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), app.shut_down())
        .await
        .expect("shutdown is not held up by an open stream")
        .expect("clean shutdown");
    let e = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends")
        .expect_err("with a status");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("resume from position 1"), "{e:?}");
}
