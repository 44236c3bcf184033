//! Erasure: after `erase_data`, the person's personal fields are gone from
//! every read model and API answer, the whole log still verifies, and a
//! rebuild of every read model keeps them erased.

use pathway_projections::{
    models,
    runtime::{self, ProjectorOptions, ReadStore},
};
use pathway_store::EventStore;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{self, MASTER_KEY, register, resident_id, token};

const OFFICE: &str = "230102";

fn certificate(person_ref: Uuid, id_number: &str) -> Value {
    json!({
        "command_id": Uuid::new_v4(),
        "department": "dpf",
        "region": OFFICE,
        "actor": "worker-1",
        "at": "2023-03-02T10:00:00+08:00",
        "command": {
            "aggregate": "person",
            "type": "record_certificate",
            "person_ref": person_ref,
            "certificate_number": format!("{id_number}42"),
            "certificate_hmac": format!("{:064x}", Uuid::new_v4().as_u128()),
            "valid_from": "2021-06-01",
            "valid_until": "2031-05-31",
            "issuing_org": format!("{OFFICE}-dpf"),
        }
    })
}

fn erase(person_ref: Uuid) -> Value {
    json!({
        "command_id": Uuid::new_v4(),
        "department": "dpf",
        "region": OFFICE,
        "actor": "dpf-data-officer",
        "at": "2024-12-01T10:00:00+08:00",
        "command": {
            "aggregate": "person",
            "type": "erase_data",
            "person_ref": person_ref,
            "key_id": person_ref,
            "reason": "the person asked for erasure",
            "authorised_by": "230100-dpf-data-officer",
        }
    })
}

/// A dibao household of `person` (Civil Affairs), then their placement.
fn household_and_placement(person_ref: Uuid) -> [Value; 2] {
    [
        json!({
            "command_id": Uuid::new_v4(),
            "department": "civil_affairs",
            "region": OFFICE,
            "actor": "ca-officer-9",
            "at": "2023-03-05T10:00:00+08:00",
            "command": {
                "aggregate": "household", "type": "assert_low_income_status",
                "household_ref": format!("hh-{person_ref}"), "members": [person_ref],
                "status": "dibao", "effective_on": "2023-01-01",
                "asserted_by": format!("{OFFICE}-civil-affairs"),
            }
        }),
        json!({
            "command_id": Uuid::new_v4(),
            "department": "dpf",
            "region": OFFICE,
            "actor": "worker-1",
            "at": "2023-08-01T10:00:00+08:00",
            "command": {
                "aggregate": "person", "type": "place_person", "person_ref": person_ref,
                "placement_id": format!("pl-{person_ref}"), "employment_form": "quota",
                "employer_uscc": "91230100MA1C2D3E44", "start_date": "2023-08-01",
                "contract_type": "labour_contract", "contract_months": 24,
                "monthly_wage_fen": WAGE_FEN, "wage_at_least_minimum": true,
                "social_insurance_paid": true, "post_id": null, "region": OFFICE,
            }
        }),
    ]
}

const WAGE_FEN: i64 = 260_000;

/// The person's wage in Civil Affairs' member employment table.
async fn wage(app: &helpers::TestApp, person_ref: Uuid) -> Value {
    let ca = token("civil_affairs", None);
    let (status, body) = app
        .get(&ca, "/v1/models/civil_affairs/member_employment")
        .await;
    assert_eq!(status, 200, "{body}");
    body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["person_ref"] == json!(person_ref.to_string()))
        .unwrap_or_else(|| panic!("no placement of {person_ref} in {body}"))["monthly_wage_fen"]
        .clone()
}

/// The person's row of the DPF case registry, as the API answers it.
async fn person_row(app: &helpers::TestApp, dpf: &str, person_ref: Uuid) -> Value {
    let (status, body) = app.get(dpf, "/v1/models/dpf/persons").await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().expect("rows");
    rows.iter()
        .find(|r| r["person_ref"] == json!(person_ref.to_string()))
        .unwrap_or_else(|| panic!("no row for {person_ref} in {body}"))
        .clone()
}

