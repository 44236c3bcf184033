//! A DPF's case list (model `dpf`, table `persons`) with search, and one
//! person's case page. A city DPF sees only its city's residents; another
//! city's person is refused with a 403 page, as the API refuses their rows.
//!
//! The case page reads the person's own stream and their graduate ledgers
//! through the DPF's view of each event (`pathway_projections::views::dpf`),
//! so it shows exactly what the DPF's read model may hold: no wage, no
//! income. The phase-out flag comes from the read model's `persons` row.

use std::collections::BTreeMap;

use axum::{
    extract::{OriginalUri, Path, State},
    http::HeaderMap,
    response::Response,
};
use maud::{Markup, html};
use pathway_domain::{policy::PolicyTable, validate::CITIES};
use pathway_projections::{
    Value,
    views::{self, DpfView},
};
use pathway_server::token::Claims;
use pathway_store::EventStore;

use crate::{
    Console, Locale, SEARCH_CHARS_MAX, Shared,
    data::{self, ConsoleError, Row},
    layout,
    pages::{respond, signed_in},
    session::{Need, Req},
};

const MODEL: &str = "dpf";
/// Events of one stream read for a case page at most.
const STREAM_EVENTS_MAX: usize = 10_000;

/// `GET /cases?q=&city=&employed=&phase_out=&page=`.
pub(crate) async fn list<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (req, claims) = match signed_in(&console, &uri, &headers, Need::Model(MODEL)) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let rendered = render_list(&console, &req, &claims).await;
    respond(&console, &req, "cases.title", "/cases", rendered)
}

/// The columns the search box matches the start of (PersonRefs are
/// lowercase).
const SEARCH_COLUMNS: &[&str] = &["person_ref", "county"];

async fn render_list<S>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let base = console.base();
    let q: Option<String> = req
        .param("q")
        .map(|q| q.chars().take(SEARCH_CHARS_MAX).collect());
    let city_filter = match (&claims.city, req.param("city")) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ConsoleError::Forbidden("forbidden.other_city"));
        }
        (Some(own), _) => Some(own.clone()),
        (None, Some(asked)) if CITIES.iter().any(|c| c.code == asked) => Some(asked.to_owned()),
        (None, _) => None,
    };
    let employed = req.param("employed");
    let phase_out = req.param("phase_out") == Some("yes");
    let mut filters = Vec::new();
    if let Some(city) = &city_filter {
        filters.push(("city", Value::Text(city.clone())));
    }
    match employed {
        Some("yes") => filters.push(("employed", Value::Bool(true))),
        Some("no") => filters.push(("employed", Value::Bool(false))),
        _ => {}
    }
    if phase_out {
        filters.push(("in_phase_out", Value::Bool(true)));
    }
    let search = q
        .as_deref()
        .filter(|q| !q.is_empty())
        .map(|q| (SEARCH_COLUMNS, q.to_ascii_lowercase()));
    let per_page = console.ctx.options.page_rows.max(1);
    let asked: usize = req
        .param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut find = data::Find {
        filters,
        search,
        page: asked,
        per_page,
    };
    let (mut found, mut persons) =
        data::search_rows(console, claims, MODEL, "persons", find.clone()).await?;
    let pages = (found as usize).div_ceil(per_page).max(1);
    let page = asked.min(pages);
    if page != asked {
        // Past the last page: show the last one.
        find.page = page;
        (found, persons) = data::search_rows(console, claims, MODEL, "persons", find).await?;
    }
    let shown: Vec<Row<'_>> = persons.iter().collect();
    let scope = match &city_filter {
        Some(c) => l.label("city", c),
        None => l.t("cases.all_cities"),
    };
    Ok(html! {
        p.lead { (l.tf("cases.intro", &[("scope", &scope)])) }
        form.search method="get" action={ (base) "/cases" } role="search" aria-label=(l.t("cases.search_label")) {
            div.field {
                label for="q" { (l.t("cases.search_label")) }
                p.hint #q-help { (l.t("cases.search_help")) }
                input #q type="search" name="q" value=(q.as_deref().unwrap_or("")) maxlength=(SEARCH_CHARS_MAX) aria-describedby="q-help";
            }
            @if claims.city.is_none() {
                div.field {
                    label for="city" { (l.t("common.city")) }
                    select #city name="city" {
                        option value="" { (l.t("cases.all_cities")) }
                        @for c in CITIES.iter() {
                            @if city_filter.as_deref() == Some(c.code) {
                                option value=(c.code) selected { (l.label("city", c.code)) }
                            } @else {
                                option value=(c.code) { (l.label("city", c.code)) }
                            }
                        }
                    }
                }
            }
            div.field {
                label for="employed" { (l.t("cases.employed_filter")) }
                select #employed name="employed" {
                    @for (value, key) in [("", "cases.any"), ("yes", "cases.employed_yes"), ("no", "cases.employed_no")] {
                        @if employed.unwrap_or("") == value {
                            option value=(value) selected { (l.t(key)) }
                        } @else {
                            option value=(value) { (l.t(key)) }
                        }
                    }
                }
            }
            div.field.checkbox {
                @if phase_out {
                    input #phase_out type="checkbox" name="phase_out" value="yes" checked;
                } @else {
                    input #phase_out type="checkbox" name="phase_out" value="yes";
                }
                label for="phase_out" { (l.t("cases.phase_out_filter")) }
            }
            input type="hidden" name="lang" value=(l.code());
            button type="submit" { (l.t("cases.search_submit")) }
        }
        p role="status" { (l.tf("cases.found", &[("count", &l.number(found as i64))])) }
        @if !persons.rows.is_empty() {
            (layout::scroll_table(&l.t("cases.table_caption"), &[
                l.t("cases.col_person"),
                l.t("common.city"),
                l.t("cases.col_county"),
                l.t("cases.col_sex"),
                l.t("cases.col_birth_year"),
                l.t("cases.col_registered"),
                l.t("cases.col_category"),
                l.t("cases.col_employed"),
                l.t("cases.col_phase_out"),
            ], html! {
                @for r in &shown {
                    tr {
                        th scope="row" {
                            a href={ (base) "/cases/" (r.text("person_ref")) } {
                                span.visually-hidden { (l.t("cases.open_case")) " " }
                                code { (short_ref(r.text("person_ref"))) }
                            }
                        }
                        td { (l.label("city", r.text("city"))) }
                        td { (r.text("county")) }
                        td { (l.label("sex", r.text("sex"))) }
                        td.num { (r.int("birth_year")) }
                        td { (l.date_text(r.text("registered_on"))) }
                        td { (category(l, r)) }
                        td {
                            (layout::yes_no(l, r.flag("employed")))
                            @if r.flag("employed") && !r.text("employment_form").is_empty() {
                                " (" (l.label("form", r.text("employment_form"))) ")"
                            }
                        }
                        td { (phase_out_text(l, r)) }
                    }
                }
            }))
            (layout::pagination(l, req, page, pages))
        }
    })
}

