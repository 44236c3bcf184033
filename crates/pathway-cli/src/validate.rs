//! `pathway validate` and `pathway policy`: the domain's checks and
//! parameters, from the command line.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::NaiveDate;
use pathway_domain::{Rejection, policy::PolicyTable, validate};

/// What to validate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Resident ID number (GB 11643, 18 characters).
    Id,
    /// Disability certificate number (ID + category + grade); needs --id.
    Certificate,
    /// Unified social credit code of an employer (GB 32100).
    CreditCode,
    /// County-level region code in Heilongjiang (23xxxx).
    Region,
}

/// `pathway validate KIND VALUE`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Kind of identifier.
    #[arg(value_enum)]
    kind: Kind,
    /// The value to check.
    value: String,
    /// The holder's resident ID (for a certificate number).
    #[arg(long)]
    id: Option<String>,
    /// The date to check birth dates against (default: today).
    #[arg(long)]
    today: Option<NaiveDate>,
}

pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let today = args
        .today
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let outcome: Result<String, Rejection> = match args.kind {
        Kind::Id => validate::resident_id("id_number", &args.value, today).map(|id| {
            format!(
                "valid resident ID {}: born {}, {}",
                id.as_str(),
                id.birth_date(),
                sex_name(id.sex())
            )
        }),
        Kind::Certificate => {
            let raw_id = args
                .id
                .as_deref()
                .context("--id is required to check a certificate")?;
            validate::resident_id("id", raw_id, today)
                .and_then(|id| validate::certificate_number("certificate_number", &args.value, &id))
                .map(|c| {
                    format!(
                        "valid certificate {}: category {}, grade {}{}",
                        c.number,
                        c.category,
                        c.grade,
                        if c.is_severe() { " (severe)" } else { "" }
                    )
                })
        }
        Kind::CreditCode => validate::credit_code("uscc", &args.value)
            .map(|c| format!("valid unified social credit code {}", c.as_str())),
        Kind::Region => validate::region("region", &args.value)
            .map(|c| format!("valid region {} in {} {}", args.value, c.name_en, c.name_zh)),
    };
    match outcome {
        Ok(msg) => {
            println!("{msg}");
            Ok(ExitCode::SUCCESS)
        }
        Err(rejection) => {
            println!("invalid: {rejection}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn sex_name(sex: pathway_domain::pb::Sex) -> &'static str {
    match sex {
        pathway_domain::pb::Sex::Male => "male",
        pathway_domain::pb::Sex::Female => "female",
        pathway_domain::pb::Sex::Unspecified => "unspecified",
    }
}

/// `pathway policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    /// The date whose parameters to show (default: today).
    #[arg(long)]
    date: Option<NaiveDate>,
}

pub(crate) fn policy(args: PolicyArgs) -> anyhow::Result<()> {
    let date = args
        .date
        .unwrap_or_else(|| chrono::Local::now().date_naive());
    let p = PolicyTable::builtin().at(date);
    println!("{p:#?}");
    Ok(())
}
