//! The auditors' pages: a person's timeline (`pathway_audit::history`: every
//! event about the person in log order with actor and cause, personal
//! fields pseudonymised unless a warrant names this auditor) and the log's
//! verification status (`pathway_audit::verify`: the hash chain verified up
//! to the head, carried on from the last verified position on each visit,
//! and the last signed checkpoint checked against the log).

use axum::{
    extract::{OriginalUri, State},
    http::HeaderMap,
    response::Response,
};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use pathway_audit::{
    CHECKPOINT_STREAM,
    checkpoint::{Checkpoint, key_id},
    history::{self, Subject, SubjectKind},
    verify,
};
use pathway_domain::Event;
use pathway_server::token::Claims;
use pathway_store::{EventStore, ReadFilter};

use crate::{
    Console, Shared,
    data::ConsoleError,
    layout,
    pages::{respond, signed_in},
    session::{Need, Req},
};

/// Checkpoints read from their stream at most (the last one is shown).
const CHECKPOINTS_READ_MAX: usize = 100_000;

/// `GET /audit/timeline?person=`.
pub(crate) async fn timeline<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (req, claims) = match signed_in(&console, &uri, &headers, Need::Auditor) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let rendered = render_timeline(&console, &req, &claims).await;
    respond(
        &console,
        &req,
        "timeline.title",
        "/audit/timeline",
        rendered,
    )
}

