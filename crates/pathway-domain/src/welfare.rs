//! Public-welfare posts (公益性岗位) and the employment security fund (残保金).
//!
//! Two aggregates live here:
//! - [`WelfarePosts`], stream `welfare-<region>-<year>`: the posts a region
//!   developed in a year and who holds each disabled post. The provincial KPI
//!   (R-PWP-1, disabled posts ≥ 10% of all posts) is a warning, not a block:
//!   the developed totals are recorded as they are and the committee's read
//!   model flags a short share with [`WelfarePosts::meets_disabled_share`];
//! - [`Fund`], stream `fund-<region>-<year>`: the year's fund base and its
//!   allocations, with social-insurance subsidies for disabled public-welfare
//!   posts capped at a share of the base (R-FUND-1) unless an approved
//!   override raises the ceiling.

use crate::person::wire_enum;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{
    Aggregate, Context, Decision, Event, Rejection, convert, pb, policy::Policy, validate,
};

/// Longest subsidised term of a public-welfare post, in years (national
/// practice for employment-difficult persons). The extension to retirement for
/// persons within five years of it is not modelled yet.
pub const POST_TERM_MAX_YEARS: u32 = 3;

/// Most posts a region may record in one development, a bound against typos.
pub const POSTS_PER_DEVELOPMENT_MAX: u32 = 1_000_000;

/// Longest identifier, name or justification, in characters.
const ID_CHARS_MAX: usize = 64;
const NAME_CHARS_MAX: usize = 200;
const JUSTIFICATION_CHARS_MAX: usize = 2000;

/// Commands of [`WelfarePosts`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WelfarePostsCommand {
    /// Record posts developed in the region and year; repeated developments
    /// add up. The first one fixes the stream's region and year.
    DevelopPosts {
        region: String,
        year: i32,
        total_posts: u32,
        disabled_posts: u32,
    },
    /// Put a disabled person into a disabled post.
    AssignPost {
        post_id: String,
        person_ref: String,
        employer_uscc: String,
        start_date: NaiveDate,
        planned_end: NaiveDate,
    },
    /// The occupant leaves the post; the post becomes vacant.
    VacatePost {
        post_id: String,
        end_date: NaiveDate,
    },
}

/// One disabled post's current occupant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupancy {
    pub person_ref: String,
    pub start_date: NaiveDate,
}

/// The posts of a region and year.
#[derive(Debug, Clone, Default)]
pub struct WelfarePosts {
    /// `(region, year)`, set by the first development.
    pub key: Option<(String, i32)>,
    pub total_posts: u32,
    pub disabled_posts: u32,
    /// Every disabled post ever assigned, with its occupant if it has one.
    pub posts: BTreeMap<String, Option<Occupancy>>,
}

impl WelfarePosts {
    /// Whether the disabled posts reach the KPI share (R-PWP-1) of all posts,
    /// exactly and inclusive; `None` before any development. Read models use
    /// it to flag regions; decisions never block on it.
    pub fn meets_disabled_share(&self, policy: &Policy) -> Option<bool> {
        self.key.as_ref().map(|_| {
            Policy::meets_share(
                u64::from(self.disabled_posts),
                u64::from(self.total_posts),
                policy.pwp_disabled_share_min_bp,
            )
        })
    }

    fn developed(&self) -> Result<&(String, i32), Rejection> {
        self.key
            .as_ref()
            .ok_or_else(|| Rejection::state("no posts have been developed", "R-PWP-1"))
    }
}

impl Aggregate for WelfarePosts {
    type Command = WelfarePostsCommand;
    const CATEGORY: &'static str = "welfare";

