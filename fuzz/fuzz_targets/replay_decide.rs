//! Decisions on states that only a corrupt or hostile log could produce:
//! arbitrary events (as `event_decode` reads them) are folded into the
//! aggregate of a JSON command (as `json_command` parses it), and the command
//! is decided on that state, as the engine does after loading a stream.
//!
//! Input: a little-endian u16 length, that many bytes of JSON command line,
//! then chunks as in `event_decode` (selector byte, u16 length, payload),
//! each decoded with `pathway_domain::pb::Event` (the type check of
//! `pathway_engine::decode` is not the point here). Property: no panic, no
//! overflow; a decision that succeeds is folded once more and the command
//! decided again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pathway_domain::{
    Aggregate, Context, Event,
    employer::{DpfOrgan, Employer},
    governance::{CityReport, Evaluation},
    graduates::{Cohort, GraduateLedger},
    household::Household,
    pb,
    person::Person,
    policy::PolicyTable,
    training::TrainingProgramme,
    welfare::{Fund, WelfarePosts},
};
use pathway_engine::json::{AnyCommand, parse};
use pathway_proto::Message;

fn decide_on<A: Aggregate>(history: &[Event], command: &A::Command, ctx: &Context<'_>) {
    let state = A::fold(history);
    if let Ok(events) = state.decide(command, ctx) {
        let state = events.iter().fold(state, A::evolve);
        let _ = state.decide(command, ctx);
    }
}

fuzz_target!(|data: &[u8]| {
    let [lo, hi, rest @ ..] = data else {
        return;
    };
    let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(rest.len());
    let (line, mut rest) = rest.split_at(len);
    let Ok(line) = std::str::from_utf8(line) else {
        return;
    };
    let Ok(parsed) = parse(line) else {
        return;
    };
    let mut history = Vec::new();
    while let [_selector, lo, hi, tail @ ..] = rest
        && history.len() < 32
    {
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (bytes, after) = tail.split_at(len);
        rest = after;
        if let Ok(pb::Event { kind: Some(event) }) = pb::Event::decode(bytes) {
            history.push(event);
        }
    }
    let ctx = Context::new(parsed.envelope.at.to_utc(), PolicyTable::builtin());
    match &parsed.envelope.command {
        AnyCommand::Person(c) => decide_on::<Person>(&history, c, &ctx),
        AnyCommand::Household(c) => decide_on::<Household>(&history, c, &ctx),
        AnyCommand::Employer(c) => decide_on::<Employer>(&history, c, &ctx),
        AnyCommand::DpfOrgan(c) => decide_on::<DpfOrgan>(&history, c, &ctx),
        AnyCommand::WelfarePosts(c) => decide_on::<WelfarePosts>(&history, c, &ctx),
        AnyCommand::Fund(c) => decide_on::<Fund>(&history, c, &ctx),
        AnyCommand::Cohort(c) => decide_on::<Cohort>(&history, c, &ctx),
        AnyCommand::Ledger(c) => decide_on::<GraduateLedger>(&history, c, &ctx),
        AnyCommand::CityReport(c) => decide_on::<CityReport>(&history, c, &ctx),
        AnyCommand::Evaluation(c) => decide_on::<Evaluation>(&history, c, &ctx),
        AnyCommand::Training(c) => decide_on::<TrainingProgramme>(&history, c, &ctx),
    }
});
