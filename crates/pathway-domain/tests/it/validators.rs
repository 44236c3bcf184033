//! Validators: tables of inputs and the expected value or rejection message,
//! plus properties of the identifier checksums.

use chrono::NaiveDate;
use pathway_domain::pb::Sex;
use pathway_domain::validate::{self, CITIES, MONEY_FEN_MAX};
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("test dates are calendar dates")
}

/// The day the ID cases are validated on.
fn today() -> NaiveDate {
    date(2024, 6, 1)
}

/// An independent MOD 11-2 (ISO 7064) check character: the remainder of
/// Σ aᵢ·2^(18−i) mod 11, mapped to (12 − r) mod 11 with 10 written as X.
fn mod11_2(first17: &str) -> char {
    let mut sum = 0u32;
    for (i, c) in first17.chars().enumerate() {
        let weight = (1u32 << (17 - i)) % 11;
        sum += c.to_digit(10).expect("17 digits") * weight;
    }
    match (12 - sum % 11) % 11 {
        10 => 'X',
        n => char::from_digit(n, 10).expect("a digit"),
    }
}

/// `first17` completed with its check character.
fn with_check(first17: &str) -> String {
    format!("{first17}{}", mod11_2(first17))
}

/// Expected outcome of a resident ID: the normalised number, birth date and
/// sex, or the rejection's message.
type IdExpect = Result<(&'static str, NaiveDate, Sex), &'static str>;

fn check_id(raw: &str, expect: IdExpect) {
    let got = validate::resident_id("id_number", raw, today())
        .map(|id| {
            (
                id.as_str().to_owned(),
                id.birth_date(),
                id.sex(),
                id.address_code().to_owned(),
            )
        })
        .map_err(|r| r.to_string());
    let want = expect
        .map(|(number, birth, sex)| (number.to_owned(), birth, sex, number[..6].to_owned()))
        .map_err(str::to_owned);
    assert_eq!(got, want, "input {raw:?}");
}

#[test]
fn resident_id_cases() {
    let cases: Vec<(String, IdExpect)> = vec![
        // Reference test vectors (domain reference 2.5).
        (
            "11010519491231002X".into(),
            Ok(("11010519491231002X", date(1949, 12, 31), Sex::Female)),
        ),
        (
            "120223198902021249".into(),
            Ok(("120223198902021249", date(1989, 2, 2), Sex::Female)),
        ),
        (
            "130132199210293822".into(),
            Ok(("130132199210293822", date(1992, 10, 29), Sex::Female)),
        ),
        (
            "130402198207290622".into(),
            Err("id_number: check digit is 2, expected 4 (GB 11643)"),
        ),
        // The vector born in 1880 has a correct check digit (see
        // `reference_vector_of_1880_has_a_correct_check_digit`) but is before
        // the earliest accepted birth date.
        (
            "440524188001010014".into(),
            Err("id_number: birth date 1880-01-01 is before 1900-01-01 (GB 11643)"),
        ),
        // Normalisation.
        (
            "11010519491231002x".into(),
            Ok(("11010519491231002X", date(1949, 12, 31), Sex::Female)),
        ),
        (
            "  11010519491231002X\n".into(),
            Ok(("11010519491231002X", date(1949, 12, 31), Sex::Female)),
        ),
        // Odd sequence digit is male.
        (
            validate::make_resident_id("230102", date(1985, 3, 14), 13),
            Ok(("230102198503140134", date(1985, 3, 14), Sex::Male)),
        ),
        // Check digit.
        (
            "110105194912310027".into(),
            Err("id_number: check digit is 7, expected X (GB 11643)"),
        ),
        // Length and characters.
        (
            "".into(),
            Err("id_number: has 0 characters, expected 18 (GB 11643)"),
        ),
        (
            "11010519491231002".into(),
            Err("id_number: has 17 characters, expected 18 (GB 11643)"),
        ),
        (
            "11010519491231002X0".into(),
            Err("id_number: has 19 characters, expected 18 (GB 11643)"),
        ),
        (
            "1101051949123100AX".into(),
            Err("id_number: character 17 is 'A', expected a digit (GB 11643)"),
        ),
        (
            "X10105194912310027".into(),
            Err("id_number: character 1 is 'X', expected a digit (GB 11643)"),
        ),
        (
            "11010519491231002Y".into(),
            Err("id_number: character 18 is 'Y', expected a digit or X (GB 11643)"),
        ),
        (
            "１１010519491231002X".into(),
            Err("id_number: character 1 is '１', expected a digit (GB 11643)"),
        ),
        // Birth date.
        (
            with_check("23010219900230001"),
            Err("id_number: birth date 19900230 is not a calendar date (GB 11643)"),
        ),
        (
            with_check("23010219891301001"),
            Err("id_number: birth date 19891301 is not a calendar date (GB 11643)"),
        ),
        (
            validate::make_resident_id("230102", date(2024, 6, 2), 1),
            Err("id_number: birth date 2024-06-02 is after today 2024-06-01 (GB 11643)"),
        ),
        (
            validate::make_resident_id("230102", date(2030, 1, 1), 1),
            Err("id_number: birth date 2030-01-01 is after today 2024-06-01 (GB 11643)"),
        ),
        (
            validate::make_resident_id("230102", date(2024, 6, 1), 2),
            Ok(("23010220240601002X", date(2024, 6, 1), Sex::Female)),
        ),
        (
            validate::make_resident_id("230102", date(1899, 12, 31), 2),
            Err("id_number: birth date 1899-12-31 is before 1900-01-01 (GB 11643)"),
        ),
        (
            validate::make_resident_id("230102", date(1900, 1, 1), 1),
            Ok(("230102190001010018", date(1900, 1, 1), Sex::Male)),
        ),
        // Address code: only the province prefix is checked.
        (
            validate::make_resident_id("990101", date(1990, 1, 1), 1),
            Err("id_number: address code 990101 is not in a province (prefix 99) (GB 11643)"),
        ),
        (
            validate::make_resident_id("100101", date(1990, 1, 1), 1),
            Err("id_number: address code 100101 is not in a province (prefix 10) (GB 11643)"),
        ),
        (
            // A county code that no longer exists is still accepted.
            validate::make_resident_id("232799", date(1990, 1, 1), 1),
            Ok(("232799199001010012", date(1990, 1, 1), Sex::Male)),
        ),
        (
            validate::make_resident_id("820001", date(1990, 1, 1), 1),
            Ok(("820001199001010017", date(1990, 1, 1), Sex::Male)),
        ),
    ];
    for (raw, expect) in cases {
        check_id(&raw, expect);
    }
}

#[test]
fn reference_vector_of_1880_has_a_correct_check_digit() {
    assert_eq!(
        validate::make_resident_id("440524", date(1880, 1, 1), 1),
        "440524188001010014"
    );
    assert_eq!(mod11_2("44052418800101001"), '4');
}

#[test]
fn make_resident_id_matches_reference_vectors() {
    assert_eq!(
        validate::make_resident_id("110105", date(1949, 12, 31), 2),
        "11010519491231002X"
    );
    assert_eq!(
        validate::make_resident_id("120223", date(1989, 2, 2), 124),
        "120223198902021249"
    );
    assert_eq!(
        validate::make_resident_id("130132", date(1992, 10, 29), 382),
        "130132199210293822"
    );
    assert_eq!(
        validate::make_resident_id("130402", date(1982, 7, 29), 62),
        "130402198207290624"
    );
}

/// Expected outcome of a certificate number: (category, grade, severe,
/// normalised number) or the rejection's message.
type CertificateExpect = Result<(u8, u8, bool, &'static str), &'static str>;

#[test]
fn certificate_number_cases() {
    let holder = validate::resident_id("id_number", "11010519491231002x", today())
        .expect("reference vector is valid");
    let cases: &[(&str, CertificateExpect)] = &[
        (
            "11010519491231002X43",
            Ok((4, 3, false, "11010519491231002X43")),
        ),
        (
            "11010519491231002x12",
            Ok((1, 2, true, "11010519491231002X12")),
        ),
        (
            "11010519491231002X71",
            Ok((7, 1, true, "11010519491231002X71")),
        ),
        (
            "11010519491231002X14",
            Ok((1, 4, false, "11010519491231002X14")),
        ),
        (
            " 11010519491231002X63 ",
            Ok((6, 3, false, "11010519491231002X63")),
        ),
        (
            "11010519491231002X01",
            Err(
                "certificate_number: category 0 is not one of 1–7 (visual … multiple) (GB/T 26341)",
            ),
        ),
        (
            "11010519491231002X81",
            Err(
                "certificate_number: category 8 is not one of 1–7 (visual … multiple) (GB/T 26341)",
            ),
        ),
        (
            "11010519491231002X15",
            Err("certificate_number: grade 5 is not one of 1–4 (1 most severe) (GB/T 26341)"),
        ),
        (
            "11010519491231002X10",
            Err("certificate_number: grade 0 is not one of 1–4 (1 most severe) (GB/T 26341)"),
        ),
        (
            "12022319890202124943",
            Err(
                "certificate_number: first 18 characters differ from the holder's resident ID number \
                 (disability certificate number = ID + category + grade)",
            ),
        ),
        (
            "11010519491231002X4",
            Err("certificate_number: has 19 characters, expected 20 \
                 (disability certificate number = ID + category + grade)"),
        ),
        (
            "11010519491231002X431",
            Err("certificate_number: has 21 characters, expected 20 \
                 (disability certificate number = ID + category + grade)"),
        ),
        (
            "11010519491231002XA3",
            Err("certificate_number: character 19 is 'A', expected a digit \
                 (disability certificate number = ID + category + grade)"),
        ),
        (
            "1101051949123100X243",
            Err("certificate_number: character 17 is 'X', expected a digit \
                 (disability certificate number = ID + category + grade)"),
        ),
    ];
    for (raw, expect) in cases {
        let got = validate::certificate_number("certificate_number", raw, &holder)
            .map(|c| (c.category, c.grade, c.is_severe(), c.number))
            .map_err(|r| r.to_string());
        let want = expect
            .map(|(category, grade, severe, number)| (category, grade, severe, number.to_owned()))
            .map_err(str::to_owned);
        assert_eq!(got, want, "input {raw:?}");
    }
}

#[test]
fn credit_code_cases() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("91350200776049653A", Ok("91350200776049653A")),
        ("91350200776049653a", Ok("91350200776049653A")),
        (" 91350200776049653A\t", Ok("91350200776049653A")),
        (
            "91350200776049653B",
            Err("employer_uscc: check character of 91350200776049653B is B, expected A (GB 32100)"),
        ),
        (
            "91350200776049653",
            Err("employer_uscc: 91350200776049653 has 17 characters, expected 18 (GB 32100)"),
        ),
        (
            "",
            Err("employer_uscc:  has 0 characters, expected 18 (GB 32100)"),
        ),
        (
            "9135020077604965IA",
            Err("employer_uscc: character 17 of 9135020077604965IA is 'I', \
                 not one of 0123456789ABCDEFGHJKLMNPQRTUWXY (GB 32100)"),
        ),
        (
            "91350200776049653Z",
            Err("employer_uscc: character 18 of 91350200776049653Z is 'Z', \
                 not one of 0123456789ABCDEFGHJKLMNPQRTUWXY (GB 32100)"),
        ),
    ];
    for (raw, expect) in cases {
        let got = validate::credit_code("employer_uscc", raw)
            .map(|c| c.as_str().to_owned())
            .map_err(|r| r.to_string());
        let want = expect.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(got, want, "input {raw:?}");
    }
}