    fn decide(&self, command: &WelfarePostsCommand, _ctx: &Context<'_>) -> Decision {
        match command {
            WelfarePostsCommand::DevelopPosts {
                region,
                year,
                total_posts,
                disabled_posts,
            } => {
                validate::region("region", region)?;
                year_end("year", *year)?;
                same_key(self.key.as_ref(), region, *year)?;
                if *total_posts == 0 {
                    return Err(Rejection::new(
                        "total_posts",
                        "0 posts developed",
                        "R-PWP-1",
                    ));
                }
                if *total_posts > POSTS_PER_DEVELOPMENT_MAX {
                    return Err(Rejection::new(
                        "total_posts",
                        format!("{total_posts} exceeds {POSTS_PER_DEVELOPMENT_MAX}"),
                        "limit posts_per_development_max",
                    ));
                }
                if disabled_posts > total_posts {
                    return Err(Rejection::new(
                        "disabled_posts",
                        format!("{disabled_posts} exceeds total_posts {total_posts}"),
                        "R-PWP-1",
                    ));
                }
                Ok(vec![Event::PublicWelfarePostsDeveloped(
                    pb::PublicWelfarePostsDeveloped {
                        region: region.clone(),
                        year: *year,
                        total_posts: *total_posts,
                        disabled_posts: *disabled_posts,
                    },
                )])
            }
            WelfarePostsCommand::AssignPost {
                post_id,
                person_ref,
                employer_uscc,
                start_date,
                planned_end,
            } => {
                let (region, year) = self.developed()?;
                let post_id = validate::text("post_id", post_id, ID_CHARS_MAX)?;
                let person_ref = validate::text("person_ref", person_ref, ID_CHARS_MAX)?;
                let uscc = validate::credit_code("employer_uscc", employer_uscc)?;
                validate::date_in_range("start_date", *start_date)?;
                validate::date_in_range("planned_end", *planned_end)?;
                match self.posts.get(&post_id) {
                    Some(Some(occupant)) => {
                        return Err(Rejection::new(
                            "post_id",
                            format!("post {post_id} is held by {}", occupant.person_ref),
                            "one occupant per post",
                        ));
                    }
                    Some(None) => {}
                    None => {
                        let known = self.posts.len();
                        if known >= usize::try_from(self.disabled_posts).unwrap_or(usize::MAX) {
                            return Err(Rejection::new(
                                "post_id",
                                format!(
                                    "post {post_id} would be post {} of {} disabled posts developed",
                                    known + 1,
                                    self.disabled_posts
                                ),
                                "posts must be developed before they are assigned",
                            ));
                        }
                    }
                }
                if let Some((held, _)) = self
                    .posts
                    .iter()
                    .find(|(_, o)| o.as_ref().is_some_and(|o| o.person_ref == person_ref))
                {
                    return Err(Rejection::new(
                        "person_ref",
                        format!("{person_ref} already holds post {held}"),
                        "one post per person",
                    ));
                }
                if planned_end <= start_date {
                    return Err(Rejection::new(
                        "planned_end",
                        format!("{planned_end} is not after start_date {start_date}"),
                        "post term",
                    ));
                }
                let latest = start_date
                    .checked_add_months(Months::new(12 * POST_TERM_MAX_YEARS))
                    .ok_or_else(|| {
                        Rejection::new(
                            "start_date",
                            format!("{start_date} is too late"),
                            "ISO 8601",
                        )
                    })?;
                if *planned_end > latest {
                    return Err(Rejection::new(
                        "planned_end",
                        format!(
                            "{planned_end} is after {latest}, {POST_TERM_MAX_YEARS} years from start_date {start_date}"
                        ),
                        "post_term_max_years, reference 2.8",
                    ));
                }
                Ok(vec![Event::PublicWelfarePostAssigned(
                    pb::PublicWelfarePostAssigned {
                        region: region.clone(),
                        year: *year,
                        post_id,
                        person_ref,
                        employer_uscc: uscc.as_str().to_owned(),
                        start_date: convert::date(*start_date),
                        planned_end: convert::date(*planned_end),
                    },
                )])
            }
            WelfarePostsCommand::VacatePost { post_id, end_date } => {
                let (region, year) = self.developed()?;
                let Some(Some(occupant)) = self.posts.get(post_id.trim()) else {
                    return Err(Rejection::new(
                        "post_id",
                        format!("post {post_id} has no occupant"),
                        "one occupant per post",
                    ));
                };
                validate::date_in_range("end_date", *end_date)?;
                if *end_date < occupant.start_date {
                    return Err(Rejection::new(
                        "end_date",
                        format!("{end_date} is before start_date {}", occupant.start_date),
                        "post term",
                    ));
                }
                Ok(vec![Event::PublicWelfarePostVacated(
                    pb::PublicWelfarePostVacated {
                        region: region.clone(),
                        year: *year,
                        post_id: post_id.trim().to_owned(),
                        person_ref: occupant.person_ref.clone(),
                        end_date: convert::date(*end_date),
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::PublicWelfarePostsDeveloped(e) => {
                self.key = Some((e.region.clone(), e.year));
                self.total_posts = self.total_posts.saturating_add(e.total_posts);
                self.disabled_posts = self.disabled_posts.saturating_add(e.disabled_posts);
            }
            Event::PublicWelfarePostAssigned(e) => {
                let occupancy = convert::naive(e.start_date.as_ref()).map(|start_date| Occupancy {
                    person_ref: e.person_ref.clone(),
                    start_date,
                });
                self.posts.insert(e.post_id.clone(), occupancy);
            }
            Event::PublicWelfarePostVacated(e) => {
                self.posts.insert(e.post_id.clone(), None);
            }
            _ => {}
        }
        self
    }
}

wire_enum! {
    /// A fund category, as in `pb::FundCategory`.
    FundCategory => FundCategory {
        /// Social insurance of disabled public-welfare posts: capped (R-FUND-1).
        PwpSocialInsurance => PwpSocialInsurance,
        Training => Training,
        AuxiliaryEmployment => AuxiliaryEmployment,
        Rewards => Rewards,
        Other => Other,
    }
}

/// Commands of a [`Fund`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FundCommand {
    /// Set the year's fund base; once per stream.
    BudgetFund {
        region: String,
        year: i32,
        fund_base_fen: i64,
    },
    /// Allocate money to a category; each allocation id once.
    AllocateFund {
        allocation_id: String,
        category: FundCategory,
        amount_fen: i64,
    },
    /// Approve a ceiling above the cap for the social-insurance category; the
    /// latest approval is the ceiling.
    ApproveCapOverride {
        approved_total_fen: i64,
        approved_by: String,
        justification: String,
    },
}

/// A region's fund for a year.
#[derive(Debug, Clone, Default)]
pub struct Fund {
    /// `(region, year)`, set by the budget.
    pub key: Option<(String, i32)>,
    pub fund_base_fen: i64,
    /// Cumulative allocations per category (wire value of `pb::FundCategory`).
    pub category_total_fen: BTreeMap<i32, i64>,
    pub allocation_ids: BTreeSet<String>,
    /// The approved ceiling of the social-insurance category, if any.
    pub override_total_fen: Option<i64>,
}

impl Fund {
    fn budgeted(&self) -> Result<&(String, i32), Rejection> {
        self.key
            .as_ref()
            .ok_or_else(|| Rejection::state("the fund has no budget", "fund budget"))
    }
}

/// Whether `total_fen` is within the cap share of `base_fen`, exactly:
/// `total / base ≤ cap_bp / 10 000`, inclusive.
fn within_cap(total_fen: i64, base_fen: i64, cap_bp: u32) -> bool {
    i128::from(total_fen) * 10_000 <= i128::from(base_fen) * i128::from(cap_bp)
}

impl Aggregate for Fund {
    type Command = FundCommand;
    const CATEGORY: &'static str = "fund";

    fn decide(&self, command: &FundCommand, ctx: &Context<'_>) -> Decision {
        match command {
            FundCommand::BudgetFund {
                region,
                year,
                fund_base_fen,
            } => {
                if let Some((r, y)) = &self.key {
                    return Err(Rejection::state(
                        format!("the fund of {r} for {y} is already budgeted"),
                        "one budget per fund year",
                    ));
                }
                validate::region("region", region)?;
                year_end("year", *year)?;
                let base = validate::money_fen("fund_base_fen", *fund_base_fen)?;
                Ok(vec![Event::EmploymentSecurityFundBudgeted(
                    pb::EmploymentSecurityFundBudgeted {
                        region: region.clone(),
                        year: *year,
                        fund_base_fen: base,
                    },
                )])
            }
            FundCommand::AllocateFund {
                allocation_id,
                category,
                amount_fen,
            } => {
                let (region, year) = self.budgeted()?;
                let allocation_id = validate::text("allocation_id", allocation_id, ID_CHARS_MAX)?;
                if self.allocation_ids.contains(&allocation_id) {
                    return Err(Rejection::new(
                        "allocation_id",
                        format!("allocation {allocation_id} was already made"),
                        "one allocation per id",
                    ));
                }
                let amount = validate::money_fen("amount_fen", *amount_fen)?;
                if amount <= 0 {
                    return Err(Rejection::new(
                        "amount_fen",
                        format!("{amount} is not a positive amount"),
                        "fund allocation",
                    ));
                }
                let wire = pb::FundCategory::from(*category) as i32;
                let before = self.category_total_fen.get(&wire).copied().unwrap_or(0);
                let total = before.checked_add(amount).ok_or_else(|| {
                    Rejection::new(
                        "amount_fen",
                        format!("{amount} overflows the total"),
                        "fund allocation",
                    )
                })?;
                let mut under_override = false;
                if *category == FundCategory::PwpSocialInsurance {
                    let policy = ctx.policy.at(year_end("year", *year)?);
                    if !within_cap(total, self.fund_base_fen, policy.fund_pwp_cap_bp) {
                        match self.override_total_fen {
                            Some(ceiling) if total <= ceiling => under_override = true,
                            ceiling => {
                                let why = match ceiling {
                                    Some(c) => format!(" and the approved override of {c} fen"),
                                    None => String::new(),
                                };
                                return Err(Rejection::new(
                                    "amount_fen",
                                    format!(
                                        "{amount} fen would bring the category total to {total} fen, above the cap of {} bp of the base {} fen{why}",
                                        policy.fund_pwp_cap_bp, self.fund_base_fen
                                    ),
                                    "R-FUND-1, policy fund_pwp_cap_bp",
                                ));
                            }
                        }
                    }
                }
                Ok(vec![Event::FundAllocationMade(pb::FundAllocationMade {
                    region: region.clone(),
                    year: *year,
                    allocation_id,
                    category: wire,
                    amount_fen: amount,
                    category_total_fen: total,
                    under_override,
                })])
            }
            FundCommand::ApproveCapOverride {
                approved_total_fen,
                approved_by,
                justification,
            } => {
                let (region, year) = self.budgeted()?;
                let approved = validate::money_fen("approved_total_fen", *approved_total_fen)?;
                let approved_by = validate::text("approved_by", approved_by, NAME_CHARS_MAX)?;
                let justification =
                    validate::text("justification", justification, JUSTIFICATION_CHARS_MAX)?;
                let policy = ctx.policy.at(year_end("year", *year)?);
                if within_cap(approved, self.fund_base_fen, policy.fund_pwp_cap_bp) {
                    return Err(Rejection::new(
                        "approved_total_fen",
                        format!(
                            "{approved} fen is within the cap of {} bp of the base {} fen: no override needed",
                            policy.fund_pwp_cap_bp, self.fund_base_fen
                        ),
                        "R-FUND-1, policy fund_pwp_cap_bp",
                    ));
                }
                if approved > self.fund_base_fen {
                    return Err(Rejection::new(
                        "approved_total_fen",
                        format!(
                            "{approved} fen exceeds the fund base {} fen",
                            self.fund_base_fen
                        ),
                        "R-FUND-1",
                    ));
                }
                Ok(vec![Event::AllocationCapOverrideApproved(
                    pb::AllocationCapOverrideApproved {
                        region: region.clone(),
                        year: *year,
                        category: pb::FundCategory::PwpSocialInsurance as i32,
                        approved_total_fen: approved,
                        approved_by,
                        justification,
                    },
                )])
            }
        }
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            Event::EmploymentSecurityFundBudgeted(e) => {
                self.key = Some((e.region.clone(), e.year));
                self.fund_base_fen = e.fund_base_fen;
            }
            Event::FundAllocationMade(e) => {
                self.allocation_ids.insert(e.allocation_id.clone());
                self.category_total_fen
                    .insert(e.category, e.category_total_fen);
            }
            Event::AllocationCapOverrideApproved(e)
                if e.category == pb::FundCategory::PwpSocialInsurance as i32 =>
            {
                self.override_total_fen = Some(e.approved_total_fen);
            }
            _ => {}
        }
        self
    }
}

/// The region and year of a command agree with the stream's, once it has them.
fn same_key(key: Option<&(String, i32)>, region: &str, year: i32) -> Result<(), Rejection> {
    match key {
        Some((r, _)) if r != region => Err(Rejection::new(
            "region",
            format!("{region} does not match this stream's region {r}"),
            "stream welfare-<region>-<year>",
        )),
        Some((_, y)) if *y != year => Err(Rejection::new(
            "year",
            format!("{year} does not match this stream's year {y}"),
            "stream welfare-<region>-<year>",
        )),
        _ => Ok(()),
    }
}

/// 31 December of a year inside the accepted date range: the date whose
/// policy governs the year.
fn year_end(field: &'static str, year: i32) -> Result<NaiveDate, Rejection> {
    let end = NaiveDate::from_ymd_opt(year, 12, 31).ok_or_else(|| {
        Rejection::new(field, format!("{year} is not a calendar year"), "ISO 8601")
    })?;
    validate::date_in_range(field, end)?;
    Ok(end)
}
