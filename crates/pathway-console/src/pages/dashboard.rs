//! The committee's dashboard (model `committee`): new employment against the
//! province target by year and by city, Four Ones coverage, the disabled
//! share of public-welfare posts against its minimum, the fund's use for
//! those posts' social insurance against its cap, and the cities' annual
//! reports. Person counts below the small-cell minimum show as `<5` exactly
//! as the API serves them; a sum that leaves such a cell out says `≥`.

use std::collections::BTreeMap;

use axum::{
    extract::{OriginalUri, State},
    http::HeaderMap,
    response::Response,
};
use maud::{Markup, html};
use pathway_domain::{policy::PolicyTable, validate::CITIES};
use pathway_server::token::Claims;
use pathway_store::EventStore;

use crate::{
    Console, Locale, Shared,
    charts::{self, Bars},
    data::{self, Cell, ConsoleError, Rows, Total},
    layout,
    pages::{respond, signed_in},
    session::{Need, Req},
};

const MODEL: &str = "committee";

/// `GET /dashboard?year=`.
pub(crate) async fn page<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (req, claims) = match signed_in(&console, &uri, &headers, Need::Model(MODEL)) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let rendered = render(&console, &req, &claims).await;
    respond(&console, &req, "dashboard.title", "/dashboard", rendered)
}

/// The cell as text: a count with grouping, or the suppression mark.
pub(crate) fn cell_text(l: Locale, cell: &Cell) -> String {
    match cell {
        Cell::Count(n) => l.number(*n),
        Cell::Suppressed(mark) => mark.clone(),
    }
}

/// A total as text: `≥ n` when a suppressed cell was left out.
pub(crate) fn total_text(l: Locale, total: Total) -> String {
    if total.partial {
        format!("≥ {}", l.number(total.visible))
    } else {
        l.number(total.visible)
    }
}

fn count_tick(v: f64) -> String {
    Locale::English.number(v.round() as i64)
}

fn percent_tick(v: f64) -> String {
    format!("{v:.0}%")
}

/// Counts by (city, year) of `column`.
fn by_city_year(rows: &Rows, column: &str) -> BTreeMap<(String, i32), Cell> {
    rows.iter()
        .map(|r| {
            (
                (r.text("city").to_owned(), r.int("year") as i32),
                r.cell(column),
            )
        })
        .collect()
}

