//! A world for saga tests: a log, the command engine, a manual clock, a
//! router and sweepers, and helpers to record the facts other contexts own.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use pathway_domain::{
    Event,
    convert::{date, personal_int},
    household::{
        ApproveExtension, AssertLowIncomeStatus, BenefitMode, CancelPhaseOut, HouseholdCommand,
        LowIncomeStatus, ReassessIncome, StartPhaseOut,
    },
    pb,
};
use pathway_engine::{CommandMeta, Engine, EngineError, Handled};
use pathway_proto::Message;
use pathway_saga::{
    CommandSink, FaultHook, ManualClock, ProcessManager, Router, SagaError, Sweeper, no_faults,
    phaseout::{EngineSink, PhaseOutSaga, start_of_day},
};
use pathway_store::{EventStore, ExpectedVersion, NewEvent};
use uuid::Uuid;

/// The dibao standard used in tests: 700 yuan a month.
pub(crate) const STANDARD_FEN: i64 = 70_000;

pub(crate) fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// Noon in the province on `d`.
pub(crate) fn noon(d: NaiveDate) -> DateTime<Utc> {
    start_of_day(d) + chrono::Duration::hours(12)
}

pub(crate) type PhaseOutRouter<S> = Router<S, PhaseOutSaga, EngineSink<S>>;

pub(crate) struct World<S> {
    pub(crate) store: S,
    pub(crate) engine: Engine<S>,
    pub(crate) clock: ManualClock,
    /// Seeds the ids of commands the test sends as departments.
    ids: u64,
    id_seed: Uuid,
}