/// The first block of a PersonRef (the full one is in the link and on the case page).
fn short_ref(r: &str) -> &str {
    r.split('-').next().unwrap_or(r)
}

fn category(l: Locale, r: &Row<'_>) -> String {
    match (r.int("certificate_category"), r.int("certificate_grade")) {
        (0, _) => l.t("common.unknown"),
        (c, 0) => l.label("category", &c.to_string()),
        (c, g) => l.tf(
            "cases.category_grade",
            &[
                ("category", &l.label("category", &c.to_string())),
                ("grade", &g.to_string()),
            ],
        ),
    }
}

fn phase_out_text(l: Locale, r: &Row<'_>) -> Markup {
    if r.flag("in_phase_out") {
        let until = r.text("phase_out_until");
        html! {
            span.status.status-warn {
                span aria-hidden="true" { "⚑ " }
                @if until.is_empty() {
                    (l.t("cases.in_phase_out"))
                } @else {
                    (l.tf("cases.in_phase_out_until", &[("date", &l.date_text(until))]))
                }
            }
        }
    } else {
        html! { span.status { (l.t("cases.not_in_phase_out")) } }
    }
}

/// `GET /cases/{person_ref}`.
pub(crate) async fn person<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(person_ref): Path<String>,
) -> Response {
    let (req, claims) = match signed_in(&console, &uri, &headers, Need::Model(MODEL)) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let rendered = render_person(&console, &req, &claims, &person_ref).await;
    respond(&console, &req, "case.title", "/cases", rendered)
}

/// What the DPF's view of a person's events says, in order.
#[derive(Default)]
struct Case {
    erased: bool,
    /// Year → (verified, wants work, assessed, need registered, served).
    four_ones: BTreeMap<i32, [bool; 5]>,
    /// Programme → (type, enrolled on, completed on, passed, subsidy fen).
    training: BTreeMap<String, Training>,
    /// Placement id → placement.
    placements: BTreeMap<String, Placement>,
    new_employment_years: Vec<i32>,
    /// Ledger id → ledger.
    ledgers: BTreeMap<String, Ledger>,
}

#[derive(Default)]
struct Training {
    training_type: String,
    enrolled_on: Option<chrono::NaiveDate>,
    completed_on: Option<chrono::NaiveDate>,
    passed: Option<bool>,
    subsidy_fen: i64,
}

#[derive(Default)]
struct Placement {
    form: String,
    employer: String,
    start: Option<chrono::NaiveDate>,
    end: Option<chrono::NaiveDate>,
    social_insurance: bool,
}