#[test]
fn make_credit_code_matches_known_code() {
    assert_eq!(
        validate::make_credit_code("91350200776049653"),
        "91350200776049653A"
    );
    assert_eq!(
        validate::make_credit_code("91230100MA1234567"),
        "91230100MA1234567D"
    );
    assert_eq!(
        validate::make_credit_code("91230100ma1234567"),
        "91230100MA1234567D"
    );
}

#[test]
fn region_cases() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("230102", Ok("Harbin")),
        ("230100", Ok("Harbin")),
        ("230606", Ok("Daqing")),
        ("231299", Ok("Suihua")),
        ("232721", Ok("Da Hinggan Ling")),
        (
            "110105",
            Err("residence_region: 110105 is not in Heilongjiang (GB/T 2260 23xxxx)"),
        ),
        (
            "231302",
            Err(
                "residence_region: 231302 is not in a Heilongjiang prefecture (231300 is none) (GB/T 2260 23xxxx)",
            ),
        ),
        (
            "230002",
            Err(
                "residence_region: 230002 is not in a Heilongjiang prefecture (230000 is none) (GB/T 2260 23xxxx)",
            ),
        ),
        (
            "2301",
            Err("residence_region: \"2301\" is not a 6-digit region code (GB/T 2260 23xxxx)"),
        ),
        (
            "23010a",
            Err("residence_region: \"23010a\" is not a 6-digit region code (GB/T 2260 23xxxx)"),
        ),
        (
            "",
            Err("residence_region: \"\" is not a 6-digit region code (GB/T 2260 23xxxx)"),
        ),
    ];
    for (code, expect) in cases {
        let got = validate::region("residence_region", code)
            .map(|c| c.name_en)
            .map_err(|r| r.to_string());
        let want = expect.map_err(str::to_owned);
        assert_eq!(got, want, "input {code:?}");
    }
}

