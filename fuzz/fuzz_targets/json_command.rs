//! The JSON command parser (`pathway_engine::json::parse`, the one JSON form
//! of a command: `pathway import` lines and `POST /v1/commands` bodies) over
//! arbitrary text, then the parsed command decided (pure domain code, no
//! store) on a fresh aggregate and once more on the state its events give.
//!
//! Properties beyond "no panic": a command that parses serialises and
//! deserialises back to itself, its stream lies in its aggregate's
//! category, and a command whose stream has an empty key is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pathway_domain::{
    Aggregate, Context,
    employer::{DpfOrgan, Employer},
    governance::{CityReport, Evaluation},
    graduates::{Cohort, GraduateLedger},
    household::Household,
    person::Person,
    policy::PolicyTable,
    training::TrainingProgramme,
    welfare::{Fund, WelfarePosts},
};
use pathway_engine::json::{AnyCommand, parse};
use serde::{Serialize, de::DeserializeOwned};

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(c: &T) {
    let value = serde_json::to_value(c).expect("a command serialises");
    let back: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{value} does not deserialise back: {e}"));
    assert_eq!(&back, c);
}

/// Decides `command` on a fresh aggregate and, if accepted, once more on
/// the state its events give; whether the first decision accepted it.
fn decide_twice<A: Aggregate>(command: &A::Command, ctx: &Context<'_>) -> bool
where
    A::Command: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    round_trips(command);
    let state = A::default();
    match state.decide(command, ctx) {
        Ok(events) => {
            let state = A::fold(&events);
            let _ = state.decide(command, ctx);
            true
        }
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse(line) else {
        return;
    };
    let category = parsed.envelope.command.category();
    let key = parsed
        .stream
        .strip_prefix(category)
        .and_then(|k| k.strip_prefix('-'));
    assert!(
        key.is_some(),
        "stream {:?} outside {category}",
        parsed.stream
    );
    let ctx = Context::new(parsed.envelope.at.to_utc(), PolicyTable::builtin());
    let accepted = match &parsed.envelope.command {
        AnyCommand::Person(c) => decide_twice::<Person>(c, &ctx),
        AnyCommand::Household(c) => decide_twice::<Household>(c, &ctx),
        AnyCommand::Employer(c) => decide_twice::<Employer>(c, &ctx),
        AnyCommand::DpfOrgan(c) => decide_twice::<DpfOrgan>(c, &ctx),
        AnyCommand::WelfarePosts(c) => decide_twice::<WelfarePosts>(c, &ctx),
        AnyCommand::Fund(c) => decide_twice::<Fund>(c, &ctx),
        AnyCommand::Cohort(c) => decide_twice::<Cohort>(c, &ctx),
        AnyCommand::Ledger(c) => decide_twice::<GraduateLedger>(c, &ctx),
        AnyCommand::CityReport(c) => decide_twice::<CityReport>(c, &ctx),
        AnyCommand::Evaluation(c) => decide_twice::<Evaluation>(c, &ctx),
        AnyCommand::Training(c) => decide_twice::<TrainingProgramme>(c, &ctx),
    };
    // A command may name a stream with an empty key (`"dpf_org": ""` gives
    // `dpf-`; the first crash of this target), but then the domain must
    // refuse it: nothing is ever written to a stream without a key.
    if key.is_some_and(|k| k.trim().is_empty()) {
        assert!(!accepted, "accepted on keyless stream {:?}", parsed.stream);
    }
});