impl<S: EventStore + Clone> World<S> {
    pub(crate) fn new(store: S, start: DateTime<Utc>, id_seed: u64) -> Self {
        World {
            engine: Engine::unsealed(store.clone()),
            store,
            clock: ManualClock::new(start),
            ids: 0,
            id_seed: Uuid::from_u128(u128::from(id_seed) | (1 << 100)),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        use pathway_saga::Clock;
        self.clock.now()
    }

    pub(crate) fn today(&self) -> NaiveDate {
        pathway_saga::phaseout::province_date(self.now())
    }

    fn next_id(&mut self) -> Uuid {
        self.ids += 1;
        Uuid::new_v5(&self.id_seed, &self.ids.to_be_bytes())
    }

    pub(crate) async fn router(&self, hook: FaultHook) -> PhaseOutRouter<S> {
        Router::start(
            self.store.clone(),
            PhaseOutSaga::default(),
            EngineSink(self.engine.clone()),
            "phaseout",
            hook,
        )
        .await
        .expect("router starts")
    }

    /// A router of any process manager whose commands go through the engine.
    pub(crate) async fn router_of<P>(&self, pm: P, name: &str) -> Router<S, P, EngineSink<S>>
    where
        P: ProcessManager,
        EngineSink<S>: CommandSink<P::Command>,
    {
        Router::start(
            self.store.clone(),
            pm,
            EngineSink(self.engine.clone()),
            name,
            quiet(),
        )
        .await
        .expect("router starts")
    }

    /// A command of department `department` on `stream`, decided now.
    pub(crate) async fn command<A: pathway_domain::Aggregate>(
        &mut self,
        department: pb::Department,
        stream: &str,
        command: &A::Command,
    ) -> Result<Handled, EngineError> {
        let meta = CommandMeta {
            command_id: self.next_id(),
            correlation_id: Uuid::nil(),
            causation_id: None,
            actor_department: department,
            actor_region: "230100".to_owned(),
            actor_id: "officer-1".to_owned(),
            now: self.now(),
        };
        self.engine.handle::<A>(stream, command, &meta).await
    }

    pub(crate) fn sweeper(&self, name: &str, hook: FaultHook) -> Sweeper<S, ManualClock> {
        Sweeper::new(self.store.clone(), self.clock.clone(), name, hook)
    }

    /// A Civil Affairs command on a household, decided now.
    pub(crate) async fn civil_affairs(
        &mut self,
        command: HouseholdCommand,
    ) -> Result<Handled, EngineError> {
        let meta = CommandMeta {
            command_id: self.next_id(),
            correlation_id: Uuid::nil(),
            causation_id: None,
            actor_department: pb::Department::CivilAffairs,
            actor_region: "230100".to_owned(),
            actor_id: "ca-officer-1".to_owned(),
            now: self.now(),
        };
        let stream = command.stream_id();
        self.engine
            .handle::<pathway_domain::household::Household>(&stream, &command, &meta)
            .await
    }

    pub(crate) async fn assert_dibao(&mut self, household: &str, members: &[&str]) {
        let today = self.today();
        self.civil_affairs(HouseholdCommand::AssertLowIncomeStatus(
            AssertLowIncomeStatus {
                household_ref: household.to_owned(),
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                status: LowIncomeStatus::Dibao,
                effective_on: today,
                asserted_by: "ca-officer-1".to_owned(),
            },
        ))
        .await
        .expect("status asserted");
    }

    /// Civil Affairs reassesses at `income_fen` per capita (margin criteria met).
    pub(crate) async fn reassess(
        &mut self,
        household: &str,
        income_fen: i64,
        phase_out_id: &str,
    ) -> Result<Handled, EngineError> {
        let today = self.today();
        self.civil_affairs(HouseholdCommand::ReassessIncome(ReassessIncome {
            household_ref: household.to_owned(),
            per_capita_income_fen: income_fen,
            dibao_standard_fen: STANDARD_FEN,
            meets_edge_criteria: true,
            assessed_by: "ca-officer-1".to_owned(),
            assessed_on: today,
            phase_out_id: phase_out_id.to_owned(),
            benefit_mode: BenefitMode::Tapered,
        }))
        .await
    }

    pub(crate) async fn start(
        &mut self,
        household: &str,
        id: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Handled, EngineError> {
        self.civil_affairs(HouseholdCommand::StartPhaseOut(StartPhaseOut {
            household_ref: household.to_owned(),
            phase_out_id: id.to_owned(),
            start_date: start,
            planned_end_date: end,
            benefit_mode: BenefitMode::Full,
        }))
        .await
    }

    pub(crate) async fn extend(
        &mut self,
        household: &str,
        id: &str,
        to: NaiveDate,
    ) -> Result<Handled, EngineError> {
        self.civil_affairs(HouseholdCommand::ApproveExtension(ApproveExtension {
            household_ref: household.to_owned(),
            phase_out_id: id.to_owned(),
            new_end_date: to,
            justification: "wage not yet stable".to_owned(),
            approved_by: "city civil affairs bureau".to_owned(),
        }))
        .await
    }

    pub(crate) async fn cancel(
        &mut self,
        household: &str,
        id: &str,
    ) -> Result<Handled, EngineError> {
        let today = self.today();
        self.civil_affairs(HouseholdCommand::CancelPhaseOut(CancelPhaseOut {
            household_ref: household.to_owned(),
            phase_out_id: id.to_owned(),
            reason: pathway_domain::household::PhaseOutCancelReason::JobLost,
            on: today,
        }))
        .await
    }

    /// Records that `person` was placed (a fact of the placement context).
    pub(crate) async fn placed(&mut self, person: &str, placement: &str) {
        let e = Event::PersonPlaced(pb::PersonPlaced {
            placement_id: placement.to_owned(),
            person_ref: person.to_owned(),
            start_date: date(self.today()),
            monthly_wage: personal_int(250_000),
            ..Default::default()
        });
        self.fact(&format!("person-{person}"), e).await;
    }

    /// Records that `person`'s placement ended.
    pub(crate) async fn placement_ended(&mut self, person: &str, placement: &str) {
        let e = Event::PlacementEnded(pb::PlacementEnded {
            placement_id: placement.to_owned(),
            person_ref: person.to_owned(),
            end_date: date(self.today()),
            reason: 1,
        });
        self.fact(&format!("person-{person}"), e).await;
    }

    pub(crate) async fn fact(&mut self, stream: &str, event: Event) {
        let event_id = self.next_id();
        let now = self.now();
        let env = pb::EventEnvelope {
            event_id: event_id.to_string(),
            event_type: event.event_type().to_owned(),
            schema_version: pathway_proto::SCHEMA_VERSION_V1,
            occurred_at: Some(pathway_proto::Timestamp {
                seconds: now.timestamp(),
                nanos: 0,
            }),
            command_id: event_id.to_string(),
            actor_department: pb::Department::Dpf as i32,
            ..Default::default()
        };
        let new = NewEvent {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: pathway_proto::SCHEMA_VERSION_V1,
            metadata: Bytes::from(env.encode_to_vec()),
            payload: Bytes::from(pb::Event { kind: Some(event) }.encode_to_vec()),
        };
        self.store
            .append(stream, ExpectedVersion::Any, vec![new])
            .await
            .expect("fact recorded");
    }

    /// Every event of the log of type `event_type`.
    pub(crate) async fn all_of(&self, event_type: &str) -> Vec<(String, Event)> {
        let filter = pathway_store::ReadFilter {
            event_types: vec![event_type.to_owned()],
            categories: Vec::new(),
        };
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let batch = self
                .store
                .read_all(from, 1_000, &filter)
                .await
                .expect("read log");
            let n = batch.len();
            for r in batch {
                from = r.position + 1;
                out.push((
                    r.stream_id.clone(),
                    pathway_engine::decode(&r).expect("decodes"),
                ));
            }
            if n < 1_000 {
                return out;
            }
        }
    }
}

/// Runs a router and a sweeper until neither has anything left to do.
pub(crate) async fn settle<S, P, K>(
    router: &mut Router<S, P, K>,
    sweeper: &mut Sweeper<S, ManualClock>,
) -> Result<(), SagaError>
where
    S: EventStore + Clone,
    P: ProcessManager,
    K: CommandSink<P::Command>,
{
    loop {
        let routed = router.run_once().await?;
        let swept = sweeper.sweep_once().await?;
        if routed == 0 && swept.fired + swept.fired_elsewhere + swept.stale == 0 {
            // One more pass: the router's own checkpoint may be all it saw.
            if router.run_once().await? == 0 {
                return Ok(());
            }
        }
    }
}

pub(crate) fn quiet() -> FaultHook {
    no_faults()
}