#[test]
fn city_code_cases() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("230100", Ok("哈尔滨市")),
        ("230600", Ok("大庆市")),
        ("232700", Ok("大兴安岭地区")),
        (
            "230102",
            Err(
                "city: \"230102\" is not one of the 13 city codes (GB/T 2260, 13 prefectures of Heilongjiang)",
            ),
        ),
        (
            "230000",
            Err(
                "city: \"230000\" is not one of the 13 city codes (GB/T 2260, 13 prefectures of Heilongjiang)",
            ),
        ),
    ];
    for (code, expect) in cases {
        let got = validate::city_code("city", code)
            .map(|c| c.name_zh)
            .map_err(|r| r.to_string());
        let want = expect.map_err(str::to_owned);
        assert_eq!(got, want, "input {code:?}");
    }
    assert_eq!(
        validate::city("231000").map(|c| c.name_en),
        Some("Mudanjiang")
    );
    assert_eq!(validate::city("23100"), None);
}

#[test]
fn cities_are_the_thirteen_prefectures() {
    let codes: Vec<&str> = CITIES.iter().map(|c| c.code).collect();
    assert_eq!(
        codes,
        [
            "230100", "230200", "230300", "230400", "230500", "230600", "230700", "230800",
            "230900", "231000", "231100", "231200", "232700"
        ]
    );
    let harbin = &CITIES[0];
    assert_eq!((harbin.name_en, harbin.weight), ("Harbin", 1000));
    assert!(
        CITIES[1..]
            .iter()
            .all(|c| 0 < c.weight && c.weight < harbin.weight)
    );
    let smallest = CITIES.iter().min_by_key(|c| c.weight).map(|c| c.name_en);
    assert_eq!(smallest, Some("Da Hinggan Ling"));
}

