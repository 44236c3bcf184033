//! Civil Affairs' phase-out calendar (model `civil_affairs`, table
//! `households`): active phase-outs ending within
//! [`PHASE_OUT_WINDOW_DAYS`], those past their planned end and not yet
//! completed, and reassessments requested more than
//! [`REASSESSMENT_DUE_DAYS`] ago and not yet done. `?on=YYYY-MM-DD` reads
//! the calendar as of another day.

use axum::{
    extract::{OriginalUri, State},
    http::HeaderMap,
    response::Response,
};
use chrono::NaiveDate;
use maud::{Markup, html};
use pathway_projections::Value;
use pathway_server::token::Claims;
use pathway_store::EventStore;

use crate::{
    Console, Locale, PHASE_OUT_WINDOW_DAYS, REASSESSMENT_DUE_DAYS, Shared,
    data::{self, ConsoleError},
    layout,
    pages::{respond, signed_in},
    session::{Need, Req},
};

const MODEL: &str = "civil_affairs";

/// `GET /phase-outs?on=`.
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
    respond(&console, &req, "phase_outs.title", "/phase-outs", rendered)
}

struct Line {
    household: String,
    phase_out: String,
    start: String,
    end: NaiveDate,
    days_left: i64,
}

struct Reassessment {
    household: String,
    requested: NaiveDate,
    last_assessed: Option<NaiveDate>,
    days_waiting: i64,
}

async fn render<S>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let today = req
        .param("on")
        .and_then(|d| d.parse::<NaiveDate>().ok())
        .unwrap_or_else(|| console.today());
    let households = data::rows(console, claims, MODEL, "households", vec![]).await?;
    let mut active: Vec<Line> = households
        .iter()
        .filter(|r| matches!(r.get("phase_out_state"), Value::Text(s) if s == "active"))
        .filter_map(|r| {
            let end = r.text("planned_end").parse::<NaiveDate>().ok()?;
            Some(Line {
                household: r.text("household_ref").to_owned(),
                phase_out: r.text("phase_out_id").to_owned(),
                start: r.text("phase_out_start").to_owned(),
                end,
                days_left: (end - today).num_days(),
            })
        })
        .collect();
    active.sort_by(|a, b| a.end.cmp(&b.end).then(a.household.cmp(&b.household)));
    let ending: Vec<&Line> = active
        .iter()
        .filter(|x| (0..=PHASE_OUT_WINDOW_DAYS).contains(&x.days_left))
        .collect();
    let overdue: Vec<&Line> = active.iter().filter(|x| x.days_left < 0).collect();
    let mut reassessments: Vec<Reassessment> = households
        .iter()
        .filter_map(|r| {
            let requested = r
                .text("reassessment_requested_on")
                .parse::<NaiveDate>()
                .ok()?;
            let last_assessed = r.text("last_assessed_on").parse::<NaiveDate>().ok();
            if last_assessed.is_some_and(|a| a >= requested) {
                return None;
            }
            let days_waiting = (today - requested).num_days();
            (days_waiting > REASSESSMENT_DUE_DAYS).then(|| Reassessment {
                household: r.text("household_ref").to_owned(),
                requested,
                last_assessed,
                days_waiting,
            })
        })
        .collect();
    reassessments.sort_by_key(|a| a.requested);
    let base = console.base();
    Ok(html! {
        p.lead { (l.tf("phase_outs.intro", &[("today", &l.date(today)), ("active", &l.number(active.len() as i64))])) }
        form.search method="get" action={ (base) "/phase-outs" } {
            div.field {
                label for="on" { (l.t("phase_outs.on_label")) }
                input #on type="date" name="on" value=(today.to_string());
            }
            input type="hidden" name="lang" value=(l.code());
            button type="submit" { (l.t("phase_outs.on_submit")) }
        }
        section aria-labelledby="h-ending" {
            h2 #h-ending { (l.tf("phase_outs.ending_heading", &[("days", &PHASE_OUT_WINDOW_DAYS.to_string()), ("count", &l.number(ending.len() as i64))])) }
            (calendar(l, &ending, &l.t("phase_outs.ending_caption")))
        }
        section aria-labelledby="h-overdue" {
            h2 #h-overdue { (l.tf("phase_outs.overdue_heading", &[("count", &l.number(overdue.len() as i64))])) }
            (calendar(l, &overdue, &l.t("phase_outs.overdue_caption")))
        }
        section aria-labelledby="h-reassess" {
            h2 #h-reassess { (l.tf("phase_outs.reassess_heading", &[("days", &REASSESSMENT_DUE_DAYS.to_string()), ("count", &l.number(reassessments.len() as i64))])) }
            @if reassessments.is_empty() {
                p { (l.t("phase_outs.none")) }
            } @else {
                (layout::scroll_table(&l.t("phase_outs.reassess_caption"), &[
                    l.t("phase_outs.household"),
                    l.t("phase_outs.requested_on"),
                    l.t("phase_outs.last_assessed_on"),
                    l.t("phase_outs.days_waiting"),
                ], html! {
                    @for r in &reassessments {
                        tr {
                            th scope="row" { code { (r.household) } }
                            td { (l.date(r.requested)) }
                            td { (r.last_assessed.map_or(l.t("phase_outs.never"), |d| l.date(d))) }
                            td.num { (l.number(r.days_waiting)) }
                        }
                    }
                }))
            }
        }
    })
}

fn calendar(l: Locale, lines: &[&Line], caption: &str) -> Markup {
    html! {
        @if lines.is_empty() {
            p { (l.t("phase_outs.none")) }
        } @else {
            (layout::scroll_table(caption, &[
                l.t("phase_outs.household"),
                l.t("phase_outs.phase_out"),
                l.t("phase_outs.started"),
                l.t("phase_outs.planned_end"),
                l.t("phase_outs.days_left"),
            ], html! {
                @for x in lines {
                    tr {
                        th scope="row" { code { (x.household) } }
                        td { code { (x.phase_out) } }
                        td { (l.date_text(&x.start)) }
                        td { (l.date(x.end)) }
                        td.num {
                            @if x.days_left < 0 {
                                (l.tf("phase_outs.days_over", &[("days", &l.number(-x.days_left))]))
                            } @else {
                                (l.number(x.days_left))
                            }
                        }
                    }
                }
            }))
        }
    }
}