async fn render<S>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let policy = PolicyTable::builtin().at(console.today()).clone();
    let years: Vec<i32> = (policy.plan_first_year..=policy.plan_last_year).collect();
    let cities: Vec<&str> = CITIES
        .iter()
        .map(|c| c.code)
        .filter(|c| claims.city.as_deref().is_none_or(|own| own == *c))
        .collect();
    let selected: Option<i32> = req
        .param("year")
        .and_then(|y| y.parse().ok())
        .filter(|y| years.contains(y));

    let new_employment = data::rows(console, claims, MODEL, "new_employment", vec![]).await?;
    let four_ones = data::rows(console, claims, MODEL, "four_ones", vec![]).await?;
    let posts = data::rows(console, claims, MODEL, "welfare_posts", vec![]).await?;
    let fund = data::rows(console, claims, MODEL, "fund", vec![]).await?;
    let reports = data::rows(console, claims, MODEL, "city_reports", vec![]).await?;

    let employed = by_city_year(&new_employment, "persons");
    let verified = by_city_year(&four_ones, "verified");
    let target = i64::from(policy.target_new_employment);

    // Province (or the city's) progress, year by year.
    let mut per_year: Vec<Total> = Vec::new();
    for y in &years {
        let mut t = Total::default();
        for ((_, year), cell) in &employed {
            if year == y {
                t.add(cell);
            }
        }
        per_year.push(t);
    }
    let mut cumulative = Vec::new();
    let mut running = Total::default();
    for t in &per_year {
        running.visible += t.visible;
        running.partial |= t.partial;
        cumulative.push(running);
    }
    let target_label = l.tf("dashboard.target_line", &[("target", &l.number(target))]);
    let progress_chart = charts::render(&Bars {
        id: "chart-progress".into(),
        title: l.t("dashboard.progress_chart_title"),
        desc: l.tf(
            "dashboard.progress_chart_desc",
            &[
                ("total", &total_text(l, running)),
                ("target", &l.number(target)),
            ],
        ),
        labels: years.iter().map(|y| y.to_string()).collect(),
        values: cumulative.iter().map(|t| t.visible as f64).collect(),
        value_labels: cumulative.iter().map(|t| total_text(l, *t)).collect(),
        line: Some((target as f64, target_label)),
        axis: l.t("dashboard.axis_persons"),
        horizontal: false,
        tick: count_tick,
    });
    let progress_table = layout::table(
        &l.t("dashboard.progress_table_caption"),
        &[
            l.t("common.year"),
            l.t("dashboard.col_new_in_year"),
            l.t("dashboard.col_cumulative"),
            l.t("dashboard.col_share_of_target"),
        ],
        html! {
            @for (i, y) in years.iter().enumerate() {
                tr {
                    th scope="row" { (y) }
                    td.num { (total_text(l, per_year[i])) }
                    td.num { (total_text(l, cumulative[i])) }
                    td.num { (l.percent_bp(cumulative[i].visible * 10_000 / target.max(1))) }
                }
            }
        },
    );

    // By city, for the selected year or the whole plan.
    let city_totals: Vec<Total> = cities
        .iter()
        .map(|c| {
            let mut t = Total::default();
            for y in &years {
                if selected.is_none_or(|s| s == *y)
                    && let Some(cell) = employed.get(&((*c).to_owned(), *y))
                {
                    t.add(cell);
                }
            }
            t
        })
        .collect();
    let period = match selected {
        Some(y) => y.to_string(),
        None => l.tf(
            "dashboard.all_years",
            &[
                ("first", &policy.plan_first_year.to_string()),
                ("last", &policy.plan_last_year.to_string()),
            ],
        ),
    };
    let city_chart = charts::render(&Bars {
        id: "chart-cities".into(),
        title: l.tf("dashboard.city_chart_title", &[("period", &period)]),
        desc: l.tf("dashboard.city_chart_desc", &[("period", &period)]),
        labels: cities.iter().map(|c| l.label("city", c)).collect(),
        values: city_totals.iter().map(|t| t.visible as f64).collect(),
        value_labels: cities
            .iter()
            .zip(&city_totals)
            .map(|(c, t)| {
                match (
                    selected,
                    employed.get(&((*c).to_owned(), selected.unwrap_or(0))),
                ) {
                    (Some(_), Some(Cell::Suppressed(mark))) => mark.clone(),
                    _ => total_text(l, *t),
                }
            })
            .collect(),
        line: None,
        axis: l.t("dashboard.axis_persons"),
        horizontal: true,
        tick: count_tick,
    });
    let base = console.base();
    let year_links = html! {
        nav.year-switch aria-label=(l.t("dashboard.year_switch")) {
            ul {
                li {
                    @if selected.is_none() {
                        a href={ (base) "/dashboard" } aria-current="page" { (l.t("dashboard.year_all")) }
                    } @else {
                        a href={ (base) "/dashboard" } { (l.t("dashboard.year_all")) }
                    }
                }
                @for y in &years {
                    li {
                        @if selected == Some(*y) {
                            a href={ (base) "/dashboard?year=" (y) } aria-current="page" { (y) }
                        } @else {
                            a href={ (base) "/dashboard?year=" (y) } { (y) }
                        }
                    }
                }
            }
        }
    };
    let city_year_table = |caption: String, cells: &BTreeMap<(String, i32), Cell>| {
        let lines: Vec<(&str, Vec<Cell>, Total)> = cities
            .iter()
            .map(|c| {
                let row: Vec<Cell> = years
                    .iter()
                    .map(|y| {
                        cells
                            .get(&((*c).to_owned(), *y))
                            .cloned()
                            .unwrap_or(Cell::Count(0))
                    })
                    .collect();
                let mut total = Total::default();
                row.iter().for_each(|cell| total.add(cell));
                (*c, row, total)
            })
            .collect();
        let mut columns = vec![l.t("common.city")];
        columns.extend(years.iter().map(|y| y.to_string()));
        columns.push(l.t("common.total"));
        layout::scroll_table(
            &caption,
            &columns,
            html! {
                @for (c, row, total) in &lines {
                    tr {
                        th scope="row" { (l.label("city", c)) }
                        @for cell in row {
                            td.num { (cell_text(l, cell)) }
                        }
                        td.num { (total_text(l, *total)) }
                    }
                }
            },
        )
    };

    // Public-welfare posts and the fund, by year.
    let mut post_years: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for r in posts.iter() {
        let e = post_years.entry(r.int("year") as i32).or_default();
        e.0 += r.int("total_posts");
        e.1 += r.int("disabled_posts");
    }
    let mut fund_years: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for r in fund.iter() {
        let e = fund_years.entry(r.int("year") as i32).or_default();
        e.0 += r.int("fund_base_fen");
        e.1 += r.int("pwp_social_insurance_fen");
    }
    let posts_min = i64::from(policy.pwp_disabled_share_min_bp);
    let fund_cap = i64::from(policy.fund_pwp_cap_bp);
    let posts_chart = charts::render(&Bars {
        id: "chart-posts".into(),
        title: l.t("dashboard.posts_chart_title"),
        desc: l.tf(
            "dashboard.posts_chart_desc",
            &[("min", &l.percent_bp(posts_min))],
        ),
        labels: post_years.keys().map(|y| y.to_string()).collect(),
        values: post_years
            .values()
            .map(|(t, d)| share_bp(*d, *t) as f64 / 100.0)
            .collect(),
        value_labels: post_years
            .values()
            .map(|(t, d)| l.percent_bp(share_bp(*d, *t)))
            .collect(),
        line: Some((
            posts_min as f64 / 100.0,
            l.tf("dashboard.min_line", &[("min", &l.percent_bp(posts_min))]),
        )),
        axis: l.t("dashboard.axis_share"),
        horizontal: false,
        tick: percent_tick,
    });
    let fund_chart = charts::render(&Bars {
        id: "chart-fund".into(),
        title: l.t("dashboard.fund_chart_title"),
        desc: l.tf(
            "dashboard.fund_chart_desc",
            &[("cap", &l.percent_bp(fund_cap))],
        ),
        labels: fund_years.keys().map(|y| y.to_string()).collect(),
        values: fund_years
            .values()
            .map(|(b, p)| share_bp(*p, *b) as f64 / 100.0)
            .collect(),
        value_labels: fund_years
            .values()
            .map(|(b, p)| l.percent_bp(share_bp(*p, *b)))
            .collect(),
        line: Some((
            fund_cap as f64 / 100.0,
            l.tf("dashboard.cap_line", &[("cap", &l.percent_bp(fund_cap))]),
        )),
        axis: l.t("dashboard.axis_share"),
        horizontal: false,
        tick: percent_tick,
    });

    let report_of: BTreeMap<(String, i32), (String, bool)> = reports
        .iter()
        .map(|r| {
            (
                (r.text("city").to_owned(), r.int("year") as i32),
                (r.text("submitted_on").to_owned(), r.flag("overdue")),
            )
        })
        .collect();
    let mut report_columns = vec![l.t("common.city")];
    report_columns.extend(years.iter().map(|y| y.to_string()));

    Ok(html! {
        p.lead { (l.tf("dashboard.intro", &[("target", &l.number(target))])) }
        p.note { (l.t("dashboard.suppression_note")) }
        section aria-labelledby="h-progress" {
            h2 #h-progress { (l.t("dashboard.progress_heading")) }
            (layout::figure(progress_chart, &l.t("dashboard.progress_chart_title"), progress_table))
        }
        section aria-labelledby="h-cities" {
            h2 #h-cities { (l.t("dashboard.cities_heading")) }
            (year_links)
            (layout::figure(city_chart, &l.tf("dashboard.city_chart_title", &[("period", &period)]),
                city_year_table(l.t("dashboard.cities_table_caption"), &employed)))
        }
        section aria-labelledby="h-four-ones" {
            h2 #h-four-ones { (l.t("dashboard.four_ones_heading")) }
            p { (l.t("dashboard.four_ones_intro")) }
            (city_year_table(l.t("dashboard.four_ones_table_caption"), &verified))
        }
        section aria-labelledby="h-posts" {
            h2 #h-posts { (l.t("dashboard.posts_heading")) }
            (layout::figure(posts_chart, &l.t("dashboard.posts_chart_title"), share_table(l, &l.t("dashboard.posts_table_caption"), [
                l.t("dashboard.col_posts"),
                l.t("dashboard.col_disabled_posts"),
                l.tf("dashboard.col_meets_min", &[("min", &l.percent_bp(posts_min))]),
            ], &post_years, |n| l.number(n), |bp| bp >= posts_min)))
        }
        section aria-labelledby="h-fund" {
            h2 #h-fund { (l.t("dashboard.fund_heading")) }
            (layout::figure(fund_chart, &l.t("dashboard.fund_chart_title"), share_table(l, &l.t("dashboard.fund_table_caption"), [
                l.t("dashboard.col_fund_base"),
                l.t("dashboard.col_fund_pwp"),
                l.tf("dashboard.col_within_cap", &[("cap", &l.percent_bp(fund_cap))]),
            ], &fund_years, |fen| l.money_fen(fen), |bp| bp <= fund_cap)))
        }
        section aria-labelledby="h-reports" {
            h2 #h-reports { (l.t("dashboard.reports_heading")) }
            (layout::scroll_table(&l.t("dashboard.reports_table_caption"), &report_columns, html! {
                @for c in &cities {
                    tr {
                        th scope="row" { (l.label("city", c)) }
                        @for y in &years {
                            td { (report_status(l, report_of.get(&((*c).to_owned(), *y)))) }
                        }
                    }
                }
            }))
        }
    })
}