#[test]
fn money_fen_cases() {
    let cases: &[(i64, Result<i64, &str>)] = &[
        (0, Ok(0)),
        (1, Ok(1)),
        (MONEY_FEN_MAX, Ok(1_000_000_000_000)),
        (-1, Err("fund_base_fen: -1 fen is negative (money in fen)")),
        (
            i64::MIN,
            Err("fund_base_fen: -9223372036854775808 fen is negative (money in fen)"),
        ),
        (
            MONEY_FEN_MAX + 1,
            Err(
                "fund_base_fen: 1000000000001 fen is above the maximum 1000000000000 fen (money in fen)",
            ),
        ),
    ];
    for (fen, expect) in cases {
        let got = validate::money_fen("fund_base_fen", *fen).map_err(|r| r.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "input {fen}");
    }
}

#[test]
fn date_in_range_cases() {
    let cases: &[(NaiveDate, Result<NaiveDate, &str>)] = &[
        (date(1900, 1, 1), Ok(date(1900, 1, 1))),
        (date(2023, 6, 1), Ok(date(2023, 6, 1))),
        (date(2100, 12, 31), Ok(date(2100, 12, 31))),
        (
            date(1899, 12, 31),
            Err("start_date: 1899-12-31 is outside 1900-01-01..=2100-12-31 (date range)"),
        ),
        (
            date(2101, 1, 1),
            Err("start_date: 2101-01-01 is outside 1900-01-01..=2100-12-31 (date range)"),
        ),
    ];
    for (d, expect) in cases {
        let got = validate::date_in_range("start_date", *d).map_err(|r| r.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "input {d}");
    }
}

#[test]
fn text_cases() {
    let cases: &[(&str, usize, Result<&str, &str>)] = &[
        ("post-001", 8, Ok("post-001")),
        ("  post-001 \n", 8, Ok("post-001")),
        ("哈尔滨市", 4, Ok("哈尔滨市")),
        ("", 8, Err("post_id: is empty (text)")),
        (" \t ", 8, Err("post_id: is empty (text)")),
        (
            "post-0001",
            8,
            Err("post_id: has 9 characters, more than 8 (text)"),
        ),
        (
            "哈尔滨市",
            3,
            Err("post_id: has 4 characters, more than 3 (text)"),
        ),
        (
            "post\u{7}1",
            8,
            Err("post_id: contains the control character U+0007 (text)"),
        ),
        (
            "line\nbreak",
            20,
            Err("post_id: contains the control character U+000A (text)"),
        ),
    ];
    for (raw, max, expect) in cases {
        let got = validate::text("post_id", raw, *max).map_err(|r| r.to_string());
        let want = expect.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(got, want, "input {raw:?}");
    }
}