#[tokio::test]
async fn erasure_removes_personal_fields_everywhere_and_the_log_still_verifies() {
    let app = helpers::spawn_pg(|_, _| {}).await;
    let dpf = token("dpf", None);
    let (erased, kept) = (Uuid::new_v4(), Uuid::new_v4());
    for (serial, person) in [(11, erased), (12, kept)] {
        let (status, body) = app
            .post(
                &dpf,
                &register(Uuid::new_v4(), person, "dpf", OFFICE, OFFICE, serial),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let id_number = resident_id(OFFICE, serial);
        let (status, body) = app.post(&dpf, &certificate(person, &id_number)).await;
        assert_eq!(status, 200, "{body}");
        for command in household_and_placement(person) {
            let dept = command["department"]
                .as_str()
                .expect("department")
                .to_owned();
            let (status, body) = app.post(&token(&dept, None), &command).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    app.wait_ready().await;
    for person in [erased, kept] {
        let row = person_row(&app, &dpf, person).await;
        assert_eq!(row["certificate_category"], json!(4), "{row}");
        assert_eq!(row["certificate_grade"], json!(2), "{row}");
        assert_eq!(wage(&app, person).await, json!(WAGE_FEN));
    }

    let (status, body) = app.post(&dpf, &erase(erased)).await;
    assert_eq!(status, 200, "{body}");
    app.wait_ready().await;
    let row = person_row(&app, &dpf, erased).await;
    assert_eq!(row["certificate_category"], Value::Null, "{row}");
    assert_eq!(row["certificate_grade"], Value::Null, "{row}");
    let row = person_row(&app, &dpf, kept).await;
    assert_eq!(
        row["certificate_grade"],
        json!(2),
        "another person is untouched: {row}"
    );
    assert_eq!(wage(&app, erased).await, Value::Null);
    assert_eq!(wage(&app, kept).await, json!(WAGE_FEN));

    // The auditors' history shows the fields as erased, never their values.
    let auditor = token("auditor", None);
    let (status, history) = app
        .get(&auditor, &format!("/v1/audit/history?person={erased}"))
        .await;
    assert_eq!(status, 200, "{history}");
    let text = history.to_string();
    assert!(text.contains("[personal, erased]"), "{text}");
    assert!(!text.contains("王伟"), "{text}");
    assert!(!text.contains(&resident_id(OFFICE, 11)), "{text}");

    // The key is destroyed; the log is as it was, and verifies.
    let store = app.store().await;
    let client = pathway_testkit::connect(app.database_url()).await;
    let live: Option<Vec<u8>> = client
        .query_one(
            "SELECT wrapped FROM pathway_keys.data_keys WHERE key_id = $1",
            &[&erased.to_string()],
        )
        .await
        .expect("key row")
        .get(0);
    assert_eq!(live, None, "the data key is destroyed");
    // The workflows may still append (a placed member of a dibao household
    // starts its phase-out), so the chain is verified up to a head read first.
    let head = store.head().await.expect("head").position;
    let report = store.verify(1, Some(head)).await.expect("verify");
    assert_eq!(report.first_break, None);
    assert_eq!(report.checked, head);

    // A rebuild of every read model from the log keeps the fields erased.
    let keyring = pathway_keys::postgres_keyring(
        store.pool().clone(),
        pathway_keys::MasterKey::from_base64(MASTER_KEY).expect("master key"),
    )
    .await
    .expect("keyring");
    let options = ProjectorOptions {
        keyring: Some(keyring),
        ..ProjectorOptions::default()
    };
    let target = ReadStore::Postgres {
        url: app.database_url().to_owned(),
    };
    runtime::rebuild_many_with(&store, &target, &models::all(), &options)
        .await
        .expect("rebuild");
    let row = person_row(&app, &dpf, erased).await;
    assert_eq!(
        row["certificate_grade"],
        Value::Null,
        "after rebuild: {row}"
    );
    let row = person_row(&app, &dpf, kept).await;
    assert_eq!(row["certificate_grade"], json!(2), "after rebuild: {row}");
    assert_eq!(wage(&app, erased).await, Value::Null, "after rebuild");
    assert_eq!(wage(&app, kept).await, json!(WAGE_FEN), "after rebuild");
    app.shut_down().await.expect("clean shutdown");
}
