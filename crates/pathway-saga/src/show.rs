//! A saga's history and pending timers, as text.

use std::fmt::Write;

use pathway_domain::Event;
use pathway_store::EventStore;

use crate::log::{self, from_ts};
use crate::{SagaError, TimerStatus};

/// Renders saga `saga_id` (its stream id, e.g. `saga-phaseout-H1`): every
/// step and firing in order, then its timers.
pub async fn render<S: EventStore>(store: &S, saga_id: &str) -> Result<String, SagaError> {
    let (log, events) = log::load(store, saga_id, true).await?;
    let mut out = String::new();
    if log.version == 0 {
        let _ = writeln!(out, "{saga_id}: no such saga");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{saga_id}: {} events, {} steps",
        log.version, log.steps
    );
    for (r, event) in &events {
        match event {
            Event::SagaStepTaken(s) => {
                let _ = writeln!(
                    out,
                    "  v{} step {} on {} @{}",
                    r.stream_version, s.step, s.input_event_type, s.input_position
                );
                for c in &s.commands {
                    let _ = writeln!(
                        out,
                        "      command {} → {}: {}",
                        c.command_id, c.stream_id, c.command_json
                    );
                }
                for t in &s.timers {
                    let change = match pathway_domain::pb::SagaTimerChange::try_from(t.change) {
                        Ok(pathway_domain::pb::SagaTimerChange::Scheduled) => {
                            format!("scheduled for {}", from_ts(t.due_at.as_ref()))
                        }
                        _ => "cancelled".to_owned(),
                    };
                    let _ = writeln!(
                        out,
                        "      timer {} gen {}: {change}",
                        t.timer, t.generation
                    );
                }
                let _ = writeln!(out, "      state {}", s.state_json);
            }
            Event::SagaTimerFired(f) => {
                let _ = writeln!(
                    out,
                    "  v{} timer {} gen {} fired at {} (due {}) by {}",
                    r.stream_version,
                    f.timer,
                    f.generation,
                    from_ts(f.fired_at.as_ref()),
                    from_ts(f.due_at.as_ref()),
                    f.sweeper
                );
            }
            other => {
                let _ = writeln!(out, "  v{} {}", r.stream_version, other.event_type());
            }
        }
    }
    let _ = writeln!(out, "timers:");
    for (name, t) in &log.timers {
        let status = match t.status {
            TimerStatus::Pending => "pending".to_owned(),
            TimerStatus::Fired { fired_at } => format!("fired at {fired_at}"),
            TimerStatus::Cancelled => "cancelled".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {name} gen {} due {}: {status}",
            t.generation, t.due_at
        );
    }
    Ok(out)
}
