//! Every route and every status code of the API, on real PostgreSQL, plus
//! one run on the embedded store.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{register, spawn_embedded, spawn_pg, token, token_with_id, verify_basic_info};

const HARBIN: &str = "230100";
const NANGANG: &str = "230102";
const LONGSHA: &str = "230202";

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_pg(|_, _| {}).await;
    assert_eq!(app.get_text("/healthz").await.0, 200);
    let dpf = token("dpf", None);
    let (status, body) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 1),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_ready().await;
    let (status, metrics) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("pathway_commands_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pathway_command_append_seconds_count{aggregate=\"person\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pathway_projector_lag_positions{model=\"dpf\"} 0"),
        "{metrics}"
    );
    app.shut_down().await.expect("clean shutdown");
}

#[tokio::test]
async fn readiness_is_503_while_models_are_not_followed() {
    let app = spawn_pg(|s, _| s.projectors = false).await;
    let dpf = token("dpf", None);
    let (status, _) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 2),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.get_text("/readyz").await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn a_dpf_registration_is_read_back_from_the_dpf_model() {
    let app = spawn_pg(|_, _| {}).await;
    let dpf = token("dpf", None);
    let person = Uuid::new_v4();
    let (status, body) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, 3),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], json!(["PersonRegistered"]));
    app.wait_ready().await;
    let (status, body) = app.get(&dpf, "/v1/models/dpf/persons").await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0]["person_ref"], json!(person.to_string()));
    assert_eq!(rows[0]["city"], json!(HARBIN));
    // Working tables and unknown models are not served.
    assert_eq!(
        app.get(&dpf, "/v1/models/dpf/lookup_placements").await.0,
        404
    );
    assert_eq!(app.get(&dpf, "/v1/models/nope/persons").await.0, 404);
}

#[tokio::test]
async fn a_city_dpf_acts_and_reads_only_for_its_city() {
    let app = spawn_pg(|_, _| {}).await;
    let province = token("dpf", None);
    let harbin = token("dpf", Some(HARBIN));
    let (in_harbin, in_qiqihar) = (Uuid::new_v4(), Uuid::new_v4());
    let (status, body) = app
        .post(
            &province,
            &register(Uuid::new_v4(), in_qiqihar, "dpf", LONGSHA, LONGSHA, 4),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(
            &harbin,
            &register(Uuid::new_v4(), in_harbin, "dpf", NANGANG, NANGANG, 5),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Registering a resident of another city, even from a Harbin office.
    let (status, body) = app
        .post(
            &harbin,
            &register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, LONGSHA, 6),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("residence_region"),
        "{body}"
    );
    // Acting from an office in another city.
    let (status, _) = app
        .post(
            &harbin,
            &register(Uuid::new_v4(), Uuid::new_v4(), "dpf", LONGSHA, NANGANG, 7),
        )
        .await;
    assert_eq!(status, 403);
    // Serving a person who resides in another city.
    let (status, body) = app
        .post(&harbin, &verify_basic_info(in_qiqihar, NANGANG))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("resides outside"),
        "{body}"
    );
    let (status, body) = app
        .post(&harbin, &verify_basic_info(in_harbin, NANGANG))
        .await;
    assert_eq!(status, 200, "{body}");

    app.wait_ready().await;
    let (status, body) = app.get(&harbin, "/v1/models/dpf/persons").await;
    assert_eq!(status, 200, "{body}");
    let refs: Vec<&str> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["person_ref"].as_str())
        .collect();
    assert_eq!(refs, vec![in_harbin.to_string().as_str()], "{body}");
    let (status, _) = app.get(&harbin, "/v1/models/dpf/persons?city=230200").await;
    assert_eq!(status, 403);
    // The province sees both cities.
    let (_, body) = app.get(&province, "/v1/models/dpf/persons").await;
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test]
async fn education_cannot_issue_a_dpf_command_or_read_dpf_rows() {
    let app = spawn_pg(|_, _| {}).await;
    let education = token("education", None);
    // As itself: the policy does not grant it the command.
    let (status, body) = app
        .post(
            &education,
            &register(
                Uuid::new_v4(),
                Uuid::new_v4(),
                "education",
                NANGANG,
                NANGANG,
                8,
            ),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("may not issue person.register_person"),
        "{body}"
    );
    // Posing as the DPF: the token's department must be the envelope's.
    let (status, body) = app
        .post(
            &education,
            &register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 9),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app.get(&education, "/v1/models/dpf/persons").await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&education, "/v1/models/education/cohorts").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn missing_forged_expired_and_revoked_tokens_are_401() {
    let app = spawn_pg(|s, scratch| {
        let file = scratch.join("revoked");
        std::fs::write(&file, "# revoked token ids\n").expect("write");
        s.revocation_file = Some(file);
    })
    .await;
    let body = register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 10);
    let (status, reply) = app.post("", &body).await;
    assert_eq!(status, 401, "{reply}");
    let (status, _) = app.post("pw1.e30.AAAA", &body).await;
    assert_eq!(status, 401);
    let (expired, _) = token_with_id("dpf", None, -1);
    let (status, reply) = app.post(&expired, &body).await;
    assert_eq!(status, 401);
    assert!(
        reply["message"].as_str().unwrap_or("").contains("expired"),
        "{reply}"
    );

    let (good, jti) = token_with_id("dpf", None, 3_600);
    assert_eq!(app.get(&good, "/v1/models/dpf/persons").await.0, 200);
    std::fs::write(
        app.scratch.path().join("revoked"),
        format!("{jti}  # lost laptop\n"),
    )
    .expect("write");
    let (status, reply) = app.get(&good, "/v1/models/dpf/persons").await;
    assert_eq!(status, 401);
    assert!(
        reply["message"].as_str().unwrap_or("").contains("revoked"),
        "{reply}"
    );
    let (status, _) = app.post(&good, &body).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_retried_command_returns_its_first_result_and_a_reused_id_is_409() {
    let app = spawn_pg(|_, _| {}).await;
    let dpf = token("dpf", None);
    let (command_id, person) = (Uuid::new_v4(), Uuid::new_v4());
    let first = register(command_id, person, "dpf", NANGANG, NANGANG, 11);
    let (status, a) = app.post(&dpf, &first).await;
    assert_eq!(status, 200, "{a}");
    let (status, b) = app.post(&dpf, &first).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(a, b);
    assert_eq!(a["first_position"], b["first_position"]);

    // The same command id on the same stream for other content.
    let mut other = verify_basic_info(person, NANGANG);
    other["command_id"] = json!(command_id);
    let (status, body) = app.post(&dpf, &other).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], json!("conflict"));
}

