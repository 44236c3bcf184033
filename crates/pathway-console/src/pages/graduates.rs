//! Education's graduate outcomes (model `education`): counts by school, year
//! and outcome (`school_outcomes`), and the status of each of its graduates
//! (`graduate_outcomes`, by ledger id: no name, no disability detail).

use std::collections::BTreeMap;

use axum::{
    extract::{OriginalUri, State},
    http::HeaderMap,
    response::Response,
};
use maud::{Markup, html};
use pathway_server::token::Claims;
use pathway_store::EventStore;

use crate::{
    Console, Shared,
    data::{self, ConsoleError},
    layout,
    pages::{respond, signed_in},
    session::{Need, Req},
};

const MODEL: &str = "education";
/// Outcomes as columns, in this order.
const OUTCOMES: &[&str] = &[
    "employed",
    "further_study",
    "not_yet_employed",
    "no_intention",
];

/// `GET /graduates?page=`.
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
    respond(&console, &req, "graduates.title", "/graduates", rendered)
}

async fn render<S>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let schools = data::rows(console, claims, MODEL, "school_outcomes", vec![]).await?;
    let graduates = data::rows(console, claims, MODEL, "graduate_outcomes", vec![]).await?;
    // (school, year) → outcome → graduates.
    let mut by_school: BTreeMap<(String, i64), BTreeMap<String, i64>> = BTreeMap::new();
    for r in schools.iter() {
        *by_school
            .entry((r.text("school").to_owned(), r.int("year")))
            .or_default()
            .entry(r.text("outcome").to_owned())
            .or_default() += r.int("graduates");
    }
    let per_page = console.ctx.options.page_rows.max(1);
    let pages = graduates.len().div_ceil(per_page).max(1);
    let page: usize = req
        .param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let mut school_columns = vec![l.t("graduates.school"), l.t("common.year")];
    school_columns.extend(OUTCOMES.iter().map(|o| l.label("outcome", o)));
    school_columns.extend([l.t("graduates.pending"), l.t("common.total")]);
    Ok(html! {
        p.lead { (l.tf("graduates.intro", &[("count", &l.number(graduates.len() as i64))])) }
        section aria-labelledby="h-schools" {
            h2 #h-schools { (l.t("graduates.schools_heading")) }
            @if by_school.is_empty() {
                p { (l.t("graduates.none")) }
            } @else {
                (layout::scroll_table(&l.t("graduates.schools_caption"), &school_columns, html! {
                    @for ((school, year), counts) in &by_school {
                        tr {
                            th scope="row" { (school) }
                            td.num { (year) }
                            @for o in OUTCOMES {
                                td.num { (l.number(counts.get(*o).copied().unwrap_or(0))) }
                            }
                            td.num { (l.number(counts.iter().filter(|(k, _)| !OUTCOMES.contains(&k.as_str())).map(|(_, v)| v).sum())) }
                            td.num { (l.number(counts.values().sum())) }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-graduates" {
            h2 #h-graduates { (l.t("graduates.list_heading")) }
            @if graduates.len() == 0 {
                p { (l.t("graduates.none")) }
            } @else {
                (layout::scroll_table(&l.t("graduates.list_caption"), &[
                    l.t("graduates.ledger"),
                    l.t("graduates.school"),
                    l.t("common.year"),
                    l.t("graduates.outcome"),
                ], html! {
                    @for r in graduates.iter().skip((page - 1) * per_page).take(per_page) {
                        tr {
                            th scope="row" { code { (r.text("ledger_id")) } }
                            td { (r.text("school")) }
                            td.num { (r.int("year")) }
                            td {
                                @if r.text("outcome").is_empty() {
                                    (l.t("graduates.pending"))
                                } @else {
                                    (l.label("outcome", r.text("outcome")))
                                }
                            }
                        }
                    }
                }))
                (layout::pagination(l, req, page, pages))
            }
        }
    })
}
