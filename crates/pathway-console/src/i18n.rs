//! Message catalogs and locale formatting.
//!
//! One TOML catalog per locale under `i18n/` (embedded at build time); every
//! label a page shows comes from it. Sections flatten into dotted keys
//! (`[nav] cases = …` is `nav.cases`); `{name}` in a message is replaced by
//! the argument of that name. A key missing from a catalog renders as
//! `⟦key⟧`, which the tests look for on every page.
//!
//! Numbers, dates, percentages and money are formatted per locale here, not
//! in the catalogs: Chinese dates as `2024年12月31日`, English as
//! `31 Dec 2024`; times in China Standard Time.

use std::{collections::BTreeMap, sync::OnceLock};

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, Utc};

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    /// Simplified Chinese, the default.
    ZhCn,
    English,
}

impl Locale {
    /// Every locale, default first.
    pub const ALL: [Locale; 2] = [Locale::ZhCn, Locale::English];

    /// The value of `?lang=` and of the language cookie.
    pub fn code(self) -> &'static str {
        match self {
            Locale::ZhCn => "zh",
            Locale::English => "en",
        }
    }

    /// The BCP 47 tag for `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::ZhCn => "zh-CN",
            Locale::English => "en",
        }
    }

    /// The locale of a `?lang=` or cookie value.
    pub fn parse(code: &str) -> Option<Locale> {
        match code.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh-hans" => Some(Locale::ZhCn),
            "en" | "en-us" | "en-gb" => Some(Locale::English),
            _ => None,
        }
    }

    /// The other locale (the one the switch offers).
    pub fn other(self) -> Locale {
        match self {
            Locale::ZhCn => Locale::English,
            Locale::English => Locale::ZhCn,
        }
    }

    fn source(self) -> &'static str {
        match self {
            Locale::ZhCn => include_str!("../i18n/zh-CN.toml"),
            Locale::English => include_str!("../i18n/en.toml"),
        }
    }

    fn catalog(self) -> &'static Catalog {
        static ZH: OnceLock<Catalog> = OnceLock::new();
        static EN: OnceLock<Catalog> = OnceLock::new();
        let cell = match self {
            Locale::ZhCn => &ZH,
            Locale::English => &EN,
        };
        cell.get_or_init(|| Catalog::parse(self.source()).expect("embedded catalog parses"))
    }

    /// The message `key`.
    pub fn t(self, key: &str) -> String {
        self.catalog()
            .messages
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("⟦{key}⟧"))
    }

    /// The message `key` with each `{name}` replaced by its argument.
    pub fn tf(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key);
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// The message `prefix.code` if the catalog has it, else `code` itself
    /// (for codes from the data, such as an employment form, that a newer
    /// schema may add before the catalog learns them).
    pub fn label(self, prefix: &str, code: &str) -> String {
        self.catalog()
            .messages
            .get(&format!("{prefix}.{code}"))
            .cloned()
            .unwrap_or_else(|| code.to_owned())
    }

    /// Every key of the catalog (for the catalog tests).
    pub fn keys(self) -> Vec<String> {
        self.catalog().messages.keys().cloned().collect()
    }

    /// An integer with the locale's digit grouping.
    pub fn number(self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        let sep = match self {
            Locale::ZhCn | Locale::English => ',',
        };
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// A share in basis points as a percentage with one decimal.
    pub fn percent_bp(self, bp: i64) -> String {
        let sign = if bp < 0 { "-" } else { "" };
        let bp = bp.unsigned_abs();
        format!("{sign}{}.{}%", bp / 100, (bp % 100) / 10)
    }

    /// Money in fen as yuan with two decimals.
    pub fn money_fen(self, fen: i64) -> String {
        let sign = if fen < 0 { "-" } else { "" };
        let abs = fen.unsigned_abs();
        let yuan = self.number(i64::try_from(abs / 100).unwrap_or(i64::MAX));
        let cents = abs % 100;
        match self {
            Locale::ZhCn => format!("{sign}¥{yuan}.{cents:02}"),
            Locale::English => format!("{sign}CNY {yuan}.{cents:02}"),
        }
    }

    /// A calendar date.
    pub fn date(self, d: NaiveDate) -> String {
        match self {
            Locale::ZhCn => format!("{}年{}月{}日", d.year(), d.month(), d.day()),
            Locale::English => d.format("%-d %b %Y").to_string(),
        }
    }

    /// An ISO 8601 date from the read models, formatted; other text as is.
    pub fn date_text(self, iso: &str) -> String {
        iso.parse::<NaiveDate>()
            .map_or_else(|_| iso.to_owned(), |d| self.date(d))
    }

    /// A moment, in China Standard Time.
    pub fn datetime(self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&cst());
        match self {
            Locale::ZhCn => format!(
                "{} {} (北京时间)",
                self.date(local.date_naive()),
                local.format("%H:%M:%S")
            ),
            Locale::English => format!(
                "{}, {} CST",
                self.date(local.date_naive()),
                local.format("%H:%M:%S")
            ),
        }
    }
}

/// China Standard Time.
pub(crate) fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A parsed catalog: dotted key → message.
struct Catalog {
    messages: BTreeMap<String, String>,
}

impl Catalog {
    fn parse(text: &str) -> Result<Catalog, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut messages = BTreeMap::new();
        flatten("", &table, &mut messages)?;
        Ok(Catalog { messages })
    }
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(s) => {
                out.insert(full, s.clone());
            }
            toml::Value::Table(t) => flatten(&full, t, out)?,
            other => return Err(format!("{full}: a string expected, found {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_have_the_same_keys_and_no_empty_message() {
        let zh = Locale::ZhCn.keys();
        let en = Locale::English.keys();
        let only_zh: Vec<_> = zh.iter().filter(|k| !en.contains(k)).collect();
        let only_en: Vec<_> = en.iter().filter(|k| !zh.contains(k)).collect();
        assert!(only_zh.is_empty(), "only in zh-CN.toml: {only_zh:?}");
        assert!(only_en.is_empty(), "only in en.toml: {only_en:?}");
        for locale in Locale::ALL {
            for key in locale.keys() {
                assert!(!locale.t(&key).trim().is_empty(), "{key} is empty");
            }
        }
    }

    #[test]
    fn formats_follow_the_locale() {
        assert_eq!(Locale::ZhCn.number(33_000), "33,000");
        assert_eq!(Locale::English.number(-1_234_567), "-1,234,567");
        assert_eq!(Locale::English.number(999), "999");
        assert_eq!(Locale::ZhCn.percent_bp(1_000), "10.0%");
        assert_eq!(Locale::English.percent_bp(1_999), "19.9%");
        assert_eq!(Locale::ZhCn.money_fen(123_456), "¥1,234.56");
        assert_eq!(Locale::English.money_fen(5), "CNY 0.05");
        let d = NaiveDate::from_ymd_opt(2024, 12, 31).expect("date");
        assert_eq!(Locale::ZhCn.date(d), "2024年12月31日");
        assert_eq!(Locale::English.date(d), "31 Dec 2024");
        assert_eq!(Locale::English.date_text("2024-01-05"), "5 Jan 2024");
        assert_eq!(
            Locale::ZhCn.tf("common.page_of", &[("page", "2"), ("pages", "3")]),
            "第 2 页，共 3 页"
        );
    }
}
