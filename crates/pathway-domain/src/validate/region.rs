//! Heilongjiang's 13 prefecture-level divisions (GB/T 2260) and county-level
//! region codes inside them.

use crate::Rejection;

/// Rule cited by region rejections.
const RULE_REGION: &str = "GB/T 2260 23xxxx";
/// Rule cited by city code rejections.
const RULE_CITY: &str = "GB/T 2260, 13 prefectures of Heilongjiang";

/// A prefecture-level division of Heilongjiang (12 cities and the Da Hinggan
/// Ling prefecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct City {
    /// GB/T 2260 code, e.g. `230100`.
    pub code: &'static str,
    /// Chinese name.
    pub name_zh: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// Relative population, for the simulator: resident population at the
    /// 2020 census in thousandths of Harbin's (Harbin = 1000).
    pub weight: u32,
}

/// The 13 prefecture-level divisions of Heilongjiang, in code order.
pub const CITIES: [City; 13] = [
    City {
        code: "230100",
        name_zh: "哈尔滨市",
        name_en: "Harbin",
        weight: 1000,
    },
    City {
        code: "230200",
        name_zh: "齐齐哈尔市",
        name_en: "Qiqihar",
        weight: 406,
    },
    City {
        code: "230300",
        name_zh: "鸡西市",
        name_en: "Jixi",
        weight: 150,
    },
    City {
        code: "230400",
        name_zh: "鹤岗市",
        name_en: "Hegang",
        weight: 89,
    },
    City {
        code: "230500",
        name_zh: "双鸭山市",
        name_en: "Shuangyashan",
        weight: 121,
    },
    City {
        code: "230600",
        name_zh: "大庆市",
        name_en: "Daqing",
        weight: 278,
    },
    City {
        code: "230700",
        name_zh: "伊春市",
        name_en: "Yichun",
        weight: 88,
    },
    City {
        code: "230800",
        name_zh: "佳木斯市",
        name_en: "Jiamusi",
        weight: 215,
    },
    City {
        code: "230900",
        name_zh: "七台河市",
        name_en: "Qitaihe",
        weight: 69,
    },
    City {
        code: "231000",
        name_zh: "牡丹江市",
        name_en: "Mudanjiang",
        weight: 229,
    },
    City {
        code: "231100",
        name_zh: "黑河市",
        name_en: "Heihe",
        weight: 129,
    },
    City {
        code: "231200",
        name_zh: "绥化市",
        name_en: "Suihua",
        weight: 375,
    },
    City {
        code: "232700",
        name_zh: "大兴安岭地区",
        name_en: "Da Hinggan Ling",
        weight: 33,
    },
];

/// The city with exactly this 6-digit prefecture code.
pub fn city(code: &str) -> Option<&'static City> {
    CITIES.iter().find(|c| c.code == code)
}

/// Validate a county-level region code inside Heilongjiang: 6 digits starting
/// with `23` whose prefecture (first 4 digits + `00`) is one of the 13; the
/// county part is not checked against the current list, which changes.
/// Returns the region's city.
pub fn region(field: &'static str, code: &str) -> Result<&'static City, Rejection> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::new(
            field,
            format!("{code:?} is not a 6-digit region code"),
            RULE_REGION,
        ));
    }
    if !code.starts_with("23") {
        return Err(Rejection::new(
            field,
            format!("{code} is not in Heilongjiang"),
            RULE_REGION,
        ));
    }
    let prefecture = format!("{}00", &code[..4]);
    city(&prefecture).ok_or_else(|| {
        Rejection::new(
            field,
            format!("{code} is not in a Heilongjiang prefecture ({prefecture} is none)"),
            RULE_REGION,
        )
    })
}

/// Validate a city code: one of the 13 prefecture codes.
pub fn city_code(field: &'static str, code: &str) -> Result<&'static City, Rejection> {
    city(code).ok_or_else(|| {
        Rejection::new(
            field,
            format!("{code:?} is not one of the 13 city codes"),
            RULE_CITY,
        )
    })
}