#[tokio::test]
async fn rejections_are_400_with_field_and_rule() {
    let app = spawn_pg(|_, _| {}).await;
    let dpf = token("dpf", None);
    let mut bad = register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 12);
    let id = bad["command"]["id_number"].as_str().expect("id").to_owned();
    let wrong = if id.ends_with('1') { "2" } else { "1" };
    bad["command"]["id_number"] = json!(format!("{}{wrong}", &id[..17]));
    let (status, body) = app.post(&dpf, &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], json!("rejected"));
    assert_eq!(body["field"], json!("id_number"));
    assert!(
        body["rule"].as_str().unwrap_or("").contains("GB 11643"),
        "{body}"
    );

    let (status, body) = app.post_raw(&dpf, "{not json".to_owned()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!("malformed"));
    let mut unknown = verify_basic_info(Uuid::new_v4(), NANGANG);
    unknown["colour"] = json!("blue");
    let (status, body) = app.post(&dpf, &unknown).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn over_the_rate_a_department_gets_429_with_retry_after() {
    let app = spawn_pg(|s, _| s.limits.requests_per_second_per_department = 1).await;
    let dpf = token("dpf", None);
    let url = format!("{}/v1/models/dpf/persons", app.base);
    let first = app
        .client
        .get(&url)
        .bearer_auth(&dpf)
        .header("x-pathway-purpose", "case review")
        .send()
        .await
        .expect("send");
    assert_eq!(first.status().as_u16(), 200);
    let second = app
        .client
        .get(&url)
        .bearer_auth(&dpf)
        .header("x-pathway-purpose", "case review")
        .send()
        .await
        .expect("send");
    assert_eq!(second.status().as_u16(), 429);
    let retry_after = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(retry_after, Some(1));
    // Another department has its own allowance.
    assert_eq!(
        app.get(&token("hrss", None), "/v1/models/hrss/job_seekers")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn bodies_and_batches_over_their_limits_are_413() {
    let app = spawn_pg(|s, _| {
        s.limits.request_body_bytes_max = 4_096;
        s.limits.commands_per_batch_max = 2;
    })
    .await;
    let dpf = token("dpf", None);
    let mut big = register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 13);
    big["command"]["address"] = json!("长".repeat(2_000));
    let (status, body) = app.post(&dpf, &big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], json!("too_large"));

    let one = || register(Uuid::new_v4(), Uuid::new_v4(), "dpf", NANGANG, NANGANG, 14);
    let (status, body) = app.post(&dpf, &json!([one(), one(), one()])).await;
    assert_eq!(status, 413, "{body}");
    // Within the limit, a batch answers each command on its own.
    let (status, body) = app
        .post(
            &dpf,
            &json!([one(), verify_basic_info(Uuid::new_v4(), NANGANG)]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], json!(200), "{body}");
    assert_eq!(body["results"][1]["status"], json!(400), "{body}");
}

