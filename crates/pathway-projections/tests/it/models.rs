//! Department read models over scripted event sequences, applied through an
//! in-memory `Tx`; each test checks the exact rows of a table.
//!
//! Rows render one per line as `key=value … | column=value …`, sorted by key.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use pathway_domain::{Event, convert::personal_int, pb};
use pathway_projections::{
    ColumnType, ProjectedEvent, ProjectionError, Table, Tx, Value, models, views::View,
};

// ---------------------------------------------------------------------------
// An in-memory transaction that enforces the table schemas

struct Memory {
    tables: &'static [Table],
    rows: BTreeMap<&'static str, BTreeMap<Vec<Value>, Vec<Value>>>,
}

impl Memory {
    fn new(tables: &'static [Table]) -> Self {
        Memory {
            tables,
            rows: BTreeMap::new(),
        }
    }

    fn schema(&self, table: &Table) -> Result<&'static Table, ProjectionError> {
        self.tables
            .iter()
            .find(|t| *t == table)
            .ok_or_else(|| bad(format!("unknown table {}", table.name)))
    }

    fn check_key(&self, table: &Table, key: &[Value]) -> Result<(), ProjectionError> {
        let t = self.schema(table)?;
        if key.len() != t.key.len() {
            return Err(bad(format!("{}: key {key:?} has the wrong arity", t.name)));
        }
        for (c, v) in t.key.iter().zip(key) {
            if !fits(c.ty, v) || *v == Value::Null {
                return Err(bad(format!(
                    "{}: key column {} given {v:?}",
                    t.name, c.name
                )));
            }
        }
        Ok(())
    }

    fn column(table: &Table, name: &str) -> Result<usize, ProjectionError> {
        table
            .values
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| bad(format!("{} has no column {name}", table.name)))
    }

    fn row(&mut self, table: &Table, key: &[Value]) -> &mut Vec<Value> {
        self.rows
            .entry(table.name)
            .or_default()
            .entry(key.to_vec())
            .or_insert_with(|| {
                table
                    .values
                    .iter()
                    .map(|c| match c.ty {
                        ColumnType::Int => Value::Int(0),
                        _ => Value::Null,
                    })
                    .collect()
            })
    }

    /// The table's rows, rendered.
    fn dump(&self, name: &str) -> String {
        let table = self
            .tables
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no table {name}"));
        let mut out = String::new();
        for (key, values) in self.rows.get(name).into_iter().flatten() {
            let key: Vec<String> = table
                .key
                .iter()
                .zip(key)
                .map(|(c, v)| format!("{}={}", c.name, show(v)))
                .collect();
            let values: Vec<String> = table
                .values
                .iter()
                .zip(values)
                .map(|(c, v)| format!("{}={}", c.name, show(v)))
                .collect();
            out.push_str(&format!("{} | {}\n", key.join(" "), values.join(" ")));
        }
        out
    }
}

fn bad(detail: String) -> ProjectionError {
    ProjectionError::Schema {
        projection: "test",
        detail,
    }
}

fn fits(ty: ColumnType, v: &Value) -> bool {
    matches!(
        (ty, v),
        (_, Value::Null)
            | (ColumnType::Text, Value::Text(_))
            | (ColumnType::Int, Value::Int(_))
            | (ColumnType::Bool, Value::Bool(_))
    )
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Text(s) => s.clone(),
    }
}

impl Tx for Memory {
    fn get(&mut self, table: &Table, key: &[Value]) -> Result<Option<Vec<Value>>, ProjectionError> {
        self.check_key(table, key)?;
        Ok(self.rows.get(table.name).and_then(|t| t.get(key)).cloned())
    }

    fn upsert(
        &mut self,
        table: &Table,
        key: &[Value],
        values: &[(&str, Value)],
    ) -> Result<(), ProjectionError> {
        self.check_key(table, key)?;
        let mut set = Vec::new();
        for (name, v) in values {
            let i = Self::column(table, name)?;
            if !fits(table.values[i].ty, v) {
                return Err(bad(format!("{}.{name} given {v:?}", table.name)));
            }
            set.push((i, v.clone()));
        }
        let row = self.row(table, key);
        for (i, v) in set {
            row[i] = v;
        }
        Ok(())
    }

    fn add(
        &mut self,
        table: &Table,
        key: &[Value],
        deltas: &[(&str, i64)],
    ) -> Result<(), ProjectionError> {
        self.check_key(table, key)?;
        let mut add = Vec::new();
        for (name, d) in deltas {
            let i = Self::column(table, name)?;
            if table.values[i].ty != ColumnType::Int {
                return Err(bad(format!("{}.{name} is not an integer", table.name)));
            }
            add.push((i, *d));
        }
        let row = self.row(table, key);
        for (i, d) in add {
            row[i] = match row[i] {
                Value::Int(n) => Value::Int(n + d),
                _ => Value::Int(d),
            };
        }
        Ok(())
    }

    fn delete(&mut self, table: &Table, key: &[Value]) -> Result<(), ProjectionError> {
        self.check_key(table, key)?;
        if let Some(t) = self.rows.get_mut(table.name) {
            t.remove(key);
        }
        Ok(())
    }
}

