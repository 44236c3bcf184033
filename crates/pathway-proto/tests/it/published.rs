//! Golden binary fixtures of every message Pathway publishes to, or receives
//! from, other agencies: the department views (`pathway.views.v1`) and the
//! graduate exchange (`pathway.exchange.v1`).
//!
//! As for the events, a sample of each message is built by reflection with
//! every field set to a value derived from its number; a message with a oneof
//! gets one fixture per member. The bytes live under
//! `tests/fixtures/<package>/v1/`. Regenerate deliberately with
//! `PATHWAY_UPDATE_FIXTURES=1 cargo test -p pathway-proto` together with the
//! schema change.

use std::{collections::BTreeSet, fs, path::PathBuf};

use pathway_proto::{Message, PUBLISHED_DESCRIPTOR_SET};
use prost_reflect::DescriptorPool;

use crate::sample::{assert_enums_start_unspecified, sample};

const PACKAGES: &[(&str, &str)] = &[
    ("pathway.views.v1", "views/v1"),
    ("pathway.exchange.v1", "exchange/v1"),
];

fn pool() -> DescriptorPool {
    DescriptorPool::decode(PUBLISHED_DESCRIPTOR_SET).expect("the published descriptor set decodes")
}

fn fixture_dir(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

/// Every (fixture file, bytes) of the published schema.
fn samples() -> Vec<(PathBuf, Vec<u8>)> {
    let pool = pool();
    let mut out = Vec::new();
    for &(package, dir) in PACKAGES {
        for m in pool.all_messages().filter(|m| m.package_name() == package) {
            let oneof_members: Vec<(String, u32)> = m
                .oneofs()
                .flat_map(|o| o.fields().collect::<Vec<_>>())
                .map(|f| (f.name().to_owned(), f.number()))
                .collect();
            if oneof_members.is_empty() {
                let bytes = sample(&m, 0, None).encode_to_vec();
                out.push((fixture_dir(dir).join(format!("{}.bin", m.name())), bytes));
            } else {
                for (name, number) in oneof_members {
                    let bytes = sample(&m, 0, Some(number)).encode_to_vec();
                    out.push((
                        fixture_dir(dir).join(format!("{}.{name}.bin", m.name())),
                        bytes,
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn every_published_message_has_a_golden_fixture() {
    let update = std::env::var_os("PATHWAY_UPDATE_FIXTURES").is_some();
    for (path, bytes) in samples() {
        if update {
            fs::create_dir_all(path.parent().expect("fixture dir")).expect("create fixture dir");
            fs::write(&path, &bytes).expect("write fixture");
            continue;
        }
        let stored = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "fixture {} missing ({e}); a new published message needs a fixture: run PATHWAY_UPDATE_FIXTURES=1 cargo test -p pathway-proto",
                path.display()
            )
        });
        assert_eq!(
            stored,
            bytes,
            "wire format of {} changed: published v1 messages are frozen (add fields with new numbers, reserve removed ones, or start v2)",
            path.display()
        );
    }
}

#[test]
fn no_published_fixture_without_a_message() {
    let expected: BTreeSet<PathBuf> = samples().into_iter().map(|(p, _)| p).collect();
    for &(_, dir) in PACKAGES {
        let Ok(entries) = fs::read_dir(fixture_dir(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("fixture entry").path();
            assert!(
                expected.contains(&path),
                "fixture {} has no message in the schema",
                path.display()
            );
        }
    }
}

#[test]
fn published_fixtures_decode_with_the_generated_types() {
    use pathway_proto::{exchange::v1 as ex, views::v1 as views};
    let dir = fixture_dir("views/v1");
    let bytes = fs::read(dir.join("DpfEvent.bin")).expect("DpfEvent fixture");
    let event = views::DpfEvent::decode(bytes.as_slice()).expect("DpfEvent decodes");
    assert_eq!(event.encode_to_vec(), bytes);
    let bytes = fs::read(dir.join("AuditRecord.bin")).expect("AuditRecord fixture");
    let record = views::AuditRecord::decode(bytes.as_slice()).expect("AuditRecord decodes");
    assert_eq!(record.encode_to_vec(), bytes);
    let bytes = fs::read(fixture_dir("exchange/v1").join("CohortBatch.bin")).expect("batch");
    let batch = ex::CohortBatch::decode(bytes.as_slice()).expect("CohortBatch decodes");
    assert_eq!(batch.encode_to_vec(), bytes);
}

#[test]
fn every_published_enum_starts_with_unspecified() {
    assert_enums_start_unspecified(&pool());
}