#[tokio::test]
async fn the_embedded_store_serves_commands_and_queries() {
    let app = spawn_embedded(|_, _| {}).await;
    let harbin = token("dpf", Some(HARBIN));
    let person = Uuid::new_v4();
    let (status, body) = app
        .post(
            &harbin,
            &register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, 15),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.post(&harbin, &verify_basic_info(person, NANGANG)).await;
    assert_eq!(status, 200, "{body}");
    app.wait_ready().await;
    let (status, body) = app.get(&harbin, "/v1/models/dpf/four_ones?year=2023").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["city"], json!(HARBIN), "{body}");
    assert_eq!(body["rows"][0]["verified"], json!(1), "{body}");
    app.shut_down().await.expect("clean shutdown");
}

#[tokio::test]
async fn auditors_replay_a_model_as_of_a_date_and_read_a_pseudonymised_history() {
    let app = spawn_pg(|_, _| {}).await;
    let dpf = token("dpf", None);
    let auditor = token("auditor", None);
    let person = Uuid::new_v4();
    let (status, body) = app
        .post(
            &dpf,
            &register(Uuid::new_v4(), person, "dpf", NANGANG, NANGANG, 7),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The registration happened on 2023-03-01: a year-end replay of 2023 has
    // the person, one of 2022 does not.
    let (status, body) = app
        .get(
            &auditor,
            "/v1/audit/replay/dpf?as_of=2023-12-31T23:59:59%2B08:00",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let persons = body["tables"]["persons"].as_array().expect("persons");
    assert_eq!(persons.len(), 1, "{body}");
    assert_eq!(persons[0]["person_ref"], json!(person.to_string()));
    let (status, body) = app
        .get(
            &auditor,
            "/v1/audit/replay/dpf?as_of=2022-12-31T23:59:59%2B08:00",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tables"]["persons"], json!([]), "{body}");

    // The history names who did what; personal values stay pseudonymised
    // without a warrant.
    let (status, body) = app
        .get(&auditor, &format!("/v1/audit/history?person={person}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["warranted"], json!(false));
    let entries = body["entries"].as_array().expect("entries");
    let registered = entries
        .iter()
        .find(|e| e["event_type"] == json!("PersonRegistered"))
        .unwrap_or_else(|| panic!("no registration in {body}"));
    assert_eq!(
        registered["actor_department"],
        json!("DEPARTMENT_DPF"),
        "{registered}"
    );
    assert!(!body.to_string().contains("王伟"), "a name leaked: {body}");

    // Only auditors may use these routes; bad input is a clear 400 / 404.
    assert_eq!(
        app.get(&dpf, &format!("/v1/audit/history?person={person}"))
            .await
            .0,
        403
    );
    assert_eq!(
        app.get(&auditor, "/v1/audit/replay/dpf?as_of=yesterday")
            .await
            .0,
        400
    );
    assert_eq!(app.get(&auditor, "/v1/audit/history").await.0, 400);
    assert_eq!(
        app.get(
            &auditor,
            "/v1/audit/replay/nosuch?as_of=2023-12-31T23:59:59%2B08:00"
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn the_committee_reads_small_cells_suppressed() {
    // Harbin's 2023 basic-information checks: one person, below the
    // policy's small-cell minimum of 5, is served as "<5"; Qiqihar's five
    // are served as they are.
    let app = spawn_embedded(|_, _| {}).await;
    let dpf = token("dpf", None);
    let mut serial = 10;
    for (county, persons) in [(NANGANG, 1), (LONGSHA, 5)] {
        for _ in 0..persons {
            let person = Uuid::new_v4();
            serial += 1;
            for body in [
                register(Uuid::new_v4(), person, "dpf", county, county, serial),
                verify_basic_info(person, county),
            ] {
                let (status, reply) = app.post(&dpf, &body).await;
                assert_eq!(status, 200, "{reply}");
            }
        }
    }
    app.wait_ready().await;
    let committee = token("committee", None);
    let (status, body) = app
        .get(&committee, "/v1/models/committee/four_ones?year=2023")
        .await;
    assert_eq!(status, 200, "{body}");
    let verified: std::collections::BTreeMap<String, serde_json::Value> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["city"].as_str().unwrap().to_owned(),
                row["verified"].clone(),
            )
        })
        .collect();
    assert_eq!(
        verified,
        [
            (HARBIN.to_owned(), json!("<5")),
            ("230200".to_owned(), json!(5))
        ]
        .into(),
        "{body}"
    );
}