/// Applies the events, in order, through the read model `model`.
fn project(model: &str, events: &[Event]) -> Memory {
    let projection = models::by_name(model).unwrap_or_else(|| panic!("no model {model}"));
    let mut tx = Memory::new(projection.tables());
    for (i, event) in events.iter().enumerate() {
        let Some(view) = projection.view(event) else {
            continue;
        };
        let projected = ProjectedEvent {
            position: i as u64 + 1,
            recorded_at: DateTime::UNIX_EPOCH,
            stream_id: format!("stream-{i}").into(),
            actor_department: pb::Department::Pathway,
            view,
        };
        projection
            .apply(&projected, &mut tx)
            .unwrap_or_else(|e| panic!("{model} applying {}: {e}", event.event_type()));
    }
    tx
}

/// The rows of `model.table` after `events`.
fn check(model: &str, table: &str, events: &[Event], expect: &str) {
    let actual = project(model, events).dump(table);
    assert_eq!(actual.trim(), expect.trim(), "{model}.{table}:\n{actual}");
}

// ---------------------------------------------------------------------------
// Events

fn day(s: &str) -> Option<pb::Date> {
    let d: NaiveDate = s.parse().expect("test date");
    pathway_domain::convert::date(d)
}

fn registered(person: &str, residence: &str) -> Event {
    Event::PersonRegistered(pb::PersonRegistered {
        person_ref: person.into(),
        sex: pb::Sex::Female as i32,
        birth_year: 1990,
        residence_region: residence.into(),
        registered_on: day("2022-03-01"),
        name: pathway_domain::convert::personal_text("Li Ming"),
        ..Default::default()
    })
}

fn certificate(person: &str, category: i64, grade: i64) -> Event {
    Event::DisabilityCertificateRecorded(pb::DisabilityCertificateRecorded {
        person_ref: person.into(),
        category: personal_int(category),
        grade: personal_int(grade),
        ..Default::default()
    })
}

fn moved(person: &str, to: &str) -> Event {
    Event::ResidenceChanged(pb::ResidenceChanged {
        person_ref: person.into(),
        to_region: to.into(),
        effective_on: day("2023-01-10"),
        ..Default::default()
    })
}

fn erased(person: &str) -> Event {
    Event::PersonalDataErased(pb::PersonalDataErased {
        person_ref: person.into(),
        ..Default::default()
    })
}

fn verified(person: &str, year: i32, wants_work: bool) -> Event {
    Event::BasicInfoVerified(pb::BasicInfoVerified {
        person_ref: person.into(),
        year,
        wants_work,
        verified_by_org: "230102-dpf".into(),
        region: "230102".into(),
        ..Default::default()
    })
}

fn need(person: &str, year: i32, region: &str) -> Event {
    Event::EmploymentNeedRegistered(pb::EmploymentNeedRegistered {
        person_ref: person.into(),
        year,
        intended_occupations: vec!["cook".into(), "clerk".into()],
        intended_region: region.into(),
        ..Default::default()
    })
}

fn consent(person: &str, purpose: pb::ConsentPurpose, granted: bool) -> Event {
    if granted {
        Event::ConsentGranted(pb::ConsentGranted {
            person_ref: person.into(),
            purpose: purpose as i32,
            granted_on: day("2023-02-01"),
        })
    } else {
        Event::ConsentWithdrawn(pb::ConsentWithdrawn {
            person_ref: person.into(),
            purpose: purpose as i32,
            withdrawn_on: day("2023-05-01"),
        })
    }
}

fn programme(id: &str, region: &str) -> Event {
    Event::TrainingProgrammeRegistered(pb::TrainingProgrammeRegistered {
        programme_id: id.into(),
        region: region.into(),
        ..Default::default()
    })
}

fn enrolled(programme: &str, person: &str, on: &str) -> Event {
    Event::TraineeEnrolled(pb::TraineeEnrolled {
        programme_id: programme.into(),
        person_ref: person.into(),
        training_type: pb::TrainingType::JobSkills as i32,
        enrolled_on: day(on),
    })
}

fn completed(programme: &str, person: &str, passed: bool, on: &str) -> Event {
    Event::TrainingCompleted(pb::TrainingCompleted {
        programme_id: programme.into(),
        person_ref: person.into(),
        passed,
        completed_on: day(on),
        ..Default::default()
    })
}

fn subsidy(programme: &str, person: &str, tuition_fen: i64, living_allowance_fen: i64) -> Event {
    Event::TrainingSubsidyGranted(pb::TrainingSubsidyGranted {
        programme_id: programme.into(),
        person_ref: person.into(),
        tuition_fen,
        living_allowance_fen,
        granted_on: day("2023-07-01"),
        ..Default::default()
    })
}

fn placed(id: &str, person: &str, start: &str, wage_fen: i64) -> Event {
    Event::PersonPlaced(pb::PersonPlaced {
        placement_id: id.into(),
        person_ref: person.into(),
        employment_form: pb::EmploymentForm::Quota as i32,
        employer_uscc: "91230100MA1B2C3D4E".into(),
        start_date: day(start),
        monthly_wage: personal_int(wage_fen),
        social_insurance_paid: true,
        region: "230103".into(),
        ..Default::default()
    })
}

fn counted(person: &str, year: i32, region: &str) -> Event {
    Event::NewEmploymentCounted(pb::NewEmploymentCounted {
        person_ref: person.into(),
        year,
        placement_id: String::new(),
        region: region.into(),
        employment_form: pb::EmploymentForm::Quota as i32,
    })
}

