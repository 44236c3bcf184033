//! Public-welfare posts (one occupant per post, three-year term, KPI share
//! recorded not blocked) and the fund with its 20% social-insurance cap.

use expect_test::{Expect, expect};
use pathway_domain::{
    Aggregate, Event, pb,
    policy::PolicyTable,
    validate,
    welfare::{Fund, FundCategory, FundCommand, WelfarePosts, WelfarePostsCommand},
};

use crate::check::{check, day};

const TODAY: &str = "2024-06-30";

fn wire_date(s: &str) -> Option<pb::Date> {
    pathway_domain::convert::date(day(s))
}

fn developed(total: u32, disabled: u32) -> Event {
    Event::PublicWelfarePostsDeveloped(pb::PublicWelfarePostsDeveloped {
        region: "230100".into(),
        year: 2024,
        total_posts: total,
        disabled_posts: disabled,
    })
}

fn assigned(post: &str, person: &str) -> Event {
    Event::PublicWelfarePostAssigned(pb::PublicWelfarePostAssigned {
        region: "230100".into(),
        year: 2024,
        post_id: post.into(),
        person_ref: person.into(),
        employer_uscc: employer(),
        start_date: wire_date("2024-03-01"),
        planned_end: wire_date("2025-02-28"),
    })
}

fn vacated(post: &str, person: &str) -> Event {
    Event::PublicWelfarePostVacated(pb::PublicWelfarePostVacated {
        region: "230100".into(),
        year: 2024,
        post_id: post.into(),
        person_ref: person.into(),
        end_date: wire_date("2024-05-31"),
    })
}

fn employer() -> String {
    validate::make_credit_code("12230100MB1234567")
}

fn assign(post: &str, person: &str, start: &str, end: &str) -> WelfarePostsCommand {
    WelfarePostsCommand::AssignPost {
        post_id: post.into(),
        person_ref: person.into(),
        employer_uscc: employer(),
        start_date: day(start),
        planned_end: day(end),
    }
}

