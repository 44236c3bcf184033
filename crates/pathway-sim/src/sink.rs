//! Where the simulator's commands go.
//!
//! The simulator decides nothing itself: every command goes through a
//! [`CommandSink`]. The command engine is one ([`Engine`], the path of
//! `pathway demo` and the tests); a client of `pathway serve` is another
//! (`pathway bench e2e`, the chaos test), sending each command as the JSON
//! envelope of `docs/commands.md`, built by [`envelope`].

use std::future::Future;

use chrono::FixedOffset;
use pathway_domain::{Aggregate, pb};
use pathway_engine::{CommandMeta, Engine, EngineError, Handled};
use pathway_store::EventStore;
use serde::Serialize;
use serde_json::{Value, json};

use crate::SimError;

/// What became of a command the sink delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Decided and accepted. A sink that only sees the answer of a remote
    /// server (not the events) returns an empty [`Handled`]; the simulator
    /// then skips the steps that read an event's fields (it leaves a
    /// phase-out to the server's deadline timer).
    Accepted(Handled),
    /// Rejected by the domain's rules, with the rule's message.
    Rejected(String),
}

/// Delivers one command and reports how it was decided. Any error other
/// than a rule's rejection stops the actor that sent the command.
pub trait CommandSink: Sync {
    fn send<A: Aggregate + Send>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> impl Future<Output = Result<Sent, SimError>> + Send
    where
        A::Command: Serialize + Sync;
}

impl<S: EventStore + Clone> CommandSink for Engine<S> {
    async fn send<A: Aggregate + Send>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Sent, SimError>
    where
        A::Command: Serialize + Sync,
    {
        match self.handle::<A>(stream, command, meta).await {
            Ok(h) => Ok(Sent::Accepted(h)),
            Err(EngineError::Rejected(r)) => Ok(Sent::Rejected(r.to_string())),
            Err(source) => Err(SimError::Engine {
                stream: stream.to_owned(),
                source,
            }),
        }
    }
}

/// The JSON envelope's `aggregate` of a stream category.
pub fn aggregate_name(category: &str) -> &'static str {
    match category {
        "person" => "person",
        "household" => "household",
        "employer" => "employer",
        "dpf" => "dpf_organ",
        "welfare" => "welfare_posts",
        "fund" => "fund",
        "cohort" => "cohort",
        "ledger" => "ledger",
        "report" => "city_report",
        "evaluation" => "evaluation",
        "training" => "training",
        _ => "unknown",
    }
}

/// The envelope's `department` of a department.
pub fn department_name(d: pb::Department) -> String {
    d.as_str_name()
        .strip_prefix("DEPARTMENT_")
        .unwrap_or(d.as_str_name())
        .to_ascii_lowercase()
}

/// `command` on `stream`, sent as `meta` says, as one JSON envelope
/// (`docs/commands.md`): what `pathway import` reads and `POST /v1/commands`
/// takes. The decision time is written in China Standard Time.
pub fn envelope<A: Aggregate>(stream: &str, command: &A::Command, meta: &CommandMeta) -> Value
where
    A::Command: Serialize,
{
    let mut command = serde_json::to_value(command).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut command {
        fields.insert(
            "aggregate".to_owned(),
            Value::from(aggregate_name(A::CATEGORY)),
        );
    }
    let cst = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    json!({
        "command_id": meta.command_id,
        "correlation_id": meta.correlation_id,
        "causation_id": meta.causation_id,
        "department": department_name(meta.actor_department),
        "region": meta.actor_region,
        "actor": meta.actor_id,
        "at": meta.now.with_timezone(&cst).to_rfc3339(),
        "stream": stream,
        "command": command,
    })
}

/// Collects the simulator's commands as JSON envelopes instead of deciding
/// them: every command counts as accepted with no events, so the lives
/// follow the path of a fully accepted history.
#[derive(Debug, Default)]
pub struct EnvelopeSink {
    lines: std::sync::Mutex<Vec<Value>>,
}

impl EnvelopeSink {
    /// The envelopes collected so far, in the order they were sent.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl CommandSink for EnvelopeSink {
    async fn send<A: Aggregate + Send>(
        &self,
        stream: &str,
        command: &A::Command,
        meta: &CommandMeta,
    ) -> Result<Sent, SimError>
    where
        A::Command: Serialize + Sync,
    {
        let line = envelope::<A>(stream, command, meta);
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        Ok(Sent::Accepted(Handled {
            events: Vec::new(),
            append: None,
        }))
    }
}