fn ended(id: &str, person: &str, on: &str) -> Event {
    Event::PlacementEnded(pb::PlacementEnded {
        placement_id: id.into(),
        person_ref: person.into(),
        end_date: day(on),
        ..Default::default()
    })
}

fn asserted(household: &str, members: &[&str], status: pb::LowIncomeStatus) -> Event {
    Event::LowIncomeStatusAsserted(pb::LowIncomeStatusAsserted {
        household_ref: household.into(),
        member_person_refs: members.iter().map(|m| (*m).to_owned()).collect(),
        status: personal_int(status as i64),
        effective_on: day("2022-01-01"),
        asserted_by: "township".into(),
    })
}

fn reassessed(household: &str, income_fen: i64) -> Event {
    Event::HouseholdIncomeReassessed(pb::HouseholdIncomeReassessed {
        household_ref: household.into(),
        per_capita_income: personal_int(income_fen),
        dibao_standard_fen: 70_000,
        edge_threshold_fen: 105_000,
        meets_edge_criteria: true,
        assessed_on: day("2023-04-01"),
        ..Default::default()
    })
}

fn refs(members: &[&str]) -> Vec<String> {
    members.iter().map(|m| (*m).to_owned()).collect()
}

fn phase_out_started(household: &str, members: &[&str], planned_end: &str) -> Event {
    Event::PhaseOutStarted(pb::PhaseOutStarted {
        household_ref: household.into(),
        member_person_refs: refs(members),
        phase_out_id: "po-1".into(),
        start_date: day("2023-04-01"),
        planned_end_date: day(planned_end),
        benefit_mode: pb::BenefitMode::Tapered as i32,
        ..Default::default()
    })
}

fn extended(household: &str, members: &[&str], new_end: &str) -> Event {
    Event::PhaseOutExtensionApproved(pb::PhaseOutExtensionApproved {
        household_ref: household.into(),
        member_person_refs: refs(members),
        phase_out_id: "po-1".into(),
        new_end_date: day(new_end),
        justification: "approved".into(),
        approved_by: "civil-affairs".into(),
    })
}

fn phase_out_cancelled(household: &str, members: &[&str]) -> Event {
    Event::PhaseOutCancelled(pb::PhaseOutCancelled {
        household_ref: household.into(),
        member_person_refs: refs(members),
        phase_out_id: "po-1".into(),
        reason: pb::PhaseOutCancelReason::JobLost as i32,
        cancelled_on: day("2023-07-01"),
    })
}

fn phased_out(household: &str, members: &[&str], resulting: pb::LowIncomeStatus) -> Event {
    Event::BenefitPhasedOut(pb::BenefitPhasedOut {
        household_ref: household.into(),
        member_person_refs: refs(members),
        phase_out_id: "po-1".into(),
        end_date: day("2024-04-01"),
        resulting_status: resulting as i32,
    })
}

// ---------------------------------------------------------------------------
// The set of models

#[test]
fn six_models_by_name() {
    let names: Vec<&str> = models::all().iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "dpf",
            "hrss",
            "civil_affairs",
            "education",
            "sasac",
            "committee"
        ]
    );
    for name in names {
        assert_eq!(models::by_name(name).map(|p| p.name()), Some(name));
    }
    assert!(models::by_name("auditor").is_none());
}

#[test]
fn table_names_are_unique_and_columns_distinct() {
    for p in models::all() {
        let mut tables: Vec<&str> = p.tables().iter().map(|t| t.name).collect();
        tables.sort();
        tables.dedup();
        assert_eq!(tables.len(), p.tables().len(), "{}", p.name());
        for t in p.tables() {
            let mut columns: Vec<&str> = t.columns().map(|c| c.name).collect();
            columns.sort();
            columns.dedup();
            assert_eq!(
                columns.len(),
                t.columns().count(),
                "{}.{}",
                p.name(),
                t.name
            );
            assert!(!t.key.is_empty(), "{}.{} has no key", p.name(), t.name);
        }
    }
}

