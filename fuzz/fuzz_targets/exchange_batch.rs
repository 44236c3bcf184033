//! The graduate batch decoder (`pathway_bus::exchange::validate_batch`) over
//! arbitrary bytes, and over batches built from arbitrary field values.
//!
//! First input byte even: the rest is the batch as received. Properties: no
//! panic, and an accepted batch re-encodes to bytes that are accepted as the
//! same batch. First byte odd: a `CohortBatch` is built from the rest,
//! encoded and checked; if accepted, the decoded batch equals the one built
//! (decode(encode(x)) == x), and a rejection names a reason.
#![no_main]

use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use pathway_bus::exchange::validate_batch;
use pathway_proto::Message;
use pathway_proto::exchange::v1::{CohortBatch, Date, GraduateRecord, RejectionReason};

/// A short string, often one that passes the checks.
fn text(u: &mut Unstructured<'_>, usual: &[&str]) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(usual)?).to_owned())
    } else {
        u.arbitrary()
    }
}

fn record(u: &mut Unstructured<'_>) -> Result<GraduateRecord> {
    let id_hmac = if u.ratio(7, 8)? {
        u.bytes(32)?.to_vec()
    } else {
        u.arbitrary()?
    };
    Ok(GraduateRecord {
        id_hmac,
        school: text(u, &["黑龙江大学", "Harbin Institute of Technology", "x"])?,
        major: text(u, &["computer science", "法学", "Law 230102199003070015"])?,
        level: if u.ratio(3, 4)? {
            u.int_in_range(1..=3)?
        } else {
            u.arbitrary()?
        },
        expected_graduation: if u.ratio(7, 8)? {
            Some(Date {
                year: u.int_in_range(1890..=2110)?,
                month: u.int_in_range(0..=13)?,
                day: u.int_in_range(0..=32)?,
            })
        } else {
            None
        },
        residence_city: text(u, &["230100", "230102", "2301", "23010a"])?,
    })
}

fn batch(u: &mut Unstructured<'_>) -> Result<CohortBatch> {
    let n = u.int_in_range(0..=8)?;
    let records = (0..n).map(|_| record(u)).collect::<Result<Vec<_>>>()?;
    Ok(CohortBatch {
        version: if u.ratio(7, 8)? { 1 } else { u.arbitrary()? },
        batch_id: text(u, &["edu-2024-01", ""])?,
        year: if u.ratio(3, 4)? {
            u.int_in_range(2022..=2025)?
        } else {
            u.arbitrary()?
        },
        record_count: if u.ratio(7, 8)? {
            n as u32
        } else {
            u.arbitrary()?
        },
        records,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(accepted) = validate_batch(rest) {
            let again = validate_batch(&accepted.encode_to_vec())
                .expect("an accepted batch, re-encoded, is accepted");
            assert_eq!(again, accepted);
        }
        return;
    }
    let Ok(built) = batch(&mut Unstructured::new(rest)) else {
        return;
    };
    match validate_batch(&built.encode_to_vec()) {
        Ok(decoded) => assert_eq!(decoded, built),
        Err(rejected) => {
            assert!(RejectionReason::try_from(rejected.reason).is_ok());
            assert_ne!(rejected.reason, RejectionReason::Unspecified as i32);
        }
    }
});
