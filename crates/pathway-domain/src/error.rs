//! The one error of the domain: a command was rejected, and why.

use std::borrow::Cow;

/// A command rejected by a domain rule. It names the field, what is wrong with
/// its value, and the rule, e.g. `id_number: check digit is 7, expected X (GB 11643)`.
///
/// Rejections are the user's fault and never retryable as they are; concurrency
/// conflicts and infrastructure failures belong to other crates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} ({rule})")]
pub struct Rejection {
    /// The command field at fault (`id_number`, `planned_end_date`, …), or
    /// `command` when the command as a whole does not fit the state.
    pub field: Cow<'static, str>,
    /// What is wrong with the value, naming it.
    pub problem: String,
    /// The rule or standard, e.g. `GB 11643`, `R-PUB-1`, `policy dibao.phase_out_max_months`.
    pub rule: Cow<'static, str>,
}

impl Rejection {
    /// A rejection of `field` because of `problem` under `rule`.
    pub fn new(
        field: impl Into<Cow<'static, str>>,
        problem: impl Into<String>,
        rule: impl Into<Cow<'static, str>>,
    ) -> Self {
        Rejection {
            field: field.into(),
            problem: problem.into(),
            rule: rule.into(),
        }
    }

    /// A command that does not fit the aggregate's current state.
    pub fn state(problem: impl Into<String>, rule: impl Into<Cow<'static, str>>) -> Self {
        Rejection::new("command", problem, rule)
    }
}

/// Result of a decision.
pub type Decision = Result<Vec<crate::Event>, Rejection>;
