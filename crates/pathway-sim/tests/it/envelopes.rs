//! The simulator's commands as JSON envelopes: every one parses as the
//! envelope of `docs/commands.md` names, for the stream the simulator meant.

use pathway_sim::{SimConfig, sink::EnvelopeSink};

#[tokio::test]
async fn every_simulated_command_is_a_valid_json_envelope_for_its_stream() {
    let sink = EnvelopeSink::default();
    let cfg = SimConfig {
        persons: 40,
        seed: 5,
        concurrency: 4,
    };
    let stats = pathway_sim::run_with(&sink, &cfg, |_, _| {})
        .await
        .expect("runs");
    let lines = sink.take();
    assert_eq!(lines.len() as u64, stats.commands_accepted);
    let mut aggregates = std::collections::BTreeSet::new();
    for line in &lines {
        let parsed = pathway_engine::json::parse(&line.to_string())
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(Some(parsed.stream.as_str()), line["stream"].as_str());
        aggregates.insert(parsed.name.split('.').next().unwrap_or("").to_owned());
    }
    for a in [
        "person",
        "household",
        "employer",
        "training",
        "cohort",
        "ledger",
    ] {
        assert!(aggregates.contains(a), "{a} in {aggregates:?}");
    }
}