#[test]
fn minimised_models_have_no_forbidden_columns() {
    // (model, column fragments none of its tables may have)
    let rules: &[(&str, &[&str])] = &[
        ("dpf", &["wage", "income", "status"]),
        (
            "hrss",
            &["wage", "income", "status", "grade", "category", "capacity"],
        ),
        (
            "civil_affairs",
            &["grade", "category", "training", "capacity", "verified"],
        ),
        (
            "education",
            &["person", "grade", "category", "status", "measure"],
        ),
        ("sasac", &["person"]),
        ("committee", &["person_ref", "household", "placement"]),
    ];
    for (model, fragments) in rules {
        let p = models::by_name(model).unwrap();
        for t in p.tables() {
            for c in t.columns() {
                for f in *fragments {
                    assert!(
                        !c.name.contains(f),
                        "{model}.{}.{} contains {f:?}",
                        t.name,
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn suppressed_columns_are_committee_person_counts() {
    let committee = models::by_name("committee").unwrap();
    let mut suppressed = Vec::new();
    for t in committee.tables() {
        for c in models::suppressed_columns("committee", t.name) {
            let column = t.values.iter().find(|v| v.name == *c);
            assert_eq!(
                column.map(|c| c.ty),
                Some(ColumnType::Int),
                "committee.{}.{c} is not an integer column",
                t.name
            );
            suppressed.push(format!("{}.{c}", t.name));
        }
    }
    assert_eq!(
        suppressed,
        [
            "new_employment.persons",
            "four_ones.verified",
            "training.completed",
            "city_reports.new_employment",
            "city_reports.four_ones_verified",
            "city_reports.trained",
            "evaluation.new_employment_total",
        ]
    );
    for p in models::all().iter().filter(|p| p.name() != "committee") {
        for t in p.tables() {
            assert!(models::suppressed_columns(p.name(), t.name).is_empty());
        }
    }
}

#[test]
fn a_view_of_another_department_is_refused() {
    let dpf = models::by_name("dpf").unwrap();
    let hrss = models::by_name("hrss").unwrap();
    let view = hrss.view(&need("a", 2023, "230102")).unwrap();
    let mut tx = Memory::new(dpf.tables());
    let event = ProjectedEvent {
        position: 1,
        recorded_at: DateTime::UNIX_EPOCH,
        stream_id: "person-a".into(),
        actor_department: pb::Department::Dpf,
        view,
    };
    assert!(matches!(
        dpf.apply(&event, &mut tx),
        Err(ProjectionError::Schema {
            projection: "dpf",
            ..
        })
    ));
    assert!(matches!(event.view, View::Hrss(_)));
}

// ---------------------------------------------------------------------------
// DPF

#[test]
fn dpf_two_placements_in_a_year_are_one_new_employment() {
    let events = [
        registered("a", "230102"),
        placed("p1", "a", "2023-03-01", 350_000),
        counted("a", 2023, "230102"),
        ended("p1", "a", "2023-06-30"),
        placed("p2", "a", "2023-08-01", 360_000),
        ended("p-unknown", "a", "2023-09-01"),
    ];
    check(
        "dpf",
        "placements",
        &events,
        "city=230100 year=2023 employment_form=quota | placed=2 ended=1 new_employment=1",
    );
    check(
        "dpf",
        "persons",
        &events,
        "person_ref=a | city=230100 county=230102 sex=female birth_year=1990 \
         registered_on=2022-03-01 certificate_category=null certificate_grade=null \
         employed=true employment_form=quota open_placements=1 in_phase_out=false \
         phase_out_until=null",
    );
}

#[test]
fn dpf_employment_ends_with_the_last_open_placement() {
    let events = [
        registered("a", "230102"),
        placed("p1", "a", "2023-03-01", 350_000),
        ended("p1", "a", "2024-01-31"),
        ended("p1", "a", "2024-01-31"),
    ];
    check(
        "dpf",
        "placements",
        &events,
        "city=230100 year=2023 employment_form=quota | placed=1 ended=0 new_employment=0\n\
         city=230100 year=2024 employment_form=quota | placed=0 ended=1 new_employment=0",
    );
    let rows = project("dpf", &events).dump("persons");
    assert!(
        rows.contains("employed=false employment_form=null open_placements=0"),
        "{rows}"
    );
}

#[test]
fn dpf_counts_follow_the_residence_at_the_time() {
    let events = [
        registered("a", "230102"),
        enrolled("t1", "a", "2022-09-01"),
        moved("a", "231002"),
        completed("t1", "a", true, "2023-02-01"),
        subsidy("t1", "a", 120_000, 30_000),
        verified("a", 2023, true),
    ];
    check(
        "dpf",
        "training",
        &events,
        "city=230100 year=2022 | enrolled=1 completed=0 passed=0 subsidy_fen=0\n\
         city=231000 year=2023 | enrolled=0 completed=1 passed=1 subsidy_fen=150000",
    );
    check(
        "dpf",
        "four_ones",
        &events,
        "city=231000 year=2023 | verified=1 wants_work=1 assessed=0 need_registered=0 served=0",
    );
}

#[test]
fn dpf_counts_each_of_the_four_ones_once_per_person_and_year() {
    let events = [
        registered("a", "230102"),
        registered("b", "230103"),
        verified("a", 2023, true),
        verified("a", 2023, true),
        verified("b", 2023, false),
        need("a", 2023, "230102"),
        need("a", 2023, "230102"),
        verified("a", 2024, true),
    ];
    check(
        "dpf",
        "four_ones",
        &events,
        "city=230100 year=2023 | verified=2 wants_work=1 assessed=0 need_registered=1 served=0\n\
         city=230100 year=2024 | verified=1 wants_work=1 assessed=0 need_registered=0 served=0",
    );
}

#[test]
fn dpf_sees_phase_out_as_a_flag_with_its_end() {
    let start = [
        registered("a", "230102"),
        asserted("h", &["a", "b"], pb::LowIncomeStatus::Dibao),
        reassessed("h", 80_000),
        phase_out_started("h", &["a", "b"], "2024-03-31"),
    ];
    let rows = project("dpf", &start).dump("persons");
    assert!(
        rows.contains("person_ref=a |")
            && rows.contains("in_phase_out=true phase_out_until=2024-03-31"),
        "{rows}"
    );
    assert_eq!(rows.matches("in_phase_out=true").count(), 2, "{rows}");
    let cancelled = [&start[..], &[phase_out_cancelled("h", &["a", "b"])]].concat();
    let rows = project("dpf", &cancelled).dump("persons");
    assert_eq!(
        rows.matches("in_phase_out=false phase_out_until=null")
            .count(),
        2,
        "{rows}"
    );
    // A member named by a later phase-out event takes the flag; one no
    // longer named loses it. Membership alone (without a phase-out) is not
    // visible to the DPF at all.
    let rejoined = [
        &start[..],
        &[
            asserted("h", &["a", "c"], pb::LowIncomeStatus::Dibao),
            extended("h", &["a", "c"], "2024-06-30"),
        ],
    ]
    .concat();
    let rows = project("dpf", &rejoined).dump("persons");
    for (person, flag) in [("a", "true"), ("b", "false"), ("c", "true")] {
        let line = rows
            .lines()
            .find(|l| l.starts_with(&format!("person_ref={person} ")))
            .unwrap_or_else(|| panic!("no row for {person}: {rows}"));
        assert!(line.contains(&format!("in_phase_out={flag}")), "{line}");
    }
}

#[test]
fn dpf_keeps_category_and_grade_until_erasure() {
    let events = [registered("a", "230102"), certificate("a", 4, 2)];
    let rows = project("dpf", &events).dump("persons");
    assert!(
        rows.contains("certificate_category=4 certificate_grade=2"),
        "{rows}"
    );
    let events = [&events[..], &[erased("a")]].concat();
    let rows = project("dpf", &events).dump("persons");
    assert!(
        rows.contains("certificate_category=null certificate_grade=null"),
        "{rows}"
    );
    assert!(rows.contains("city=230100 county=230102"), "{rows}");
}

#[test]
fn dpf_graduates_by_ledger_city_and_year() {
    let events = [
        Event::GraduateLedgerOpened(pb::GraduateLedgerOpened {
            ledger_id: "l1".into(),
            person_ref: "a".into(),
            year: 2023,
            city: "230100".into(),
            school: "HIT".into(),
        }),
        Event::GraduateLedgerOpened(pb::GraduateLedgerOpened {
            ledger_id: "l2".into(),
            person_ref: "b".into(),
            year: 2023,
            city: "230100".into(),
            school: "HIT".into(),
        }),
        Event::GraduateServicePlanSet(pb::GraduateServicePlanSet {
            ledger_id: "l1".into(),
            person_ref: "a".into(),
            ..Default::default()
        }),
        Event::GraduateServiceDelivered(pb::GraduateServiceDelivered {
            ledger_id: "l1".into(),
            person_ref: "a".into(),
            ..Default::default()
        }),
        Event::GraduateOutcomeRecorded(pb::GraduateOutcomeRecorded {
            ledger_id: "l1".into(),
            person_ref: "a".into(),
            outcome: pb::GraduateOutcome::Employed as i32,
            ..Default::default()
        }),
        Event::GraduateOutcomeRecorded(pb::GraduateOutcomeRecorded {
            ledger_id: "l2".into(),
            person_ref: "b".into(),
            outcome: pb::GraduateOutcome::FurtherStudy as i32,
            ..Default::default()
        }),
    ];
    check(
        "dpf",
        "graduates",
        &events,
        "city=230100 year=2023 | ledgers_opened=2 plans_set=1 services_delivered=1 \
         outcomes_recorded=2 employed=1",
    );
}

// ---------------------------------------------------------------------------
// HRSS

#[test]
fn hrss_job_seeker_is_referred_only_after_consent() {
    let before = [need("a", 2023, "230102")];
    check(
        "hrss",
        "job_seekers",
        &before,
        "person_ref=a | city=230100 year=2023 intended_occupations=cook,clerk \
         intended_region=230102 referred=false",
    );
    let other_purpose = [
        &before[..],
        &[consent(
            "a",
            pb::ConsentPurpose::ShareOutcomeWithEducation,
            true,
        )],
    ]
    .concat();
    let rows = project("hrss", &other_purpose).dump("job_seekers");
    assert!(rows.contains("referred=false"), "{rows}");
    let after = [
        &before[..],
        &[consent("a", pb::ConsentPurpose::ReferToHrss, true)],
    ]
    .concat();
    check(
        "hrss",
        "job_seekers",
        &after,
        "person_ref=a | city=230100 year=2023 intended_occupations=cook,clerk \
         intended_region=230102 referred=true",
    );
    let withdrawn = [
        &after[..],
        &[consent("a", pb::ConsentPurpose::ReferToHrss, false)],
    ]
    .concat();
    check("hrss", "job_seekers", &withdrawn, "");
}

#[test]
fn hrss_consent_before_need_keeps_the_referral() {
    let events = [
        consent("a", pb::ConsentPurpose::ReferToHrss, true),
        need("a", 2024, "231002"),
    ];
    check(
        "hrss",
        "job_seekers",
        &events,
        "person_ref=a | city=231000 year=2024 intended_occupations=cook,clerk \
         intended_region=231002 referred=true",
    );
}

#[test]
fn hrss_training_placements_and_posts() {
    let events = [
        enrolled("t1", "a", "2023-03-01"),
        completed("t1", "a", true, "2023-05-01"),
        subsidy("t1", "a", 120_000, 30_000),
        subsidy("t1", "a", 0, 10_000),
        placed("p1", "a", "2023-06-01", 350_000),
        placed("p2", "b", "2023-07-01", 350_000),
        Event::PublicWelfarePostsDeveloped(pb::PublicWelfarePostsDeveloped {
            region: "230100".into(),
            year: 2023,
            total_posts: 100,
            disabled_posts: 12,
        }),
        Event::PublicWelfarePostsDeveloped(pb::PublicWelfarePostsDeveloped {
            region: "230100".into(),
            year: 2023,
            total_posts: 20,
            disabled_posts: 2,
        }),
        Event::PublicWelfarePostAssigned(pb::PublicWelfarePostAssigned {
            region: "230100".into(),
            year: 2023,
            post_id: "post-1".into(),
            person_ref: "a".into(),
            ..Default::default()
        }),
        Event::PublicWelfarePostAssigned(pb::PublicWelfarePostAssigned {
            region: "230100".into(),
            year: 2023,
            post_id: "post-2".into(),
            person_ref: "b".into(),
            ..Default::default()
        }),
        Event::PublicWelfarePostVacated(pb::PublicWelfarePostVacated {
            region: "230100".into(),
            year: 2023,
            post_id: "post-1".into(),
            person_ref: "a".into(),
            ..Default::default()
        }),
    ];
    check(
        "hrss",
        "training",
        &events,
        "programme_id=t1 person_ref=a | training_type=job_skills enrolled_on=2023-03-01 \
         completed_on=2023-05-01 passed=true tuition_fen=120000 living_allowance_fen=40000",
    );
    check(
        "hrss",
        "placements",
        &events,
        "city=230100 year=2023 employment_form=quota | placed=2 social_insurance_paid=2",
    );
    check(
        "hrss",
        "welfare_posts",
        &events,
        "region=230100 year=2023 | total_posts=120 disabled_posts=14 assigned=1",
    );
}

#[test]
fn hrss_phase_out_flags_without_status() {
    let events = [
        asserted("h", &["a"], pb::LowIncomeStatus::Dibao),
        phase_out_started("h", &["a"], "2024-03-31"),
    ];
    check(
        "hrss",
        "phase_out_flags",
        &events,
        "person_ref=a | until=2024-03-31",
    );
    let events = [
        &events[..],
        &[phased_out("h", &["a"], pb::LowIncomeStatus::Margin)],
    ]
    .concat();
    check("hrss", "phase_out_flags", &events, "");
}

// ---------------------------------------------------------------------------
// Civil Affairs

#[test]
fn civil_affairs_sees_wages_of_its_households_members_only() {
    let events = [
        asserted("h", &["a", "b"], pb::LowIncomeStatus::Dibao),
        placed("p1", "a", "2023-03-01", 350_000),
        placed("p2", "c", "2023-03-01", 420_000),
        ended("p1", "a", "2023-09-30"),
        ended("p2", "c", "2023-09-30"),
    ];
    check(
        "civil_affairs",
        "member_employment",
        &events,
        "placement_id=p1 | person_ref=a household_ref=h employer_uscc=91230100MA1B2C3D4E \
         start_date=2023-03-01 end_date=2023-09-30 monthly_wage_fen=350000",
    );
    check(
        "civil_affairs",
        "members",
        &events,
        "person_ref=a | household_ref=h\nperson_ref=b | household_ref=h",
    );
}

#[test]
fn civil_affairs_follows_the_phase_out_saga() {
    let events = [
        asserted("h", &["a", "b"], pb::LowIncomeStatus::Dibao),
        placed("p1", "a", "2023-03-01", 350_000),
        Event::HouseholdReassessmentRequested(pb::HouseholdReassessmentRequested {
            household_ref: "h".into(),
            trigger: pb::ReassessmentTrigger::Placement as i32,
            triggering_placement_id: "p1".into(),
            requested_on: day("2023-03-05"),
        }),
        reassessed("h", 80_000),
        phase_out_started("h", &["a", "b"], "2024-03-31"),
        Event::PhaseOutExtensionApproved(pb::PhaseOutExtensionApproved {
            household_ref: "h".into(),
            phase_out_id: "po-1".into(),
            new_end_date: day("2024-06-30"),
            ..Default::default()
        }),
    ];
    check(
        "civil_affairs",
        "households",
        &events,
        "household_ref=h | status=dibao members=2 member_refs=a,b status_effective_on=2022-01-01 \
         reassessment_requested_on=2023-03-05 last_income_fen=80000 last_assessed_on=2023-04-01 \
         benefit=phasing_out phase_out_id=po-1 phase_out_start=2023-04-01 planned_end=2024-06-30 \
         phase_out_state=active",
    );
    // Completed with no low-income status left: the household's members are
    // no longer Civil Affairs' business, their next placement is not kept.
    let done = [
        &events[..],
        &[
            phased_out("h", &["a", "b"], pb::LowIncomeStatus::None),
            placed("p3", "b", "2024-05-01", 400_000),
        ],
    ]
    .concat();
    let rows = project("civil_affairs", &done);
    assert!(
        rows.dump("households")
            .contains("status=none members=2 member_refs=a,b"),
        "{}",
        rows.dump("households")
    );
    assert!(
        rows.dump("households")
            .contains("benefit=phased_out phase_out_id=po-1"),
        "{}",
        rows.dump("households")
    );
    assert_eq!(rows.dump("members"), "");
    assert!(!rows.dump("member_employment").contains("p3"));
}

#[test]
fn civil_affairs_tracks_no_household_asserted_as_not_low_income() {
    let events = [
        asserted("h", &["a"], pb::LowIncomeStatus::None),
        placed("p1", "a", "2023-03-01", 350_000),
    ];
    check("civil_affairs", "members", &events, "");
    check("civil_affairs", "member_employment", &events, "");
}

// ---------------------------------------------------------------------------
// Education

#[test]
fn education_cohorts_and_outcomes_by_school() {
    let ledger = |id: &str, school: &str| {
        Event::GraduateLedgerOpened(pb::GraduateLedgerOpened {
            ledger_id: id.into(),
            person_ref: format!("person-{id}"),
            year: 2023,
            city: "230100".into(),
            school: school.into(),
        })
    };
    let outcome = |id: &str, outcome: pb::GraduateOutcome| {
        Event::GraduateOutcomeRecorded(pb::GraduateOutcomeRecorded {
            ledger_id: id.into(),
            person_ref: format!("person-{id}"),
            outcome: outcome as i32,
            ..Default::default()
        })
    };
    let events = [
        Event::GraduateCohortReceived(pb::GraduateCohortReceived {
            batch_id: "b1".into(),
            year: 2023,
            record_count: 3,
            received_on: day("2023-03-15"),
        }),
        Event::GraduateMatched(pb::GraduateMatched {
            batch_id: "b1".into(),
            person_ref: "person-l1".into(),
            ..Default::default()
        }),
        Event::GraduateMatched(pb::GraduateMatched {
            batch_id: "b1".into(),
            person_ref: "person-l2".into(),
            ..Default::default()
        }),
        Event::GraduateUnmatched(pb::GraduateUnmatched {
            batch_id: "b1".into(),
            reason: pb::UnmatchedReason::NoValidCertificate as i32,
            ..Default::default()
        }),
        ledger("l1", "HIT"),
        ledger("l2", "HIT"),
        ledger("l3", "NEFU"),
        outcome("l1", pb::GraduateOutcome::Employed),
        outcome("l2", pb::GraduateOutcome::Employed),
        outcome("l-elsewhere", pb::GraduateOutcome::Employed),
    ];
    check(
        "education",
        "cohorts",
        &events,
        "batch_id=b1 | year=2023 record_count=3 received_on=2023-03-15 matched=2 unmatched=1",
    );
    check(
        "education",
        "graduate_outcomes",
        &events,
        "ledger_id=l1 | school=HIT year=2023 outcome=employed\n\
         ledger_id=l2 | school=HIT year=2023 outcome=employed\n\
         ledger_id=l3 | school=NEFU year=2023 outcome=pending",
    );
    check(
        "education",
        "school_outcomes",
        &events,
        "school=HIT year=2023 outcome=employed | graduates=2\n\
         school=NEFU year=2023 outcome=pending | graduates=1",
    );
}

// ---------------------------------------------------------------------------
// SASAC and the Organization Department

#[test]
fn sasac_employers_quota_and_public_units() {
    let soe = "91230100MA1B2C3D4E";
    let events = [
        Event::EmployerRegistered(pb::EmployerRegistered {
            uscc: soe.into(),
            name: "Longjiang Grid".into(),
            org_type: pb::OrgType::StateOwnedEnterprise as i32,
            level: pb::AdminLevel::Provincial as i32,
            region: "230100".into(),
            ..Default::default()
        }),
        Event::QuotaReported(pb::QuotaReported {
            uscc: soe.into(),
            year: 2023,
            staff: 400,
            disabled_employees: 3,
            severe_disabled_employees: 1,
            counted_disabled: 5,
            required_disabled_milli: 6000,
            meets_quota: false,
            ..Default::default()
        }),
        Event::DisabledEmploymentDisclosed(pb::DisabledEmploymentDisclosed {
            uscc: soe.into(),
            year: 2023,
            disabled_count: 4,
            staff: 400,
        }),
        Event::EstablishmentSizeRecorded(pb::EstablishmentSizeRecorded {
            uscc: "organ".into(),
            year: 2023,
            approved_establishment: 60,
        }),
        Event::PublicUnitObligationEvaluated(pb::PublicUnitObligationEvaluated {
            uscc: "organ".into(),
            year: 2023,
            level: pb::AdminLevel::Prefecture as i32,
            org_type: pb::OrgType::Organ as i32,
            establishment: 60,
            rule_applies: true,
            obligated_to_hire_one: true,
            deadline: day("2025-12-31"),
            rule: "R-PUB-1".into(),
            ..Default::default()
        }),
        Event::DpfCadreRatioReported(pb::DpfCadreRatioReported {
            dpf_org: "dpf-230100".into(),
            region: "230100".into(),
            year: 2023,
            total_cadres: 40,
            disabled_cadres: 6,
            compliant: true,
            ..Default::default()
        }),
    ];
    check(
        "sasac",
        "employers",
        &events,
        "uscc=91230100MA1B2C3D4E | name=Longjiang Grid org_type=state_owned_enterprise \
         level=provincial region=230100 is_soe=true",
    );
    check(
        "sasac",
        "quota",
        &events,
        "uscc=91230100MA1B2C3D4E year=2023 | staff=400 counted_disabled=5 \
         required_disabled_milli=6000 meets_quota=false disclosed=true disclosed_disabled=4",
    );
    check(
        "sasac",
        "public_units",
        &events,
        "uscc=organ year=2023 | level=prefecture org_type=organ establishment=60 \
         rule_applies=true obligated=true deadline=2025-12-31 rule=R-PUB-1",
    );
    check(
        "sasac",
        "dpf_cadres",
        &events,
        "dpf_org=dpf-230100 year=2023 | region=230100 total_cadres=40 disabled_cadres=6 \
         compliant=true",
    );
}

// ---------------------------------------------------------------------------
// Committee

#[test]
fn committee_counts_without_persons() {
    let events = [
        registered("a", "230102"),
        placed("p1", "a", "2023-03-01", 350_000),
        counted("a", 2023, "230102"),
        placed("p2", "a", "2023-08-01", 350_000),
        counted("b", 2023, "231002"),
        counted("c", 2024, "230104"),
        verified("a", 2023, true),
        programme("t1", "231002"),
        completed("t1", "a", true, "2023-05-01"),
        completed("t-unregistered", "b", false, "2023-05-01"),
    ];
    check(
        "committee",
        "new_employment",
        &events,
        "city=230100 year=2023 | persons=1\n\
         city=230100 year=2024 | persons=1\n\
         city=231000 year=2023 | persons=1",
    );
    check(
        "committee",
        "four_ones",
        &events,
        "city=230100 year=2023 | verified=1",
    );
    check(
        "committee",
        "training",
        &events,
        "city=231000 year=2023 | completed=1\ncity=unknown year=2023 | completed=1",
    );
    let rows = project("committee", &events);
    for t in models::by_name("committee").unwrap().tables() {
        let dump = rows.dump(t.name);
        for person in ["=a ", "=b ", "=c ", "person_ref"] {
            assert!(
                !dump.contains(person),
                "committee.{} holds {person:?}: {dump}",
                t.name
            );
        }
    }
}

#[test]
fn committee_fund_reports_and_evaluation() {
    let events = [
        Event::EmploymentSecurityFundBudgeted(pb::EmploymentSecurityFundBudgeted {
            region: "230000".into(),
            year: 2023,
            fund_base_fen: 10_000_000,
        }),
        Event::FundAllocationMade(pb::FundAllocationMade {
            region: "230000".into(),
            year: 2023,
            allocation_id: "a1".into(),
            category: pb::FundCategory::PwpSocialInsurance as i32,
            amount_fen: 1_500_000,
            category_total_fen: 1_500_000,
            under_override: false,
        }),
        Event::FundAllocationMade(pb::FundAllocationMade {
            region: "230000".into(),
            year: 2023,
            allocation_id: "a2".into(),
            category: pb::FundCategory::Training as i32,
            amount_fen: 700_000,
            category_total_fen: 700_000,
            under_override: false,
        }),
        Event::AllocationCapOverrideApproved(pb::AllocationCapOverrideApproved {
            region: "230000".into(),
            year: 2023,
            category: pb::FundCategory::PwpSocialInsurance as i32,
            approved_total_fen: 2_500_000,
            ..Default::default()
        }),
        Event::FundAllocationMade(pb::FundAllocationMade {
            region: "230000".into(),
            year: 2023,
            allocation_id: "a3".into(),
            category: pb::FundCategory::PwpSocialInsurance as i32,
            amount_fen: 800_000,
            category_total_fen: 2_300_000,
            under_override: true,
        }),
        Event::PublicWelfarePostsDeveloped(pb::PublicWelfarePostsDeveloped {
            region: "230100".into(),
            year: 2023,
            total_posts: 100,
            disabled_posts: 12,
        }),
        Event::CityAnnualReportOverdue(pb::CityAnnualReportOverdue {
            city: "230200".into(),
            year: 2023,
            due_on: day("2023-12-31"),
        }),
        Event::CityAnnualReportSubmitted(pb::CityAnnualReportSubmitted {
            report_id: "r1".into(),
            city: "230100".into(),
            year: 2023,
            submitted_on: day("2023-12-20"),
            new_employment: 2400,
            four_ones_verified: 51000,
            trained: 3100,
            narrative: "on track".into(),
        }),
        Event::CityAnnualReportSubmitted(pb::CityAnnualReportSubmitted {
            report_id: "r2".into(),
            city: "230200".into(),
            year: 2023,
            submitted_on: day("2024-01-15"),
            new_employment: 900,
            four_ones_verified: 20000,
            trained: 1000,
            narrative: "late".into(),
        }),
        Event::ProvincialEvaluationCompleted(pb::ProvincialEvaluationCompleted {
            plan_id: "hlj-2022-2024".into(),
            completed_on: day("2024-12-31"),
            new_employment_total: 34_210,
            target: 33_000,
            findings: "met".into(),
        }),
    ];
    check(
        "committee",
        "fund",
        &events,
        "region=230000 year=2023 | fund_base_fen=10000000 allocated_fen=3000000 \
         pwp_social_insurance_fen=2300000 pwp_override_fen=2500000",
    );
    check(
        "committee",
        "welfare_posts",
        &events,
        "region=230100 year=2023 | total_posts=100 disabled_posts=12",
    );
    check(
        "committee",
        "city_reports",
        &events,
        "city=230100 year=2023 | submitted_on=2023-12-20 overdue=false new_employment=2400 \
         four_ones_verified=51000 trained=3100\n\
         city=230200 year=2023 | submitted_on=2024-01-15 overdue=true new_employment=900 \
         four_ones_verified=20000 trained=1000",
    );
    check(
        "committee",
        "evaluation",
        &events,
        "plan_id=hlj-2022-2024 | completed_on=2024-12-31 new_employment_total=34210 target=33000",
    );
}