#[derive(Default)]
struct Ledger {
    year: i32,
    school: String,
    plan_set: bool,
    services: i64,
    outcome: Option<String>,
}

impl Case {
    fn apply(&mut self, view: DpfView) {
        match view {
            DpfView::Erased(_) => self.erased = true,
            DpfView::Verified(v) => {
                let e = self.four_ones.entry(v.year).or_default();
                e[0] = true;
                e[1] = v.wants_work;
            }
            DpfView::Assessed(v) => self.four_ones.entry(v.year).or_default()[2] = true,
            DpfView::NeedRegistered(v) => self.four_ones.entry(v.year).or_default()[3] = true,
            DpfView::Served(v) => self.four_ones.entry(v.year).or_default()[4] = true,
            DpfView::Enrolled(v) => {
                let t = self.training.entry(v.programme_id).or_default();
                t.training_type = v.training_type;
                t.enrolled_on = v.enrolled_on;
            }
            DpfView::TrainingCompleted(v) => {
                let t = self.training.entry(v.programme_id).or_default();
                t.completed_on = v.completed_on;
                t.passed = Some(v.passed);
            }
            DpfView::Subsidy(v) => {
                self.training.entry(v.programme_id).or_default().subsidy_fen += v.subsidy_fen;
            }
            DpfView::Placed(v) => {
                let p = self.placements.entry(v.placement_id).or_default();
                p.form = v.employment_form;
                p.employer = v.employer_uscc;
                p.start = v.start_date;
                p.social_insurance = v.social_insurance_paid;
            }
            DpfView::PlacementEnded(v) => {
                self.placements.entry(v.placement_id).or_default().end = v.end_date;
            }
            DpfView::NewEmployment(v) => self.new_employment_years.push(v.year),
            DpfView::LedgerOpened(v) => {
                let g = self.ledgers.entry(v.ledger_id).or_default();
                g.year = v.year;
                g.school = v.school;
            }
            DpfView::PlanSet(v) => self.ledgers.entry(v.ledger_id).or_default().plan_set = true,
            DpfView::ServiceDelivered(v) => {
                self.ledgers.entry(v.ledger_id).or_default().services += 1;
            }
            DpfView::GraduateOutcome(v) => {
                self.ledgers.entry(v.ledger_id).or_default().outcome = Some(v.outcome);
            }
            DpfView::Registered(_)
            | DpfView::Certificate(_)
            | DpfView::Moved(_)
            | DpfView::PhaseOut(_) => {}
        }
    }
}

