//! The phase-out saga end to end on the embedded log: the domain, the
//! router, the sweeper and a manual clock together.

use pathway_domain::Event;
use pathway_saga::{phaseout::start_of_day, show};
use pathway_store::embedded::EmbeddedStore;
use tempfile::TempDir;

use crate::support::{STANDARD_FEN, World, noon, quiet, settle, ymd};

fn world(start: chrono::NaiveDate) -> (World<EmbeddedStore>, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    (World::new(store, noon(start), 1), dir)
}

fn count(events: &[(String, Event)]) -> usize {
    events.len()
}

#[tokio::test]
async fn placement_to_phase_out_to_benefit_phased_out_at_the_deadline_never_early() {
    let (mut w, _dir) = world(ymd(2025, 3, 1));
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("s1", quiet());
    w.assert_dibao("H1", &["P1", "P2"]).await;
    w.placed("P1", "PL1").await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    let requested = w.all_of("HouseholdReassessmentRequested").await;
    assert_eq!(
        count(&requested),
        1,
        "placement asks Civil Affairs to reassess"
    );

    // Income above the standard, within the margin: a phase-out of 12 months.
    w.clock.set(noon(ymd(2025, 3, 10)));
    w.reassess("H1", STANDARD_FEN + 10_000, "PO1")
        .await
        .expect("reassessed");
    settle(&mut router, &mut sweeper).await.expect("settles");
    let out = show::render(&w.store, "saga-phaseout-H1")
        .await
        .expect("show");
    assert!(
        out.contains("deadline gen 1 due 2026-03-09 16:00:00 UTC: pending"),
        "{out}"
    );

    // One second before the planned end: nothing fires.
    w.clock
        .set(start_of_day(ymd(2026, 3, 10)) - chrono::Duration::seconds(1));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty(), "fired early");
    assert!(w.all_of("BenefitPhasedOut").await.is_empty());

    // At the planned end: fired once, phased out once.
    w.clock.set(start_of_day(ymd(2026, 3, 10)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 1);
    let done = w.all_of("BenefitPhasedOut").await;
    assert_eq!(done.len(), 1);
    let Event::BenefitPhasedOut(e) = &done[0].1 else {
        unreachable!()
    };
    assert_eq!(e.end_date, pathway_domain::convert::date(ymd(2026, 3, 10)));

    // Running again changes nothing.
    w.clock.set(noon(ymd(2026, 4, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 1);
    assert_eq!(w.all_of("BenefitPhasedOut").await.len(), 1);
    let out = show::render(&w.store, "saga-phaseout-H1")
        .await
        .expect("show");
    assert!(
        out.contains(
            "deadline gen 1 due 2026-03-09 16:00:00 UTC: fired at 2026-03-09 16:00:00 UTC"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn planned_end_exactly_twelve_months_is_accepted_one_day_more_needs_an_approval() {
    let (mut w, _dir) = world(ymd(2025, 3, 1));
    w.assert_dibao("H1", &["P1"]).await;
    // Income within the margin recorded while a phase-out is not wanted yet:
    // the explicit start decides the planned end.
    w.clock.set(noon(ymd(2025, 3, 10)));
    w.reassess("H1", STANDARD_FEN + 10_000, "PO0")
        .await
        .expect("reassessed");
    // The reassessment started PO0 already (12 months); a second is rejected.
    let second = w
        .start("H1", "PO1", ymd(2025, 3, 10), ymd(2026, 3, 10))
        .await;
    let err = second.expect_err("second phase-out rejected").to_string();
    assert!(err.contains("already active until 2026-03-10"), "{err}");

    let (mut w, _dir2) = world(ymd(2025, 3, 1));
    w.assert_dibao("H2", &["P1"]).await;
    w.clock.set(noon(ymd(2025, 3, 10)));
    // Income within the margin but reassessed after a cancelled phase-out:
    // use the explicit start path.
    w.reassess("H2", STANDARD_FEN + 10_000, "PO-A")
        .await
        .expect("reassessed");
    w.cancel("H2", "PO-A").await.expect("cancelled");
    w.reassess("H2", STANDARD_FEN + 10_000, "PO-B")
        .await
        .expect("reassessed");
    w.cancel("H2", "PO-B").await.expect("cancelled");
    // Now no phase-out is active and the last reassessment is within the margin.
    let too_long = w
        .start("H2", "PO2", ymd(2025, 3, 10), ymd(2026, 3, 11))
        .await;
    let err = too_long
        .expect_err("12 months + 1 day rejected")
        .to_string();
    assert!(
        err.contains("planned_end_date") && err.contains("phase_out_max_months"),
        "{err}"
    );
    w.start("H2", "PO2", ymd(2025, 3, 10), ymd(2026, 3, 10))
        .await
        .expect("exactly 12 months accepted");
    // Beyond 12 months only with an approved extension naming who and why.
    w.extend("H2", "PO2", ymd(2026, 3, 11))
        .await
        .expect("extension approved");
}

#[tokio::test]
async fn an_extension_moves_the_deadline_and_the_old_one_does_nothing() {
    let (mut w, _dir) = world(ymd(2025, 3, 10));
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("s1", quiet());
    w.assert_dibao("H1", &["P1"]).await;
    w.reassess("H1", STANDARD_FEN + 10_000, "PO1")
        .await
        .expect("reassessed");
    settle(&mut router, &mut sweeper).await.expect("settles");
    w.clock.set(noon(ymd(2026, 2, 1)));
    w.extend("H1", "PO1", ymd(2026, 6, 10))
        .await
        .expect("extended");
    settle(&mut router, &mut sweeper).await.expect("settles");
    // The old deadline passes: nothing.
    w.clock.set(noon(ymd(2026, 3, 11)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty());
    // The new one: phased out on it.
    w.clock.set(start_of_day(ymd(2026, 6, 10)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    let fired = w.all_of("SagaTimerFired").await;
    assert_eq!(fired.len(), 1);
    let Event::SagaTimerFired(f) = &fired[0].1 else {
        unreachable!()
    };
    assert_eq!(f.generation, 2);
    assert_eq!(w.all_of("BenefitPhasedOut").await.len(), 1);
}

#[tokio::test]
async fn job_loss_during_a_phase_out_requests_reassessment_and_a_cancel_stops_the_deadline() {
    let (mut w, _dir) = world(ymd(2025, 3, 1));
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("s1", quiet());
    w.assert_dibao("H1", &["P1"]).await;
    w.placed("P1", "PL1").await;
    w.clock.set(noon(ymd(2025, 3, 10)));
    w.reassess("H1", STANDARD_FEN + 10_000, "PO1")
        .await
        .expect("reassessed");
    settle(&mut router, &mut sweeper).await.expect("settles");
    w.clock.set(noon(ymd(2025, 8, 1)));
    w.placement_ended("P1", "PL1").await;
    settle(&mut router, &mut sweeper).await.expect("settles");
    let requested = w.all_of("HouseholdReassessmentRequested").await;
    assert_eq!(requested.len(), 2, "placement, then job loss");
    let Event::HouseholdReassessmentRequested(r) = &requested[1].1 else {
        unreachable!()
    };
    assert_eq!(
        r.trigger,
        pathway_domain::pb::ReassessmentTrigger::JobLoss as i32
    );
    // Civil Affairs finds the income back below the standard: cancelled.
    w.reassess("H1", STANDARD_FEN - 10_000, "unused")
        .await
        .expect("reassessed");
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert_eq!(w.all_of("PhaseOutCancelled").await.len(), 1);
    w.clock.set(noon(ymd(2026, 4, 1)));
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty());
    assert!(w.all_of("BenefitPhasedOut").await.is_empty());
    let out = show::render(&w.store, "saga-phaseout-H1")
        .await
        .expect("show");
    assert!(
        out.contains("deadline gen 1 due 2026-03-09 16:00:00 UTC: cancelled"),
        "{out}"
    );
}

#[tokio::test]
async fn a_restarted_router_resumes_from_its_checkpoint_and_remembers_households() {
    let (mut w, _dir) = world(ymd(2025, 3, 1));
    let mut router = w.router(quiet()).await;
    w.assert_dibao("H1", &["P1"]).await;
    router.run_once().await.expect("routes");
    let checkpoint = router.position();
    drop(router);
    // The placement comes after the restart; the household was learned
    // before the checkpoint.
    w.placed("P1", "PL1").await;
    let mut router = w.router(quiet()).await;
    assert_eq!(router.position(), checkpoint);
    router.run_once().await.expect("routes");
    assert_eq!(w.all_of("HouseholdReassessmentRequested").await.len(), 1);
}

#[tokio::test]
async fn a_sweeper_asked_to_stop_stops_after_the_sweep_in_hand() {
    let (mut w, _dir) = world(ymd(2025, 3, 1));
    let mut router = w.router(quiet()).await;
    let mut sweeper = w.sweeper("s1", quiet());
    for (household, person) in [("H1", "P1"), ("H2", "P2"), ("H3", "P3")] {
        w.assert_dibao(household, &[person]).await;
        w.placed(person, &format!("PL-{person}")).await;
    }
    settle(&mut router, &mut sweeper).await.expect("settles");
    w.clock.set(noon(ymd(2025, 3, 10)));
    for (i, household) in ["H1", "H2", "H3"].into_iter().enumerate() {
        w.reassess(household, STANDARD_FEN + 10_000, &format!("PO{i}"))
            .await
            .expect("reassessed");
    }
    settle(&mut router, &mut sweeper).await.expect("settles");
    assert!(w.all_of("SagaTimerFired").await.is_empty());

    // Every planned end has passed: three timers due, one per sweep.
    w.clock.set(start_of_day(ymd(2026, 4, 1)));
    let mut one_at_a_time = w.sweeper("s2", quiet()).with_timers_per_sweep(1);
    let asked = one_at_a_time
        .sweep_until_idle_or(|| true)
        .await
        .expect("sweeps");
    assert_eq!(asked.fired, 1, "stopped after the sweep in hand");
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 1);
    let rest = one_at_a_time.sweep_until_idle().await.expect("sweeps");
    assert_eq!(rest.fired, 2);
    assert_eq!(w.all_of("SagaTimerFired").await.len(), 3);
}