#[test]
fn age_on_cases() {
    let cases: &[(NaiveDate, NaiveDate, u32)] = &[
        (date(1990, 6, 15), date(2024, 6, 14), 33),
        (date(1990, 6, 15), date(2024, 6, 15), 34),
        (date(1990, 6, 15), date(2024, 12, 31), 34),
        (date(2000, 2, 29), date(2023, 2, 28), 22),
        (date(2000, 2, 29), date(2023, 3, 1), 23),
        (date(2000, 2, 29), date(2024, 2, 29), 24),
        (date(2008, 1, 1), date(2024, 1, 1), 16),
        (date(2008, 1, 2), date(2024, 1, 1), 15),
        (date(2024, 1, 1), date(2024, 1, 1), 0),
        (date(2024, 1, 2), date(2024, 1, 1), 0),
    ];
    for (birth, on, age) in cases {
        assert_eq!(validate::age_on(*birth, *on), *age, "born {birth}, on {on}");
    }
}

/// Characters a resident ID may hold at any position (before normalisation).
const ID_CHARS: &[char] = &['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'X'];
/// The GB 32100 alphabet.
const USCC_CHARS: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Valid Heilongjiang resident IDs: (address code, birth date, sequence).
fn heilongjiang_ids() -> impl Strategy<Value = (String, NaiveDate, u16)> {
    let first = date(1940, 1, 1);
    let days = (date(2010, 12, 31) - first).num_days();
    (0u32..10_000, 0..=days, 0u16..=999).prop_map(move |(county, offset, sequence)| {
        (
            format!("23{county:04}"),
            first + chrono::Days::new(offset as u64),
            sequence,
        )
    })
}

/// The first 17 characters of a credit code.
fn credit_code_bodies() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(USCC_CHARS.chars().collect::<Vec<_>>()),
        17,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Replace character `position` of `s` by the `pick`-th allowed character
/// different from it.
fn corrupt(s: &str, position: usize, allowed: &[char], pick: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let others: Vec<char> = allowed
        .iter()
        .copied()
        .filter(|c| *c != chars[position])
        .collect();
    chars[position] = others[pick % others.len()];
    chars.into_iter().collect()
}

proptest! {
    #[test]
    fn generated_ids_are_accepted((address, birth, sequence) in heilongjiang_ids()) {
        let raw = validate::make_resident_id(&address, birth, sequence);
        prop_assert_eq!(raw.chars().last(), Some(mod11_2(&raw[..17])));
        let id = validate::resident_id("id_number", &raw.to_lowercase(), today())?;
        let sex = if sequence % 2 == 1 { Sex::Male } else { Sex::Female };
        prop_assert_eq!(id.as_str(), raw.as_str());
        prop_assert_eq!(id.birth_date(), birth);
        prop_assert_eq!(id.sex(), sex);
        prop_assert_eq!(id.address_code(), address.as_str());
        let prefecture = format!("{}00", &address[..4]);
        let in_prefecture = validate::region("residence_region", id.address_code()).is_ok();
        prop_assert_eq!(in_prefecture, validate::city(&prefecture).is_some());
    }

    #[test]
    fn corrupted_ids_are_rejected(
        (address, birth, sequence) in heilongjiang_ids(),
        position in 0usize..18,
        pick in 0usize..10,
    ) {
        let raw = validate::make_resident_id(&address, birth, sequence);
        let corrupted = corrupt(&raw, position, ID_CHARS, pick);
        prop_assert_ne!(&corrupted, &raw);
        prop_assert!(validate::resident_id("id_number", &corrupted, today()).is_err(), "{} accepted", corrupted);
    }

    #[test]
    fn generated_credit_codes_are_accepted(body in credit_code_bodies()) {
        let code = validate::make_credit_code(&body);
        prop_assert_eq!(&code[..17], body.as_str());
        let parsed = validate::credit_code("employer_uscc", &code.to_lowercase())?;
        prop_assert_eq!(parsed.as_str(), code.as_str());
    }

    #[test]
    fn corrupted_credit_codes_are_rejected(
        body in credit_code_bodies(),
        position in 0usize..18,
        pick in 0usize..30,
    ) {
        let code = validate::make_credit_code(&body);
        let alphabet: Vec<char> = USCC_CHARS.chars().collect();
        let corrupted = corrupt(&code, position, &alphabet, pick);
        prop_assert_ne!(&corrupted, &code);
        prop_assert!(validate::credit_code("employer_uscc", &corrupted).is_err(), "{} accepted", corrupted);
    }
}