/// `part` of `whole` in basis points (0 for no whole).
fn share_bp(part: i64, whole: i64) -> i64 {
    if whole <= 0 { 0 } else { part * 10_000 / whole }
}

/// A table of a part against its whole per year (`years`: year → (whole,
/// part)): year, whole and part as `show` writes them, the share, and
/// whether the share passes `ok`. `headers` name the whole, the part and
/// the test.
fn share_table(
    l: Locale,
    caption: &str,
    headers: [String; 3],
    years: &BTreeMap<i32, (i64, i64)>,
    show: impl Fn(i64) -> String,
    ok: impl Fn(i64) -> bool,
) -> Markup {
    let [whole_header, part_header, ok_header] = headers;
    layout::table(
        caption,
        &[
            l.t("common.year"),
            whole_header,
            part_header,
            l.t("dashboard.col_share"),
            ok_header,
        ],
        html! {
            @for (y, (whole, part)) in years {
                tr {
                    th scope="row" { (y) }
                    td.num { (show(*whole)) }
                    td.num { (show(*part)) }
                    td.num { (l.percent_bp(share_bp(*part, *whole))) }
                    td { (layout::yes_no(l, ok(share_bp(*part, *whole)))) }
                }
            }
        },
    )
}

fn report_status(l: Locale, report: Option<&(String, bool)>) -> Markup {
    match report {
        Some((submitted, overdue)) if !submitted.is_empty() => html! {
            span.status.status-yes {
                span aria-hidden="true" { "✓ " }
                @if *overdue {
                    (l.tf("dashboard.report_submitted_late", &[("date", &l.date_text(submitted))]))
                } @else {
                    (l.tf("dashboard.report_submitted", &[("date", &l.date_text(submitted))]))
                }
            }
        },
        Some((_, true)) => html! {
            span.status.status-no { span aria-hidden="true" { "✗ " } (l.t("dashboard.report_overdue")) }
        },
        _ => html! {
            span.status { span aria-hidden="true" { "– " } (l.t("dashboard.report_none")) }
        },
    }
}