#[test]
fn develop_posts() {
    let develop = |region: &str, year, total, disabled| WelfarePostsCommand::DevelopPosts {
        region: region.into(),
        year,
        total_posts: total,
        disabled_posts: disabled,
    };
    let cases: Vec<(Vec<Event>, WelfarePostsCommand, Expect)> = vec![
        (
            vec![],
            develop("230100", 2024, 100, 10),
            expect![[r#"
            PublicWelfarePostsDeveloped PublicWelfarePostsDeveloped(PublicWelfarePostsDeveloped { region: "230100", year: 2024, total_posts: 100, disabled_posts: 10 })
        "#]],
        ),
        // below the 10% KPI: recorded, not blocked
        (
            vec![],
            develop("230100", 2024, 100, 5),
            expect![[r#"
            PublicWelfarePostsDeveloped PublicWelfarePostsDeveloped(PublicWelfarePostsDeveloped { region: "230100", year: 2024, total_posts: 100, disabled_posts: 5 })
        "#]],
        ),
        (
            vec![],
            develop("230100", 2024, 10, 11),
            expect![[r#"
            rejected: disabled_posts: 11 exceeds total_posts 10 (R-PWP-1)
        "#]],
        ),
        (
            vec![],
            develop("230100", 2024, 0, 0),
            expect![[r#"
            rejected: total_posts: 0 posts developed (R-PWP-1)
        "#]],
        ),
        (
            vec![],
            develop("990100", 2024, 10, 1),
            expect![[r#"
            rejected: region: 990100 is not in Heilongjiang (GB/T 2260 23xxxx)
        "#]],
        ),
        (
            vec![developed(100, 10)],
            develop("230100", 2024, 20, 2),
            expect![[r#"
            PublicWelfarePostsDeveloped PublicWelfarePostsDeveloped(PublicWelfarePostsDeveloped { region: "230100", year: 2024, total_posts: 20, disabled_posts: 2 })
        "#]],
        ),
        (
            vec![developed(100, 10)],
            develop("230200", 2024, 20, 2),
            expect![[r#"
            rejected: region: 230200 does not match this stream's region 230100 (stream welfare-<region>-<year>)
        "#]],
        ),
        (
            vec![developed(100, 10)],
            develop("230100", 2023, 20, 2),
            expect![[r#"
            rejected: year: 2023 does not match this stream's year 2024 (stream welfare-<region>-<year>)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<WelfarePosts>(&given, &when, TODAY, expect);
    }
}

#[test]
fn disabled_share_kpi_is_a_flag() {
    let policy = PolicyTable::builtin().at(day("2024-12-31"));
    let share = |events: &[Event]| WelfarePosts::fold(events).meets_disabled_share(&policy);
    assert_eq!(share(&[]), None);
    assert_eq!(share(&[developed(100, 10)]), Some(true));
    assert_eq!(share(&[developed(100, 9)]), Some(false));
    assert_eq!(share(&[developed(100, 9), developed(10, 2)]), Some(true));
}

#[test]
fn assign_post() {
    let pool = vec![developed(10, 2)];
    let cases: Vec<(Vec<Event>, WelfarePostsCommand, Expect)> = vec![
        (
            vec![],
            assign("P1", "person-a", "2024-03-01", "2025-02-28"),
            expect![[r#"
            rejected: command: no posts have been developed (R-PWP-1)
        "#]],
        ),
        (
            pool.clone(),
            assign("P1", "person-a", "2024-03-01", "2025-02-28"),
            expect![[r#"
            PublicWelfarePostAssigned PublicWelfarePostAssigned(PublicWelfarePostAssigned { region: "230100", year: 2024, post_id: "P1", person_ref: "person-a", employer_uscc: "12230100MB1234567L", start_date: Some(Date { year: 2024, month: 3, day: 1 }), planned_end: Some(Date { year: 2025, month: 2, day: 28 }) })
        "#]],
        ),
        // three years to the day is the longest term
        (
            pool.clone(),
            assign("P1", "person-a", "2024-03-01", "2027-03-01"),
            expect![[r#"
            PublicWelfarePostAssigned PublicWelfarePostAssigned(PublicWelfarePostAssigned { region: "230100", year: 2024, post_id: "P1", person_ref: "person-a", employer_uscc: "12230100MB1234567L", start_date: Some(Date { year: 2024, month: 3, day: 1 }), planned_end: Some(Date { year: 2027, month: 3, day: 1 }) })
        "#]],
        ),
        (
            pool.clone(),
            assign("P1", "person-a", "2024-03-01", "2027-03-02"),
            expect![[r#"
            rejected: planned_end: 2027-03-02 is after 2027-03-01, 3 years from start_date 2024-03-01 (post_term_max_years, reference 2.8)
        "#]],
        ),
        (
            pool.clone(),
            assign("P1", "person-a", "2024-03-01", "2024-03-01"),
            expect![[r#"
            rejected: planned_end: 2024-03-01 is not after start_date 2024-03-01 (post term)
        "#]],
        ),
        (
            pool.clone(),
            assign(" ", "person-a", "2024-03-01", "2025-02-28"),
            expect![[r#"
            rejected: post_id: is empty (text)
        "#]],
        ),
        (
            pool.clone(),
            WelfarePostsCommand::AssignPost {
                post_id: "P1".into(),
                person_ref: "person-a".into(),
                employer_uscc: "12230100MB12345670".into(),
                start_date: day("2024-03-01"),
                planned_end: day("2025-02-28"),
            },
            expect![[r#"
                rejected: employer_uscc: check character of 12230100MB12345670 is 0, expected L (GB 32100)
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<WelfarePosts>(&given, &when, TODAY, expect);
    }
}

#[test]
fn a_post_holds_one_occupant() {
    let given = [developed(10, 2), assigned("P1", "person-a")];
    let cases = [
        (
            assign("P1", "person-b", "2024-04-01", "2025-03-31"),
            expect![[r#"
            rejected: post_id: post P1 is held by person-a (one occupant per post)
        "#]],
        ),
        (
            assign("P2", "person-a", "2024-04-01", "2025-03-31"),
            expect![[r#"
            rejected: person_ref: person-a already holds post P1 (one post per person)
        "#]],
        ),
        (
            assign("P2", "person-b", "2024-04-01", "2025-03-31"),
            expect![[r#"
            PublicWelfarePostAssigned PublicWelfarePostAssigned(PublicWelfarePostAssigned { region: "230100", year: 2024, post_id: "P2", person_ref: "person-b", employer_uscc: "12230100MB1234567L", start_date: Some(Date { year: 2024, month: 4, day: 1 }), planned_end: Some(Date { year: 2025, month: 3, day: 31 }) })
        "#]],
        ),
    ];
    for (when, expect) in cases {
        check::<WelfarePosts>(&given, &when, TODAY, expect);
    }
}

#[test]
fn assignments_stay_within_the_disabled_posts_developed() {
    let given = [
        developed(10, 2),
        assigned("P1", "person-a"),
        assigned("P2", "person-b"),
    ];
    let when = assign("P3", "person-c", "2024-04-01", "2025-03-31");
    check::<WelfarePosts>(
        &given,
        &when,
        TODAY,
        expect![[r#"
        rejected: post_id: post P3 would be post 3 of 2 disabled posts developed (posts must be developed before they are assigned)
    "#]],
    );
}

#[test]
fn vacate_post() {
    let cases: Vec<(Vec<Event>, WelfarePostsCommand, Expect)> = vec![
        (
            vec![developed(10, 2), assigned("P1", "person-a")],
            WelfarePostsCommand::VacatePost {
                post_id: "P1".into(),
                end_date: day("2024-05-31"),
            },
            expect![[r#"
                PublicWelfarePostVacated PublicWelfarePostVacated(PublicWelfarePostVacated { region: "230100", year: 2024, post_id: "P1", person_ref: "person-a", end_date: Some(Date { year: 2024, month: 5, day: 31 }) })
            "#]],
        ),
        (
            vec![developed(10, 2), assigned("P1", "person-a")],
            WelfarePostsCommand::VacatePost {
                post_id: "P1".into(),
                end_date: day("2024-02-29"),
            },
            expect![[r#"
                rejected: end_date: 2024-02-29 is before start_date 2024-03-01 (post term)
            "#]],
        ),
        (
            vec![developed(10, 2)],
            WelfarePostsCommand::VacatePost {
                post_id: "P1".into(),
                end_date: day("2024-05-31"),
            },
            expect![[r#"
                rejected: post_id: post P1 has no occupant (one occupant per post)
            "#]],
        ),
        // a vacated post can be assigned again
        (
            vec![
                developed(10, 1),
                assigned("P1", "person-a"),
                vacated("P1", "person-a"),
            ],
            assign("P1", "person-b", "2024-06-01", "2025-05-31"),
            expect![[r#"
                PublicWelfarePostAssigned PublicWelfarePostAssigned(PublicWelfarePostAssigned { region: "230100", year: 2024, post_id: "P1", person_ref: "person-b", employer_uscc: "12230100MB1234567L", start_date: Some(Date { year: 2024, month: 6, day: 1 }), planned_end: Some(Date { year: 2025, month: 5, day: 31 }) })
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<WelfarePosts>(&given, &when, TODAY, expect);
    }
}

const BASE_FEN: i64 = 1_000_000;

fn budgeted() -> Event {
    Event::EmploymentSecurityFundBudgeted(pb::EmploymentSecurityFundBudgeted {
        region: "230100".into(),
        year: 2024,
        fund_base_fen: BASE_FEN,
    })
}

fn allocated(id: &str, category: pb::FundCategory, amount: i64, total: i64) -> Event {
    Event::FundAllocationMade(pb::FundAllocationMade {
        region: "230100".into(),
        year: 2024,
        allocation_id: id.into(),
        category: category as i32,
        amount_fen: amount,
        category_total_fen: total,
        under_override: false,
    })
}

fn override_approved(total: i64) -> Event {
    Event::AllocationCapOverrideApproved(pb::AllocationCapOverrideApproved {
        region: "230100".into(),
        year: 2024,
        category: pb::FundCategory::PwpSocialInsurance as i32,
        approved_total_fen: total,
        approved_by: "Provincial Department of Finance".into(),
        justification: "post expansion".into(),
    })
}

fn allocate(id: &str, category: FundCategory, amount_fen: i64) -> FundCommand {
    FundCommand::AllocateFund {
        allocation_id: id.into(),
        category,
        amount_fen,
    }
}

#[test]
fn budget_fund() {
    let budget = |base| FundCommand::BudgetFund {
        region: "230100".into(),
        year: 2024,
        fund_base_fen: base,
    };
    let cases: Vec<(Vec<Event>, FundCommand, Expect)> = vec![
        (
            vec![],
            budget(BASE_FEN),
            expect![[r#"
            EmploymentSecurityFundBudgeted EmploymentSecurityFundBudgeted(EmploymentSecurityFundBudgeted { region: "230100", year: 2024, fund_base_fen: 1000000 })
        "#]],
        ),
        (
            vec![],
            budget(-1),
            expect![[r#"
            rejected: fund_base_fen: -1 fen is negative (money in fen)
        "#]],
        ),
        (
            vec![budgeted()],
            budget(BASE_FEN),
            expect![[r#"
            rejected: command: the fund of 230100 for 2024 is already budgeted (one budget per fund year)
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Fund>(&given, &when, TODAY, expect);
    }
}

#[test]
fn social_insurance_cap() {
    use FundCategory::PwpSocialInsurance as Si;
    let cases: Vec<(Vec<Event>, FundCommand, Expect)> = vec![
        (
            vec![],
            allocate("A1", Si, 1),
            expect![[r#"
            rejected: command: the fund has no budget (fund budget)
        "#]],
        ),
        // exactly 20% of the base is allowed, 1 fen more is not
        (
            vec![budgeted()],
            allocate("A1", Si, 200_000),
            expect![[r#"
            FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "A1", category: PwpSocialInsurance, amount_fen: 200000, category_total_fen: 200000, under_override: false })
        "#]],
        ),
        (
            vec![budgeted()],
            allocate("A1", Si, 200_001),
            expect![[r#"
            rejected: amount_fen: 200001 fen would bring the category total to 200001 fen, above the cap of 2000 bp of the base 1000000 fen (R-FUND-1, policy fund_pwp_cap_bp)
        "#]],
        ),
        // the cap is on the cumulative total of the category
        (
            vec![
                budgeted(),
                allocated("A1", pb::FundCategory::PwpSocialInsurance, 150_000, 150_000),
            ],
            allocate("A2", Si, 50_001),
            expect![[r#"
                rejected: amount_fen: 50001 fen would bring the category total to 200001 fen, above the cap of 2000 bp of the base 1000000 fen (R-FUND-1, policy fund_pwp_cap_bp)
            "#]],
        ),
        (
            vec![
                budgeted(),
                allocated("A1", pb::FundCategory::PwpSocialInsurance, 150_000, 150_000),
            ],
            allocate("A2", Si, 50_000),
            expect![[r#"
                FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "A2", category: PwpSocialInsurance, amount_fen: 50000, category_total_fen: 200000, under_override: false })
            "#]],
        ),
        // other categories are not capped by R-FUND-1
        (
            vec![budgeted()],
            allocate("T1", FundCategory::Training, 900_000),
            expect![[r#"
            FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "T1", category: Training, amount_fen: 900000, category_total_fen: 900000, under_override: false })
        "#]],
        ),
        // an override raises the ceiling to the approved total, no further
        (
            vec![budgeted(), override_approved(300_000)],
            allocate("A1", Si, 250_000),
            expect![[r#"
            FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "A1", category: PwpSocialInsurance, amount_fen: 250000, category_total_fen: 250000, under_override: true })
        "#]],
        ),
        (
            vec![budgeted(), override_approved(300_000)],
            allocate("A1", Si, 300_001),
            expect![[r#"
            rejected: amount_fen: 300001 fen would bring the category total to 300001 fen, above the cap of 2000 bp of the base 1000000 fen and the approved override of 300000 fen (R-FUND-1, policy fund_pwp_cap_bp)
        "#]],
        ),
        (
            vec![budgeted(), override_approved(300_000)],
            allocate("A1", Si, 100_000),
            expect![[r#"
            FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "A1", category: PwpSocialInsurance, amount_fen: 100000, category_total_fen: 100000, under_override: false })
        "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Fund>(&given, &when, TODAY, expect);
    }
}

#[test]
fn allocation_ids_and_amounts() {
    let given = [
        budgeted(),
        allocated("A1", pb::FundCategory::Training, 10, 10),
    ];
    let cases = [
        (
            allocate("A1", FundCategory::Training, 10),
            expect![[r#"
            rejected: allocation_id: allocation A1 was already made (one allocation per id)
        "#]],
        ),
        (
            allocate("A2", FundCategory::Training, 0),
            expect![[r#"
            rejected: amount_fen: 0 is not a positive amount (fund allocation)
        "#]],
        ),
        (
            allocate("A2", FundCategory::Rewards, -5),
            expect![[r#"
            rejected: amount_fen: -5 fen is negative (money in fen)
        "#]],
        ),
        (
            allocate("A2", FundCategory::Training, 15),
            expect![[r#"
            FundAllocationMade FundAllocationMade(FundAllocationMade { region: "230100", year: 2024, allocation_id: "A2", category: Training, amount_fen: 15, category_total_fen: 25, under_override: false })
        "#]],
        ),
    ];
    for (when, expect) in cases {
        check::<Fund>(&given, &when, TODAY, expect);
    }
}

#[test]
fn approve_cap_override() {
    let approve = |total| FundCommand::ApproveCapOverride {
        approved_total_fen: total,
        approved_by: "Provincial Department of Finance".into(),
        justification: "post expansion".into(),
    };
    let cases: Vec<(Vec<Event>, FundCommand, Expect)> = vec![
        (
            vec![budgeted()],
            approve(300_000),
            expect![[r#"
            AllocationCapOverrideApproved AllocationCapOverrideApproved(AllocationCapOverrideApproved { region: "230100", year: 2024, category: PwpSocialInsurance, approved_total_fen: 300000, approved_by: "Provincial Department of Finance", justification: "post expansion" })
        "#]],
        ),
        (
            vec![budgeted()],
            approve(200_000),
            expect![[r#"
            rejected: approved_total_fen: 200000 fen is within the cap of 2000 bp of the base 1000000 fen: no override needed (R-FUND-1, policy fund_pwp_cap_bp)
        "#]],
        ),
        (
            vec![budgeted()],
            approve(BASE_FEN + 1),
            expect![[r#"
            rejected: approved_total_fen: 1000001 fen exceeds the fund base 1000000 fen (R-FUND-1)
        "#]],
        ),
        (
            vec![],
            approve(300_000),
            expect![[r#"
            rejected: command: the fund has no budget (fund budget)
        "#]],
        ),
        (
            vec![budgeted()],
            FundCommand::ApproveCapOverride {
                approved_total_fen: 300_000,
                approved_by: "Provincial Department of Finance".into(),
                justification: "  ".into(),
            },
            expect![[r#"
                rejected: justification: is empty (text)
            "#]],
        ),
    ];
    for (given, when, expect) in cases {
        check::<Fund>(&given, &when, TODAY, expect);
    }
}
