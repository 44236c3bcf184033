//! The graduate exchange, inbound side: checking a cohort batch from
//! Education before anything of it is applied.
//!
//! [`validate_batch`] accepts a batch only if it is within
//! [`EXCHANGE_BATCH_BYTES_MAX`], decodes as `pathway.exchange.v1.CohortBatch`
//! with no field outside the schema (the allow-list: unknown fields are
//! rejected, not skipped), carries [`ExchangeVersion::ExchangeVersion1`],
//! announces exactly as many records as it holds (at most
//! [`COHORT_RECORDS_MAX`]), and every record carries a 32-byte keyed hash and
//! no plain ID number anywhere. Otherwise the answer is the
//! `CohortRejected` to publish back, naming the rule and the record index
//! and field, never the offending value.
//!
//! (A keyed hash cannot be told from a plain SHA-256 of the number by its
//! bytes; the exchange key is what makes it keyed, and matching fails for a
//! batch hashed without it.)

use pathway_domain::graduates::COHORT_RECORDS_MAX;
use pathway_proto::Message;
use pathway_proto::exchange::v1::{
    CohortBatch, CohortRejected, ExchangeVersion, GraduateLevel, RejectionReason,
};
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

/// Largest cohort batch accepted, in bytes.
pub const EXCHANGE_BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Length of a keyed hash (HMAC-SHA-256) of an ID number, in bytes.
const ID_HMAC_BYTES: usize = 32;
/// Longest school or major name, in characters.
const NAME_CHARS_MAX: usize = 200;

fn reject(batch_id: &str, reason: RejectionReason, detail: String) -> CohortRejected {
    CohortRejected {
        batch_id: batch_id.to_owned(),
        reason: reason as i32,
        detail,
    }
}

/// Checks a batch as received; see the module docs.
pub fn validate_batch(bytes: &[u8]) -> Result<CohortBatch, CohortRejected> {
    if bytes.len() > EXCHANGE_BATCH_BYTES_MAX {
        return Err(reject(
            "",
            RejectionReason::Oversized,
            format!(
                "batch is {} bytes, at most {EXCHANGE_BATCH_BYTES_MAX} are accepted",
                bytes.len()
            ),
        ));
    }
    let batch = CohortBatch::decode(bytes).map_err(|e| {
        reject(
            "",
            RejectionReason::Malformed,
            format!("not a pathway.exchange.v1.CohortBatch: {e}"),
        )
    })?;
    let id = batch.batch_id.clone();
    if let Some(path) = unknown_field(bytes) {
        return Err(reject(
            &id,
            RejectionReason::FieldNotAllowed,
            format!("{path} carries a field outside the exchange schema"),
        ));
    }
    if batch.version != ExchangeVersion::ExchangeVersion1 as i32 {
        return Err(reject(
            &id,
            RejectionReason::UnknownVersion,
            format!(
                "schema version {} is not supported (expected 1)",
                batch.version
            ),
        ));
    }
    if batch.batch_id.is_empty() || batch.batch_id.len() > 64 {
        return Err(reject(
            &id,
            RejectionReason::Malformed,
            "batch_id must be 1 to 64 characters".into(),
        ));
    }
    if batch.records.len() > COHORT_RECORDS_MAX as usize {
        return Err(reject(
            &id,
            RejectionReason::Oversized,
            format!(
                "{} records, at most {COHORT_RECORDS_MAX} per batch",
                batch.records.len()
            ),
        ));
    }
    if batch.record_count as usize != batch.records.len() {
        return Err(reject(
            &id,
            RejectionReason::RecordCountMismatch,
            format!(
                "record_count says {} but the batch holds {}",
                batch.record_count,
                batch.records.len()
            ),
        ));
    }
    for (i, r) in batch.records.iter().enumerate() {
        let plain = [
            (
                "id_hmac",
                looks_like_id_number(&String::from_utf8_lossy(&r.id_hmac)),
            ),
            ("school", looks_like_id_number(&r.school)),
            ("major", looks_like_id_number(&r.major)),
            ("residence_city", looks_like_id_number(&r.residence_city)),
        ];
        if let Some((field, _)) = plain.iter().find(|(_, p)| *p) {
            return Err(reject(
                &id,
                RejectionReason::PlainIdNumber,
                format!("record {i}: {field} holds a plain ID number"),
            ));
        }
        let malformed = |detail: &str| {
            Err(reject(
                &id,
                RejectionReason::Malformed,
                format!("record {i}: {detail}"),
            ))
        };
        if r.id_hmac.len() != ID_HMAC_BYTES {
            return malformed("id_hmac must be a 32-byte HMAC-SHA-256");
        }
        for (field, value) in [("school", &r.school), ("major", &r.major)] {
            let chars = value.chars().count();
            if chars == 0 || chars > NAME_CHARS_MAX {
                return malformed(&format!("{field} must be 1 to {NAME_CHARS_MAX} characters"));
            }
        }
        if r.level == GraduateLevel::Unspecified as i32 || GraduateLevel::try_from(r.level).is_err()
        {
            return malformed("level is missing or unknown");
        }
        let city = &r.residence_city;
        if city.len() != 6 || !city.bytes().all(|b| b.is_ascii_digit()) {
            return malformed("residence_city must be a six-digit GB/T 2260 code");
        }
        let valid_date = r.expected_graduation.as_ref().is_some_and(|d| {
            chrono::NaiveDate::from_ymd_opt(
                d.year,
                u32::try_from(d.month).unwrap_or(0),
                u32::try_from(d.day).unwrap_or(0),
            )
            .is_some()
        });
        if !valid_date {
            return malformed("expected_graduation is missing or not a date");
        }
    }
    Ok(batch)
}

