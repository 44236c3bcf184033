//! Commands in, rows out: the documented command history (every example line
//! of `docs/commands.md`, one consistent story) goes through the engine on
//! each backend, the six department models catch up, and every public table
//! must equal the checked-in snapshot `e2e_rows.txt` — on SQLite and on
//! PostgreSQL alike. Then no department's rows may hold a value it must not
//! see.
//!
//! Update the snapshot after an intended change with
//! `UPDATE_EXPECT=1 cargo test -p pathway-projections --test it e2e` and
//! review its diff.

use std::sync::Arc;

use pathway_engine::{Engine, json};
use pathway_projections::{
    Value, models,
    runtime::{self, ReadStore},
};
use pathway_store::{EventStore, embedded::EmbeddedStore, postgres::PostgresStore};

use crate::runtime::TestDb;

/// The example lines of docs/commands.md.
fn scenario() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/commands.md");
    let text = std::fs::read_to_string(path).expect("docs/commands.md is readable");
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("{\"command_id\""))
        .map(str::to_owned)
        .collect();
    assert!(
        lines.len() >= 40,
        "docs/commands.md has {} example lines",
        lines.len()
    );
    lines
}

async fn apply_all<S: EventStore + Clone>(store: &S) {
    let engine = Engine::unsealed(store.clone());
    for (n, line) in scenario().iter().enumerate() {
        let parsed = json::parse(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        json::apply(&engine, &parsed)
            .await
            .unwrap_or_else(|e| panic!("line {} ({}): {e}", n + 1, parsed.name));
    }
}

/// Every public table of every model, one line per row.
fn dump(target: &ReadStore) -> String {
    let mut out = String::new();
    for p in models::all() {
        for table in p.tables().iter().filter(|t| !t.name.starts_with("lookup_")) {
            let rows = runtime::query(target, p.name(), table, &[]).expect("query");
            out.push_str(&format!(
                "{}.{} ({} rows)\n",
                p.name(),
                table.name,
                rows.len()
            ));
            for row in rows {
                let cells: Vec<String> = table
                    .columns()
                    .zip(&row)
                    .map(|(c, v)| match v {
                        Value::Null => format!("{}=-", c.name),
                        Value::Bool(b) => format!("{}={b}", c.name),
                        Value::Int(i) => format!("{}={i}", c.name),
                        Value::Text(s) => format!("{}={s}", c.name),
                    })
                    .collect();
                out.push_str(&format!("  {}\n", cells.join(" ")));
            }
        }
    }
    out
}

async fn project<S: EventStore + Clone>(store: &S, target: &ReadStore) -> String {
    for p in models::all() {
        runtime::catch_up(store, target, Arc::clone(&p))
            .await
            .expect("catch up");
    }
    dump(target)
}

/// Values of the scenario that only some departments may see.
fn check_minimisation(rows: &str) {
    let mut model = "";
    for line in rows.lines() {
        if !line.starts_with(' ') {
            model = line.split('.').next().unwrap_or("");
            continue;
        }
        // The ID number and name never reach a read model.
        for secret in ["23010219900412015X", "王伟", "13904510000"] {
            assert!(!line.contains(secret), "{model}: {line}");
        }
        // Wages and household incomes: Civil Affairs only.
        if model != "civil_affairs" {
            let values: Vec<&str> = line
                .split_whitespace()
                .filter_map(|cell| cell.split_once('=').map(|(_, v)| v))
                .collect();
            for amount in ["260000", "80000", "82000"] {
                assert!(!values.contains(&amount), "{model} sees an amount: {line}");
            }
            assert!(
                !line.contains("dibao"),
                "{model} sees a low-income status: {line}"
            );
        }
        // Disability grade and category: the DPF only.
        if model != "dpf" {
            assert!(
                !line.contains("grade") && !line.contains("category"),
                "{model}: {line}"
            );
        }
        // No individual for SASAC and the committee.
        if matches!(model, "sasac" | "committee") {
            assert!(!line.contains("person_ref"), "{model}: {line}");
        }
    }
}

#[tokio::test]
async fn documented_commands_give_the_expected_rows_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("open");
    apply_all(&store).await;
    let rows = project(
        &store,
        &ReadStore::Sqlite {
            dir: dir.path().join("models"),
        },
    )
    .await;
    expect_test::expect_file!["e2e_rows.txt"].assert_eq(&rows);
    check_minimisation(&rows);
}

#[tokio::test]
async fn documented_commands_give_the_same_rows_on_postgres() {
    let db = TestDb::create();
    let store = PostgresStore::connect(db.url()).await.expect("connect");
    apply_all(&store).await;
    let rows = project(
        &store,
        &ReadStore::Postgres {
            url: db.url().to_owned(),
        },
    )
    .await;
    expect_test::expect_file!["e2e_rows.txt"].assert_eq(&rows);
    check_minimisation(&rows);
}