async fn render_timeline<S: EventStore>(
    console: &Console<S>,
    req: &Req,
    claims: &Claims,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let person = req.param("person").map(str::to_owned);
    let form = html! {
        form.search method="get" action={ (console.base()) "/audit/timeline" } {
            div.field {
                label for="person" { (l.t("timeline.person_label")) }
                p.hint #person-help { (l.t("timeline.person_help")) }
                input #person type="text" name="person" value=(person.as_deref().unwrap_or(""))
                    maxlength="64" spellcheck="false" autocomplete="off" aria-describedby="person-help";
            }
            input type="hidden" name="lang" value=(l.code());
            button type="submit" { (l.t("timeline.submit")) }
        }
    };
    let Some(person) = person else {
        return Ok(html! { p.lead { (l.t("timeline.intro")) } (form) });
    };
    let subject = Subject {
        kind: SubjectKind::Person,
        reference: person.clone(),
    };
    let found = history::history(&console.ctx.store, &subject, Some(&claims.sub), Utc::now()).await;
    let history = match found {
        Ok(h) => h,
        Err(pathway_audit::AuditError::Invalid(_)) => {
            return Ok(html! {
                (form)
                p.error role="alert" { (l.t("timeline.invalid")) }
            });
        }
        Err(e) => return Err(ConsoleError::Unavailable(e.to_string())),
    };
    Ok(html! {
        (form)
        p role="status" {
            (l.tf("timeline.summary", &[
                ("count", &l.number(history.entries.len() as i64)),
                ("through", &l.number(history.through_position as i64)),
            ]))
            " "
            @if history.warrant.is_some() {
                (l.t("timeline.warranted"))
            } @else {
                (l.t("timeline.pseudonymised"))
            }
        }
        @if history.entries.is_empty() {
            p { (l.t("timeline.none")) }
        } @else {
            ol.timeline aria-label=(l.t("timeline.list_label")) {
                @for e in &history.entries {
                    li {
                        h2.entry-title {
                            span.position { (l.tf("timeline.position", &[("position", &l.number(e.position as i64))])) }
                            " "
                            code { (e.event_type) }
                        }
                        dl.entry {
                            dt { (l.t("timeline.recorded_at")) } dd { (l.datetime(e.recorded_at)) }
                            dt { (l.t("timeline.occurred_at")) } dd { (e.occurred_at.map_or(l.t("common.unknown"), |t| l.datetime(t))) }
                            dt { (l.t("timeline.stream")) } dd { code { (e.stream_id) } " #" (e.stream_version) }
                            dt { (l.t("timeline.actor")) } dd {
                                (layout::department(l, &e.actor_department, None)) " · "
                                (l.label("city", &e.actor_region)) " · "
                                code { (e.actor_id) }
                            }
                            dt { (l.t("timeline.cause")) } dd {
                                (l.t("timeline.command")) " " code { (e.command_id) } "; "
                                (l.t("timeline.causation")) " " code { (e.causation_id) } "; "
                                (l.t("timeline.correlation")) " " code { (e.correlation_id) }
                            }
                        }
                        details {
                            summary { (l.t("timeline.payload")) }
                            pre { (serde_json::to_string_pretty(&e.payload).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    })
}

/// How far the chain has been verified.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) position: u64,
    pub(crate) hash: [u8; 32],
    /// Records checked since the console started.
    pub(crate) checked: u64,
    /// The first break found, described.
    pub(crate) first_break: Option<String>,
    pub(crate) at: DateTime<Utc>,
}

/// `GET /audit/verification`.
pub(crate) async fn verification<S: EventStore + Clone + Send + Sync + 'static>(
    State(console): State<Shared<S>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (req, _claims) = match signed_in(&console, &uri, &headers, Need::Auditor) {
        Ok(x) => x,
        Err(response) => return *response,
    };
    let rendered = render_verification(&console, &req).await;
    respond(
        &console,
        &req,
        "verification.title",
        "/audit/verification",
        rendered,
    )
}

/// Verifies the chain from the last verified position to the head.
pub(crate) async fn verify_to_head<S: EventStore + Clone + Send + Sync + 'static>(
    console: &Console<S>,
) -> Result<Verified, ConsoleError> {
    let mut state = console.verified.lock().await;
    if let Some(v) = state.as_ref()
        && v.first_break.is_some()
    {
        return Ok(v.clone());
    }
    let from = state.as_ref().map_or(1, |v| v.position + 1);
    let head = console
        .ctx
        .store
        .head()
        .await
        .map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    if let Some(v) = state.as_mut()
        && head.position < from
    {
        v.at = Utc::now();
        return Ok(v.clone());
    }
    // The verifier's observer is a `&mut dyn FnMut`, which is not `Send`:
    // run it on a blocking thread of its own.
    let store = console.ctx.store.clone();
    let to = head.position;
    let report = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current()
            .block_on(async { verify::verify_store(&store, from, Some(to), &mut |_| {}).await })
    })
    .await
    .map_err(|e| ConsoleError::Unavailable(format!("verification task: {e}")))?
    .map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let checked = state.as_ref().map_or(0, |v| v.checked) + report.checked;
    let verified = Verified {
        position: report.head.position,
        hash: report.head.hash,
        checked,
        first_break: report.first_break.as_ref().map(verify::describe),
        at: Utc::now(),
    };
    *state = Some(verified.clone());
    Ok(verified)
}

/// The last signed checkpoint in the log.
async fn last_checkpoint<S: EventStore>(store: &S) -> Result<Option<Checkpoint>, ConsoleError> {
    let records = store
        .read_stream(CHECKPOINT_STREAM, 1, CHECKPOINTS_READ_MAX)
        .await
        .map_err(|e| ConsoleError::Unavailable(e.to_string()))?;
    let Some(r) = records.last() else {
        return Ok(None);
    };
    match pathway_engine::decode(r) {
        Ok(Event::LogCheckpointSigned(e)) => Checkpoint::from_event(&e, r.position)
            .map(Some)
            .map_err(|e| ConsoleError::Unavailable(e.to_string())),
        Ok(_) => Ok(None),
        Err(e) => Err(ConsoleError::Unavailable(e.to_string())),
    }
}

async fn render_verification<S: EventStore + Clone + Send + Sync + 'static>(
    console: &Console<S>,
    req: &Req,
) -> Result<Markup, ConsoleError> {
    let l = req.locale;
    let verified = verify_to_head(console).await?;
    let checkpoint = last_checkpoint(&console.ctx.store).await?;
    let stored_at_checkpoint = match &checkpoint {
        Some(cp) if cp.position > 0 => console
            .ctx
            .store
            .read_all(cp.position, 1, &ReadFilter::all())
            .await
            .map_err(|e| ConsoleError::Unavailable(e.to_string()))?
            .first()
            .filter(|r| r.position == cp.position)
            .map(|r| r.hash),
        _ => None,
    };
    let trusted = console.ctx.options.trusted_checkpoint_key.as_ref();
    Ok(html! {
        section aria-labelledby="h-chain" {
            h2 #h-chain { (l.t("verification.chain_heading")) }
            @match &verified.first_break {
                None => p.status.status-yes role="status" {
                    span aria-hidden="true" { "✓ " }
                    (l.tf("verification.chain_ok", &[("position", &l.number(verified.position as i64))]))
                },
                Some(why) => p.status.status-no role="alert" {
                    span aria-hidden="true" { "✗ " }
                    (l.tf("verification.chain_broken", &[("detail", why)]))
                },
            }
            dl.summary {
                dt { (l.t("verification.last_position")) } dd { (l.number(verified.position as i64)) }
                dt { (l.t("verification.head_hash")) } dd { code.hash { (hex::encode(verified.hash)) } }
                dt { (l.t("verification.checked")) } dd { (l.number(verified.checked as i64)) }
                dt { (l.t("verification.verified_at")) } dd { (l.datetime(verified.at)) }
            }
        }
        section aria-labelledby="h-checkpoint" {
            h2 #h-checkpoint { (l.t("verification.checkpoint_heading")) }
            @match &checkpoint {
                None => p { (l.t("verification.no_checkpoint")) },
                Some(cp) => {
                    dl.summary {
                        dt { (l.t("verification.cp_position")) } dd { (l.number(cp.position as i64)) }
                        dt { (l.t("verification.cp_hash")) } dd { code.hash { (hex::encode(cp.head_hash)) } }
                        dt { (l.t("verification.cp_signed_at")) } dd { (l.datetime(cp.signed_at)) }
                        dt { (l.t("verification.cp_key")) } dd { code { (key_id(&cp.public_key)) } }
                        dt { (l.t("verification.cp_event")) } dd { (cp.event_position.map_or(l.t("common.unknown"), |p| l.number(p as i64))) }
                    }
                    @match trusted {
                        Some(key) => @match cp.check_signature(key) {
                            Ok(()) => p.status.status-yes { span aria-hidden="true" { "✓ " } (l.t("verification.signature_ok")) },
                            Err(why) => p.status.status-no role="alert" { span aria-hidden="true" { "✗ " } (l.tf("verification.signature_bad", &[("detail", &why)])) },
                        },
                        None => p.status { span aria-hidden="true" { "? " } (l.t("verification.signature_unchecked")) },
                    }
                    @if cp.position > verified.position {
                        p.status { span aria-hidden="true" { "? " } (l.t("verification.cp_beyond")) }
                    } @else if stored_at_checkpoint == Some(cp.head_hash) {
                        p.status.status-yes { span aria-hidden="true" { "✓ " } (l.tf("verification.cp_holds", &[("position", &l.number(cp.position as i64))])) }
                    } @else {
                        p.status.status-no role="alert" { span aria-hidden="true" { "✗ " } (l.tf("verification.cp_rewritten", &[("position", &l.number(cp.position as i64))])) }
                    }
                }
            }
        }
    })
}