/// Whether `text` holds something shaped like a resident ID number: 17
/// digits then a digit or `X` (GB 11643), or the old 15-digit form.
fn looks_like_id_number(text: &str) -> bool {
    let b = text.as_bytes();
    let run_at = |start: usize, len: usize| b[start..start + len].iter().all(u8::is_ascii_digit);
    let bounded = |start: usize, len: usize| {
        (start == 0 || !b[start - 1].is_ascii_alphanumeric())
            && (start + len == b.len() || !b[start + len].is_ascii_alphanumeric())
    };
    (0..b.len()).any(|s| {
        (s + 18 <= b.len()
            && run_at(s, 17)
            && (b[s + 17].is_ascii_digit() || b[s + 17] == b'X' || b[s + 17] == b'x')
            && bounded(s, 18))
            || (s + 15 <= b.len() && run_at(s, 15) && bounded(s, 15))
    })
}

/// The path of the first message carrying a field the schema does not
/// define, if any.
fn unknown_field(bytes: &[u8]) -> Option<String> {
    static POOL: std::sync::OnceLock<DescriptorPool> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        DescriptorPool::decode(pathway_proto::PUBLISHED_DESCRIPTOR_SET)
            .expect("the published descriptor set decodes")
    });
    let desc = pool.get_message_by_name("pathway.exchange.v1.CohortBatch")?;
    let msg = DynamicMessage::decode(desc, bytes).ok()?;
    find_unknown(&msg, "batch")
}

fn find_unknown(msg: &DynamicMessage, path: &str) -> Option<String> {
    if msg.unknown_fields().next().is_some() {
        return Some(path.to_owned());
    }
    for (field, value) in msg.fields() {
        let here = format!("{path}.{}", field.name());
        match value {
            Value::Message(m) => {
                if let Some(p) = find_unknown(m, &here) {
                    return Some(p);
                }
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Message(m) = item
                        && let Some(p) = find_unknown(m, &format!("{here}[{i}]"))
                    {
                        return Some(p);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathway_proto::exchange::v1::{Date, GraduateRecord};

    fn record() -> GraduateRecord {
        GraduateRecord {
            id_hmac: vec![7; 32],
            school: "Harbin Institute of Technology".into(),
            major: "Software engineering".into(),
            level: GraduateLevel::Bachelor as i32,
            expected_graduation: Some(Date {
                year: 2025,
                month: 6,
                day: 30,
            }),
            residence_city: "230100".into(),
        }
    }

    fn batch(records: Vec<GraduateRecord>) -> CohortBatch {
        CohortBatch {
            version: ExchangeVersion::ExchangeVersion1 as i32,
            batch_id: "edu-2025".into(),
            year: 2025,
            record_count: records.len() as u32,
            records,
        }
    }

    /// The verdict on `bytes`: `ok` or the reason and detail.
    fn check(bytes: &[u8]) -> String {
        match validate_batch(bytes) {
            Ok(b) => format!("ok: {} records", b.records.len()),
            Err(r) => format!("{}: {}", r.reason().as_str_name(), r.detail),
        }
    }

    #[test]
    fn batches_are_accepted_or_rejected_with_a_reason() {
        let good = batch(vec![record(), record()]);
        assert_eq!(check(&good.encode_to_vec()), "ok: 2 records");

        let mut v2 = good.clone();
        v2.version = 2;
        assert_eq!(
            check(&v2.encode_to_vec()),
            "REJECTION_REASON_UNKNOWN_VERSION: schema version 2 is not supported (expected 1)"
        );

        let mut miscounted = good.clone();
        miscounted.record_count = 3;
        assert_eq!(
            check(&miscounted.encode_to_vec()),
            "REJECTION_REASON_RECORD_COUNT_MISMATCH: record_count says 3 but the batch holds 2"
        );

        let mut plain = good.clone();
        plain.records[1].id_hmac = b"23010219900307001X".to_vec();
        assert_eq!(
            check(&plain.encode_to_vec()),
            "REJECTION_REASON_PLAIN_ID_NUMBER: record 1: id_hmac holds a plain ID number"
        );

        let mut hidden = good.clone();
        hidden.records[0].major = "Law 230102199003070015".into();
        assert_eq!(
            check(&hidden.encode_to_vec()),
            "REJECTION_REASON_PLAIN_ID_NUMBER: record 0: major holds a plain ID number"
        );

        let mut short = good.clone();
        short.records[0].id_hmac = vec![1; 20];
        assert_eq!(
            check(&short.encode_to_vec()),
            "REJECTION_REASON_MALFORMED: record 0: id_hmac must be a 32-byte HMAC-SHA-256"
        );

        assert_eq!(
            check(b"\xff\xff\xff"),
            "REJECTION_REASON_MALFORMED: not a pathway.exchange.v1.CohortBatch: failed to decode Protobuf message: invalid varint"
        );

        let huge = vec![0u8; EXCHANGE_BATCH_BYTES_MAX + 1];
        assert_eq!(
            check(&huge),
            format!(
                "REJECTION_REASON_OVERSIZED: batch is {} bytes, at most {EXCHANGE_BATCH_BYTES_MAX} are accepted",
                EXCHANGE_BATCH_BYTES_MAX + 1
            )
        );
    }

    #[test]
    fn a_field_outside_the_schema_is_rejected_not_skipped() {
        let mut bytes = batch(vec![record()]).encode_to_vec();
        // Field 15 (string) on the batch: e.g. a "name" column sent along.
        bytes.extend_from_slice(&[0x7a, 3, b'a', b'b', b'c']);
        assert_eq!(
            check(&bytes),
            "REJECTION_REASON_FIELD_NOT_ALLOWED: batch carries a field outside the exchange schema"
        );
    }
}
