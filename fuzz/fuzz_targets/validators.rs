//! The identifier and value validators of `pathway_domain::validate`: resident
//! ID (GB 11643), disability certificate number, unified social credit code
//! (GB 32100), GB/T 2260 region and city codes, money in fen (including its
//! JSON form), business dates, age and free text.
//!
//! The first byte picks the validator, the rest is its input. Properties
//! beyond "no panic": whatever a validator accepts is canonical, i.e. it
//! validates again to the same value, and it equals the canonical encoding
//! built from its parts (`make_resident_id`, `make_credit_code`, the ID +
//! category + grade of a certificate, the prefecture of a region).
#![no_main]

use chrono::{Datelike, NaiveDate};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use pathway_domain::validate;

/// A day on which every birth date the validator may accept is in the past.
const TODAY: NaiveDate = match NaiveDate::from_ymd_opt(2026, 1, 1) {
    Some(d) => d,
    None => panic!(),
};

fn resident_id(s: &str) {
    let Ok(id) = validate::resident_id("id_number", s, TODAY) else {
        return;
    };
    let number = id.as_str();
    assert_eq!(number.len(), 18);
    assert_eq!(number.trim(), number);
    assert_eq!(number, number.to_ascii_uppercase());
    let again = validate::resident_id("id_number", number, TODAY).expect("canonical ID validates");
    assert_eq!(again, id);
    let sequence: u16 = number[14..17].parse().expect("three digits");
    let made = validate::make_resident_id(id.address_code(), id.birth_date(), sequence);
    assert_eq!(made, number);
    assert!(id.birth_date() <= TODAY && id.birth_date().year() >= 1900);
    let _ = id.sex();
}

fn certificate(s: &str) {
    // The holder's ID is the certificate's first 18 characters, when valid.
    let Some(id_part) = s.trim().get(..18) else {
        return;
    };
    let Ok(id) = validate::resident_id("id_number", id_part, TODAY) else {
        let _ = validate::resident_id("id_number", s, TODAY);
        return;
    };
    let Ok(cert) = validate::certificate_number("certificate_number", s, &id) else {
        return;
    };
    assert_eq!(
        cert.number,
        format!("{}{}{}", id.as_str(), cert.category, cert.grade)
    );
    assert!((1..=7).contains(&cert.category) && (1..=4).contains(&cert.grade));
    let again = validate::certificate_number("certificate_number", &cert.number, &id)
        .expect("canonical certificate validates");
    assert_eq!(again, cert);
}

fn credit_code(s: &str) {
    let Ok(code) = validate::credit_code("uscc", s) else {
        return;
    };
    let text = code.as_str();
    assert_eq!(text.len(), 18);
    assert_eq!(validate::make_credit_code(&text[..17]), text);
    let again = validate::credit_code("uscc", text).expect("canonical code validates");
    assert_eq!(again, code);
}

fn region(s: &str) {
    if let Ok(city) = validate::region("region", s) {
        assert_eq!(&city.code[..4], &s[..4]);
        assert_eq!(validate::city_code("city", city.code), Ok(city));
        assert_eq!(validate::region("region", city.code), Ok(city));
    }
    if let Ok(city) = validate::city_code("city", s) {
        assert_eq!(city.code, s);
        assert_eq!(validate::city(s), Some(city));
    }
}

fn money(u: &mut Unstructured<'_>, s: &str) {
    // As a command carries it: a JSON number (or whatever was sent instead).
    if let Ok(fen) = serde_json::from_str::<i64>(s)
        && let Ok(ok) = validate::money_fen("amount_fen", fen)
    {
        assert_eq!(ok, fen);
        assert!((0..=validate::MONEY_FEN_MAX).contains(&fen));
        assert_eq!(
            serde_json::to_string(&ok).expect("i64 serialises"),
            ok.to_string()
        );
    }
    if let Ok(fen) = u.arbitrary::<i64>() {
        match validate::money_fen("amount_fen", fen) {
            Ok(ok) => assert!(ok == fen && (0..=validate::MONEY_FEN_MAX).contains(&fen)),
            Err(r) => assert_eq!(r.field, "amount_fen"),
        }
    }
}

fn dates(u: &mut Unstructured<'_>) {
    let mut day = || -> Option<NaiveDate> {
        let (y, m, d) = (
            u.arbitrary::<i32>().ok()?,
            u.arbitrary::<u32>().ok()?,
            u.arbitrary::<u32>().ok()?,
        );
        NaiveDate::from_ymd_opt(y % 10_000, m % 14, d % 33)
    };
    let (Some(a), Some(b)) = (day(), day()) else {
        return;
    };
    if let Ok(d) = validate::date_in_range("on", a) {
        assert_eq!(d, a);
        assert!((1900..=2100).contains(&a.year()));
    }
    let age = validate::age_on(a, b);
    if b <= a {
        assert_eq!(age, 0);
    }
}

fn text(u: &mut Unstructured<'_>, s: &str) {
    let max = u.int_in_range(1..=300).unwrap_or(100);
    if let Ok(t) = validate::text("narrative", s, max) {
        assert_eq!(validate::text("narrative", &t, max), Ok(t.clone()));
        assert!(!t.is_empty() && t.chars().count() <= max);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    let mut u = Unstructured::new(rest);
    match which % 8 {
        0 => resident_id(&s),
        1 => certificate(&s),
        2 => credit_code(&s),
        3 => region(&s),
        4 => money(&mut u, &s),
        5 => dates(&mut u),
        6 => text(&mut u, &s),
        _ => {
            resident_id(&s);
            credit_code(&s);
            region(&s);
        }
    }
});
