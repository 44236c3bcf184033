//! The authorization policy: a checked-in TOML file
//! (`deploy/policy/authorization.toml`) naming, per department, the commands
//! it may issue (`aggregate.type`, exactly as in the JSON envelope) and the
//! read models it may read. Anything not listed is refused.
//!
//! Region scoping is not in the file: a token that carries a city (a city
//! DPF's) is scoped to that city whatever its department (see `api`).
//!
//! Also here: which reads are reads of personal data ([`personal_subject`],
//! [`PERSONAL_VIEWS`]), each of which needs a stated purpose and is recorded
//! in the log as a `PersonalDataAccessed` event.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde::Deserialize;

use crate::ServerError;

/// What one department may do.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Commands, as `aggregate.type`.
    #[serde(default)]
    pub commands: BTreeSet<String>,
    /// Read models, by name.
    #[serde(default)]
    pub models: BTreeSet<String>,
}

/// The whole policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub departments: BTreeMap<String, Grants>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Policy, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Policy(format!("{}: {e}", path.display())))?;
        Policy::parse(&text).map_err(|e| ServerError::Policy(format!("{}: {e}", path.display())))
    }

    /// Parses a policy, refusing unknown read models and malformed command names.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        for (department, grants) in &policy.departments {
            for model in &grants.models {
                if pathway_projections::models::by_name(model).is_none() {
                    return Err(format!(
                        "department {department}: unknown read model {model:?}"
                    ));
                }
            }
            for command in &grants.commands {
                let ok = command
                    .split_once('.')
                    .is_some_and(|(a, t)| !a.is_empty() && !t.is_empty() && !t.contains('.'));
                if !ok {
                    return Err(format!(
                        "department {department}: command {command:?} is not aggregate.type"
                    ));
                }
            }
        }
        Ok(policy)
    }

    /// Whether `department` may issue `command` (`aggregate.type`).
    pub fn may_issue(&self, department: &str, command: &str) -> bool {
        self.departments
            .get(department)
            .is_some_and(|g| g.commands.contains(command))
    }

    /// Whether `department` may read `model`.
    pub fn may_read(&self, department: &str, model: &str) -> bool {
        self.departments
            .get(department)
            .is_some_and(|g| g.models.contains(model))
    }

    /// Whether the policy knows `department` at all.
    pub fn knows(&self, department: &str) -> bool {
        self.departments.contains_key(department)
    }
}

/// Columns (and view fields) that name the subject a row or event is about,
/// most specific first, with the kind of subject they name.
pub const SUBJECT_KEYS: &[(&str, SubjectKind)] = &[
    ("person_ref", SubjectKind::Person),
    ("household_ref", SubjectKind::Household),
    ("ledger_id", SubjectKind::Ledger),
];

/// View fields that name persons in a streamed department view.
pub const VIEW_SUBJECT_FIELDS: &[&str] = &["person_ref", "member_person_refs"];

/// What a personal-data read is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Person,
    Household,
    /// A graduate's ledger (one per graduate and year).
    Ledger,
}

/// The subject column of a read-model table whose rows are about one
/// person, household or graduate ledger; such a table holds personal data
/// and every column of its rows is a personal field of that subject. `None`
/// for tables of counts and of organisations.
pub fn personal_subject(table: &pathway_projections::Table) -> Option<(&'static str, SubjectKind)> {
    SUBJECT_KEYS
        .iter()
        .find(|(key, _)| table.columns().any(|c| c.name == *key))
        .copied()
}

/// Department views whose streamed events carry personal data (person
/// references with what happened to them, and for the DPF and Civil Affairs
/// P2 values). The SASAC and committee views hold no person reference.
pub const PERSONAL_VIEWS: &[&str] = &["dpf", "hrss", "civil_affairs", "education"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_tables_are_those_about_one_subject() {
        let mut personal = Vec::new();
        for model in pathway_projections::models::all() {
            for table in model.tables() {
                if let Some((key, _)) = personal_subject(table) {
                    personal.push(format!("{}.{} by {key}", model.name(), table.name));
                }
            }
        }
        let personal: Vec<&str> = personal
            .iter()
            .map(String::as_str)
            .filter(|t| !t.contains(".lookup_"))
            .collect();
        assert_eq!(
            personal,
            [
                "dpf.persons by person_ref",
                "hrss.job_seekers by person_ref",
                "hrss.training by person_ref",
                "hrss.phase_out_flags by person_ref",
                "civil_affairs.households by household_ref",
                "civil_affairs.members by person_ref",
                "civil_affairs.member_employment by person_ref",
                "education.graduate_outcomes by ledger_id",
            ]
        );
    }

    #[test]
    fn checked_in_policy_parses_and_separates_departments() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/policy/authorization.toml");
        let policy = Policy::load(&path).expect("checked-in policy loads");
        assert!(policy.may_issue("dpf", "person.register_person"));
        assert!(!policy.may_issue("education", "person.register_person"));
        assert!(policy.may_issue("education", "cohort.receive_cohort"));
        assert!(policy.may_read("dpf", "dpf"));
        assert!(!policy.may_read("dpf", "civil_affairs"));
        assert!(!policy.may_read("education", "dpf"));
    }

    #[test]
    fn unknown_models_and_bad_names_are_refused() {
        assert!(Policy::parse("[departments.x]\nmodels = [\"nope\"]").is_err());
        assert!(Policy::parse("[departments.x]\ncommands = [\"person\"]").is_err());
        assert!(Policy::parse("[departments.x]\ncommandz = []").is_err());
    }
}
