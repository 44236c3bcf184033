//! `pathway subscribe`: print a department's events as JSON lines.
//!
//! Reads the department's stream through a durable pull consumer with
//! explicit acks: each message is printed, flushed, then acknowledged, so a
//! restart resumes after the last line printed. The start position
//! (`--from-start`, `--since`) applies when the consumer is first created.

use std::io::Write as _;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use pathway_bus::async_nats::jetstream;
use pathway_bus::consumer::{Start, consume, default_durable, inbox_prefix};
use pathway_bus::subjects::Department;

use crate::relay::NatsArgs;

/// `pathway subscribe`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubscribeArgs {
    /// The reading department: dpf, hrss, civil_affairs, education, sasac,
    /// committee or audit.
    #[arg(long, value_parser = parse_department)]
    department: Department,
    /// Start from the oldest message the stream holds (new consumer only).
    #[arg(long, conflicts_with = "since")]
    from_start: bool,
    /// Start from messages stored at or after this RFC 3339 time (new consumer only).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Durable consumer name (default pathway-subscribe-<department>).
    #[arg(long)]
    durable: Option<String>,
    /// Stop after this many messages.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    nats: NatsArgs,
}

fn parse_department(s: &str) -> Result<Department, String> {
    Department::parse(s).ok_or_else(|| {
        format!(
            "unknown department {s:?}: expected one of {}",
            Department::ALL.map(|d| d.token()).join(", ")
        )
    })
}

pub(crate) async fn run(args: SubscribeArgs) -> anyhow::Result<()> {
    let department = args.department;
    let start = match (args.from_start, args.since) {
        (true, _) => Start::FromStart,
        (false, Some(t)) => Start::Since(t),
        (false, None) => Start::New,
    };
    let durable = args.durable.unwrap_or_else(|| default_durable(department));
    let client = args
        .nats
        .connect(Some(department.token()), Some(&inbox_prefix(department)))
        .await?;
    let js = jetstream::new(client);
    let stdout = std::io::stdout();
    consume(&js, department, &durable, start, args.limit, |received| {
        let line = serde_json::json!({
            "subject": received.subject,
            "stream_sequence": received.stream_sequence,
            "message": received.json,
        });
        let mut out = stdout.lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| pathway_bus::BusError::BadMessage {
                subject: received.subject.clone(),
                detail: format!("writing to stdout: {e}"),
            })
    })
    .await
    .with_context(|| format!("reading {} as {durable}", department.stream()))?;
    Ok(())
}
