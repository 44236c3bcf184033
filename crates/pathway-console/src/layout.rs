//! The page shell: skip link, banner with the language switch and sign-out,
//! navigation of the pages the department may open, the main landmark, and
//! small shared pieces (tables with captions, pagination, status text).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::{
    Console, Locale,
    session::{Need, Req, may},
};

/// A page of the navigation: path under the base, label key, what it needs.
pub(crate) const NAV: &[(&str, &str, Need)] = &[
    ("/dashboard", "nav.dashboard", Need::Model("committee")),
    ("/cases", "nav.cases", Need::Model("dpf")),
    (
        "/phase-outs",
        "nav.phase_outs",
        Need::Model("civil_affairs"),
    ),
    ("/graduates", "nav.graduates", Need::Model("education")),
    ("/audit/timeline", "nav.timeline", Need::Auditor),
    ("/audit/verification", "nav.verification", Need::Auditor),
];

/// A whole page: `title` is already translated; `active` is the NAV path of
/// the page (for `aria-current`).
pub(crate) fn page<S>(
    console: &Console<S>,
    req: &Req,
    title: &str,
    active: Option<&str>,
    body: Markup,
) -> Markup {
    let l = req.locale;
    let base = console.base();
    let other = l.other();
    html! {
        (DOCTYPE)
        html lang=(l.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (l.t("app.name")) }
                link rel="stylesheet" href={ (base) "/static/console.css" };
            }
            body {
                a.skip-link href="#main" { (l.t("layout.skip")) }
                header.banner {
                    div.banner-inner {
                        p.app-name {
                            a href={ (base) "/" } { (l.t("app.name")) }
                        }
                        div.banner-tools {
                            @if let Some(claims) = &req.claims {
                                p.who {
                                    (l.t("layout.signed_in_as")) " "
                                    strong { (department(l, &claims.dept, claims.city.as_deref())) }
                                }
                            }
                            a.lang-switch href=(req.switch_href()) lang=(other.tag()) hreflang=(other.tag()) {
                                span.visually-hidden lang=(l.tag()) { (l.t("layout.switch_language")) ": " }
                                (other.t("layout.language_name"))
                            }
                            @if req.claims.is_some() {
                                form.sign-out method="post" action={ (base) "/sign-out" } {
                                    button type="submit" { (l.t("layout.sign_out")) }
                                }
                            }
                        }
                    }
                }
                @if let Some(claims) = &req.claims {
                    nav.site-nav aria-label=(l.t("layout.nav_label")) {
                        ul {
                            @for (path, key, need) in NAV {
                                @if may(console, claims, *need) {
                                    li {
                                        @if active == Some(*path) {
                                            a href={ (base) (path) } aria-current="page" { (l.t(key)) }
                                        } @else {
                                            a href={ (base) (path) } { (l.t(key)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer.site-footer {
                    p { (l.t("layout.footer")) }
                }
            }
        }
    }
}

/// A department (and city office) as shown to people.
pub(crate) fn department(l: Locale, dept: &str, city: Option<&str>) -> String {
    let name = l.label("dept", dept);
    match city {
        Some(city) => l.tf(
            "layout.city_office",
            &[("department", &name), ("city", &l.label("city", city))],
        ),
        None => name,
    }
}

/// Previous/next links of a paged table.
pub(crate) fn pagination(l: Locale, req: &Req, page: usize, pages: usize) -> Markup {
    let href = |p: usize| {
        let mut query: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "lang")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.push(("page".to_owned(), p.to_string()));
        format!("{}?{}", req.path, crate::session::encode_query(&query))
    };
    let label = l.tf(
        "common.page_of",
        &[
            ("page", &l.number(page as i64)),
            ("pages", &l.number(pages.max(1) as i64)),
        ],
    );
    html! {
        nav.pagination aria-label=(l.t("common.pagination")) {
            @if page > 1 {
                a href=(href(page - 1)) rel="prev" { (l.t("common.previous")) }
            }
            span { (label) }
            @if page < pages {
                a href=(href(page + 1)) rel="next" { (l.t("common.next")) }
            }
        }
    }
}

/// A yes/no as text with a symbol (never colour alone).
pub(crate) fn yes_no(l: Locale, yes: bool) -> Markup {
    html! {
        @if yes {
            span.status.status-yes { span aria-hidden="true" { "✓ " } (l.t("common.yes")) }
        } @else {
            span.status.status-no { span aria-hidden="true" { "✗ " } (l.t("common.no")) }
        }
    }
}

/// An SVG chart inline, followed by its table alternative.
pub(crate) fn figure(svg: String, caption: &str, table: Markup) -> Markup {
    html! {
        figure.chart {
            (PreEscaped(svg))
            figcaption { (caption) }
        }
        (table)
    }
}

/// A table with its caption, one header row of `columns` (column headers)
/// and `rows` as its body.
pub(crate) fn table(caption: &str, columns: &[String], rows: Markup) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { @for c in columns { th scope="col" { (c) } } } }
            tbody { (rows) }
        }
    }
}

/// A [`table`] in a focusable region that scrolls sideways on narrow
/// screens, named by its caption.
pub(crate) fn scroll_table(caption: &str, columns: &[String], rows: Markup) -> Markup {
    html! {
        div.table-scroll tabindex="0" role="region" aria-label=(caption) {
            (table(caption, columns, rows))
        }
    }
}