/// Whether `r` looks like a PersonRef (a UUID's characters), so nothing
/// else reaches a stream name.
fn plausible_ref(r: &str) -> bool {
    !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

async fn render_person<S: EventStore>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
    person_ref: &str,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    if !plausible_ref(person_ref) {
        return Err(ConsoleError::NotFound);
    }
    // Look the person up province-wide, then refuse another city's person
    // (rather than answering "not found", which would hide the reason).
    let province = Claims {
        city: None,
        ..claims.clone()
    };
    let found = data::rows(
        console,
        &province,
        MODEL,
        "persons",
        vec![("person_ref", Value::Text(person_ref.to_owned()))],
    )
    .await?;
    let Some(row) = found.iter().next() else {
        return Err(ConsoleError::NotFound);
    };
    if let Some(own) = &claims.city
        && row.text("city") != own
    {
        return Err(ConsoleError::Forbidden("forbidden.other_city_person"));
    }
    let store = &console.ctx.store;
    let mut case = Case::default();
    let mut records = store
        .read_stream(&format!("person-{person_ref}"), 1, STREAM_EVENTS_MAX)
        .await
        .map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let policy = PolicyTable::builtin().at(console.today()).clone();
    for year in policy.plan_first_year..=policy.plan_last_year + 1 {
        records.extend(
            store
                .read_stream(&format!("ledger-{person_ref}-{year}"), 1, STREAM_EVENTS_MAX)
                .await
                .map_err(|e| ConsoleError::Unavailable(e.to_string()))?,
        );
    }
    records.sort_by_key(|r| r.position);
    for r in &records {
        let event =
            pathway_engine::decode(r).map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
        if let Some(view) = views::dpf(&event) {
            case.apply(view);
        }
    }
    let base = console.base();
    let dash = "–";
    Ok(html! {
        p { a href={ (base) "/cases" } { (l.t("case.back")) } }
        @if case.erased {
            p.notice role="note" { (l.t("case.erased")) }
        }
        section aria-labelledby="h-summary" {
            h2 #h-summary { (l.t("case.summary_heading")) }
            dl.summary {
                dt { (l.t("cases.col_person")) } dd { code { (person_ref) } }
                dt { (l.t("common.city")) } dd { (l.label("city", row.text("city"))) }
                dt { (l.t("cases.col_county")) } dd { (row.text("county")) }
                dt { (l.t("cases.col_sex")) } dd { (l.label("sex", row.text("sex"))) }
                dt { (l.t("cases.col_birth_year")) } dd { (row.int("birth_year")) }
                dt { (l.t("cases.col_registered")) } dd { (l.date_text(row.text("registered_on"))) }
                dt { (l.t("cases.col_category")) } dd { (category(l, &row)) }
                dt { (l.t("cases.col_employed")) } dd {
                    (layout::yes_no(l, row.flag("employed")))
                    @if row.flag("employed") && !row.text("employment_form").is_empty() {
                        " (" (l.label("form", row.text("employment_form"))) ")"
                    }
                }
                dt { (l.t("case.open_placements")) } dd { (l.number(row.int("open_placements"))) }
                dt { (l.t("cases.col_phase_out")) } dd { (phase_out_text(l, &row)) }
            }
        }
        section aria-labelledby="h-four-ones" {
            h2 #h-four-ones { (l.t("case.four_ones_heading")) }
            @if case.four_ones.is_empty() {
                p { (l.t("case.none")) }
            } @else {
                (layout::table(&l.t("case.four_ones_caption"), &[
                    l.t("common.year"),
                    l.t("case.verified"),
                    l.t("case.wants_work"),
                    l.t("case.assessed"),
                    l.t("case.need_registered"),
                    l.t("case.served"),
                ], html! {
                    @for (year, steps) in &case.four_ones {
                        tr {
                            th scope="row" { (year) }
                            @for done in steps { td { (layout::yes_no(l, *done)) } }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-training" {
            h2 #h-training { (l.t("case.training_heading")) }
            @if case.training.is_empty() {
                p { (l.t("case.none")) }
            } @else {
                (layout::table(&l.t("case.training_caption"), &[
                    l.t("case.programme"),
                    l.t("case.training_type"),
                    l.t("case.enrolled_on"),
                    l.t("case.completed_on"),
                    l.t("case.passed"),
                    l.t("case.subsidy"),
                ], html! {
                    @for (programme, t) in &case.training {
                        tr {
                            th scope="row" { code { (programme) } }
                            td { (l.label("training", &t.training_type)) }
                            td { (t.enrolled_on.map_or(dash.to_owned(), |d| l.date(d))) }
                            td { (t.completed_on.map_or(dash.to_owned(), |d| l.date(d))) }
                            td { @match t.passed { Some(p) => (layout::yes_no(l, p)), None => (dash) } }
                            td.num { (l.money_fen(t.subsidy_fen)) }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="h-placements" {
            h2 #h-placements { (l.t("case.placements_heading")) }
            @if case.placements.is_empty() {
                p { (l.t("case.none")) }
            } @else {
                (layout::table(&l.t("case.placements_caption"), &[
                    l.t("case.placement"),
                    l.t("case.form"),
                    l.t("case.employer"),
                    l.t("case.start"),
                    l.t("case.end"),
                    l.t("case.social_insurance"),
                ], html! {
                    @for (id, p) in &case.placements {
                        tr {
                            th scope="row" { code { (short_ref(id)) } }
                            td { (l.label("form", &p.form)) }
                            td { code { (p.employer) } }
                            td { (p.start.map_or(dash.to_owned(), |d| l.date(d))) }
                            td { (p.end.map_or(l.t("case.ongoing"), |d| l.date(d))) }
                            td { (layout::yes_no(l, p.social_insurance)) }
                        }
                    }
                }))
            }
            p {
                (l.t("case.new_employment_years")) " "
                @if case.new_employment_years.is_empty() {
                    (l.t("case.none"))
                } @else {
                    (case.new_employment_years.iter().map(|y| y.to_string()).collect::<Vec<_>>().join(", "))
                }
            }
        }
        section aria-labelledby="h-ledger" {
            h2 #h-ledger { (l.t("case.ledger_heading")) }
            @if case.ledgers.is_empty() {
                p { (l.t("case.no_ledger")) }
            } @else {
                (layout::table(&l.t("case.ledger_caption"), &[
                    l.t("common.year"),
                    l.t("case.school"),
                    l.t("case.plan_set"),
                    l.t("case.services"),
                    l.t("case.outcome"),
                ], html! {
                    @for g in case.ledgers.values() {
                        tr {
                            th scope="row" { (g.year) }
                            td { (g.school) }
                            td { (layout::yes_no(l, g.plan_set)) }
                            td.num { (l.number(g.services)) }
                            td { (g.outcome.as_deref().map_or(l.t("case.no_outcome"), |o| l.label("outcome", o))) }
                        }
                    }
                }))
            }
        }
    })
}
