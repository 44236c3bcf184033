//! Training programmes: the cycle matches the duration.

use expect_test::expect;
use pathway_domain::training::{
    RegisterProgramme, TrainingCommand as C, TrainingCycle, TrainingProgramme, TrainingType,
};

use crate::check::{check, day, history};

fn programme(cycle: TrainingCycle, start: &str, end: &str) -> C {
    C::RegisterProgramme(RegisterProgramme {
        programme_id: "t-1".to_owned(),
        training_type: TrainingType::PracticalTechnology,
        cycle,
        provider_org: "Harbin vocational school".to_owned(),
        start_date: day(start),
        end_date: day(end),
        region: "230102".to_owned(),
    })
}

#[test]
fn short_is_at_most_one_month() {
    use TrainingCycle::*;
    check::<TrainingProgramme>(
        &[],
        &programme(Short, "2023-03-01", "2023-03-01"),
        "2023-02-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Short 2023-03-01..2023-03-01 provider=Harbin vocational school region=230102
    "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Short, "2023-03-01", "2023-04-01"),
        "2023-02-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Short 2023-03-01..2023-04-01 provider=Harbin vocational school region=230102
    "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Short, "2023-03-01", "2023-04-02"),
        "2023-02-01",
        expect![[r#"
            rejected: cycle: Short does not fit 2023-03-01 to 2023-04-02, which is Medium (training cycle: short ≤ 1 month, medium ≤ 6 months, long > 6 months, §4.3)
        "#]],
    );
    // month arithmetic: 31 January + 1 month is 28 February
    check::<TrainingProgramme>(
        &[],
        &programme(Short, "2023-01-31", "2023-02-28"),
        "2023-01-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Short 2023-01-31..2023-02-28 provider=Harbin vocational school region=230102
    "#]],
    );
}

#[test]
fn medium_is_more_than_one_up_to_six_months() {
    use TrainingCycle::*;
    check::<TrainingProgramme>(
        &[],
        &programme(Medium, "2023-03-01", "2023-04-02"),
        "2023-02-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Medium 2023-03-01..2023-04-02 provider=Harbin vocational school region=230102
    "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Medium, "2023-03-01", "2023-09-01"),
        "2023-02-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Medium 2023-03-01..2023-09-01 provider=Harbin vocational school region=230102
    "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Medium, "2023-03-01", "2023-09-02"),
        "2023-02-01",
        expect![[r#"
            rejected: cycle: Medium does not fit 2023-03-01 to 2023-09-02, which is Long (training cycle: short ≤ 1 month, medium ≤ 6 months, long > 6 months, §4.3)
        "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Medium, "2023-03-01", "2023-03-31"),
        "2023-02-01",
        expect![[r#"
            rejected: cycle: Medium does not fit 2023-03-01 to 2023-03-31, which is Short (training cycle: short ≤ 1 month, medium ≤ 6 months, long > 6 months, §4.3)
        "#]],
    );
}

#[test]
fn long_is_more_than_six_months() {
    use TrainingCycle::*;
    check::<TrainingProgramme>(
        &[],
        &programme(Long, "2023-03-01", "2023-09-02"),
        "2023-02-01",
        expect![[r#"
        TrainingProgrammeRegistered programme_id=t-1 type=PracticalTechnology cycle=Long 2023-03-01..2023-09-02 provider=Harbin vocational school region=230102
    "#]],
    );
    check::<TrainingProgramme>(
        &[],
        &programme(Long, "2023-03-01", "2023-09-01"),
        "2023-02-01",
        expect![[r#"
            rejected: cycle: Long does not fit 2023-03-01 to 2023-09-01, which is Medium (training cycle: short ≤ 1 month, medium ≤ 6 months, long > 6 months, §4.3)
        "#]],
    );
}

#[test]
fn end_not_before_start_and_registered_once() {
    use TrainingCycle::*;
    check::<TrainingProgramme>(
        &[],
        &programme(Short, "2023-03-01", "2023-02-28"),
        "2023-02-01",
        expect![[r#"
        rejected: end_date: 2023-02-28 is before start_date 2023-03-01 (training: end ≥ start)
    "#]],
    );
    let registered = history::<TrainingProgramme>(&[(
        programme(Short, "2023-03-01", "2023-03-10"),
        "2023-02-01",
    )]);
    check::<TrainingProgramme>(
        &registered,
        &programme(Short, "2023-03-01", "2023-03-10"),
        "2023-02-02",
        expect![[r#"
        rejected: command: programme t-1 is already registered (training: one registration per programme)
    "#]],
    );
    let C::RegisterProgramme(mut outside) = programme(Short, "2023-03-01", "2023-03-10");
    outside.region = "110101".to_owned();
    check::<TrainingProgramme>(
        &[],
        &C::RegisterProgramme(outside),
        "2023-02-01",
        expect![[r#"
        rejected: region: 110101 is not in Heilongjiang (GB/T 2260 23xxxx)
    "#]],
    );
}
