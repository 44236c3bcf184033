//! The subject scheme and the streams.
//!
//! Every message Pathway publishes has the subject
//! `pathway.v1.<department>.<context>.<event>`: the scheme version, the
//! reading department (or `audit`), the bounded context the event belongs to
//! (the name of its file in `proto/pathway/events/v1`) and the event type in
//! snake case — e.g. `pathway.v1.civil_affairs.assistance.phase_out_started`.
//! Each department has its own stream (`PATHWAY_CIVIL_AFFAIRS` holds
//! `pathway.v1.civil_affairs.>`), so NATS permissions and retention are per
//! department and one event id appears at most once per stream.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use pathway_proto::Message;

/// The subject scheme's version and root.
pub const SUBJECT_ROOT: &str = "pathway.v1";

/// A reader of the bus: a department, or the auditors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Department {
    Dpf,
    Hrss,
    CivilAffairs,
    Education,
    Sasac,
    Committee,
    Audit,
}

impl Department {
    /// Every reader, in the order streams are published to.
    pub const ALL: [Department; 7] = [
        Department::Dpf,
        Department::Hrss,
        Department::CivilAffairs,
        Department::Education,
        Department::Sasac,
        Department::Committee,
        Department::Audit,
    ];

    /// The subject token, e.g. `civil_affairs`.
    pub fn token(self) -> &'static str {
        match self {
            Department::Dpf => "dpf",
            Department::Hrss => "hrss",
            Department::CivilAffairs => "civil_affairs",
            Department::Education => "education",
            Department::Sasac => "sasac",
            Department::Committee => "committee",
            Department::Audit => "audit",
        }
    }

    /// The JetStream stream holding this reader's subjects, e.g. `PATHWAY_CIVIL_AFFAIRS`.
    pub fn stream(self) -> String {
        format!("PATHWAY_{}", self.token().to_ascii_uppercase())
    }

    /// The wildcard of this reader's subjects, e.g. `pathway.v1.civil_affairs.>`.
    pub fn wildcard(self) -> String {
        format!("{SUBJECT_ROOT}.{}.>", self.token())
    }

    /// The fully qualified name of the message on this reader's subjects.
    pub fn message_name(self) -> &'static str {
        match self {
            Department::Dpf => "pathway.views.v1.DpfEvent",
            Department::Hrss => "pathway.views.v1.HrssEvent",
            Department::CivilAffairs => "pathway.views.v1.CivilAffairsEvent",
            Department::Education => "pathway.views.v1.EducationEvent",
            Department::Sasac => "pathway.views.v1.SasacEvent",
            Department::Committee => "pathway.views.v1.CommitteeEvent",
            Department::Audit => "pathway.views.v1.AuditRecord",
        }
    }

    /// Parses a token (`civil_affairs`; `-` is accepted for `_`).
    pub fn parse(name: &str) -> Option<Department> {
        let name = name.trim().to_ascii_lowercase().replace('-', "_");
        Department::ALL.into_iter().find(|d| d.token() == name)
    }
}

impl std::fmt::Display for Department {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// The subject of `event_type` for `department`.
pub fn subject(department: Department, event_type: &str) -> String {
    format!(
        "{SUBJECT_ROOT}.{}.{}.{}",
        department.token(),
        context_of(event_type),
        snake_case(event_type)
    )
}

/// The bounded context of an event type: the file of `proto/pathway/events/v1`
/// that defines it (`registry`, `welfare`, …), `unknown` for a name that is
/// not an event.
pub fn context_of(event_type: &str) -> &'static str {
    static CONTEXTS: OnceLock<BTreeMap<String, &'static str>> = OnceLock::new();
    let contexts = CONTEXTS.get_or_init(|| {
        let fds = prost_types::FileDescriptorSet::decode(pathway_proto::DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        let mut map = BTreeMap::new();
        for file in fds.file {
            if file.package() != "pathway.events.v1" {
                continue;
            }
            let stem = file
                .name()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".proto");
            let stem: &'static str = Box::leak(stem.to_owned().into_boxed_str());
            for m in &file.message_type {
                map.insert(m.name().to_owned(), stem);
            }
        }
        map
    });
    contexts.get(event_type).copied().unwrap_or("unknown")
}

/// `PhaseOutStarted` → `phase_out_started`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_scheme() {
        assert_eq!(
            subject(Department::CivilAffairs, "PhaseOutStarted"),
            "pathway.v1.civil_affairs.assistance.phase_out_started"
        );
        assert_eq!(
            subject(Department::Dpf, "PersonRegistered"),
            "pathway.v1.dpf.registry.person_registered"
        );
        for name in pathway_proto::events::v1::EVENT_TYPES {
            assert_ne!(context_of(name), "unknown", "{name} has no context");
            assert_ne!(context_of(name), "event", "{name} is in event.proto");
        }
    }

    #[test]
    fn department_names_parse() {
        for d in Department::ALL {
            assert_eq!(Department::parse(d.token()), Some(d));
        }
        assert_eq!(
            Department::parse("civil-affairs"),
            Some(Department::CivilAffairs)
        );
        assert_eq!(Department::parse("police"), None);
    }
}
