//! Pages over a seeded province: content against the read models, refusals
//! against the policy, the session cookie, languages.

use axum::http::StatusCode;
use pathway_projections::Value;

use crate::helpers::{
    Province, assert_no_missing_labels, get, n, province, sign_in, sign_in_response, text, token,
    token_with,
};

const HARBIN: &str = "230100";

/// One province for the tests below (seeding costs seconds on two cores).
async fn seeded() -> Province {
    province(160).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_what_each_department_may_see() {
    let p = seeded().await;
    let app = p.app();

    // Not signed in: every page sends to the sign-in page.
    for path in [
        "/console",
        "/console/dashboard",
        "/console/cases",
        "/console/audit/verification",
    ] {
        let page = get(&app, path, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(page.location().starts_with("/console/sign-in"), "{path}");
    }
    let signin = get(&app, "/console/sign-in", None).await;
    assert_eq!(signin.status, StatusCode::OK);
    assert!(signin.body.contains(r#"<html lang="zh-CN">"#));
    assert!(signin.body.contains(r##"href="#main""##), "skip link");
    assert!(signin.body.contains(r#"<label for="token">"#));
    assert_no_missing_labels(&signin);

    // Bad, expired, revoked and unknown-department tokens are refused.
    for (bearer, message) in [
        ("pw1.nonsense.x".to_owned(), "令牌无效"),
        (token_with("dpf", None, "old", -5), "令牌已过期"),
        (
            token_with("dpf", None, "revoked-jti", 3_600),
            "令牌已被吊销",
        ),
        (token("nobody", None), "授权策略中没有"),
    ] {
        let page = sign_in_response(&app, &bearer).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{message}");
        assert!(page.body.contains(message), "{message}: {}", page.body);
        assert!(page.body.contains(r#"aria-invalid="true""#));
        assert!(page.cookie(pathway_console::SESSION_COOKIE).is_none());
    }

    // A sign-in posted from another site is refused.
    let forged = crate::helpers::send(
        &app,
        axum::http::Request::post("/console/sign-in")
            .header(axum::http::header::HOST, "console.example")
            .header(axum::http::header::ORIGIN, "https://evil.example")
            .header(
                axum::http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(axum::body::Body::from(format!(
                "token={}",
                token("committee", None)
            )))
            .expect("request"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.cookie(pathway_console::SESSION_COOKIE).is_none());

    // --- The committee's dashboard, against the committee model.
    let committee = sign_in(&app, &token("committee", None)).await;
    let dash = get(&app, "/console/dashboard", Some(&committee)).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert_no_missing_labels(&dash);
    assert!(dash.body.contains("33,000"), "the target");
    assert!(
        !dash.body.contains("src=\"http")
            && !dash.body.contains("href=\"http")
            && !dash.body.contains("<script"),
        "nothing loaded from elsewhere, no script"
    );
    assert!(
        dash.body.matches(r#"role="img""#).count() >= 4,
        "four charts"
    );
    assert!(
        dash.body.matches("<caption>").count() >= 6,
        "tables beside the charts"
    );
    let small = pathway_domain::policy::PolicyTable::builtin()
        .at(chrono::Utc::now().date_naive())
        .small_cell_min as i64;
    let mut suppressed = 0;
    for row in p.rows("committee", "new_employment", &[]) {
        let (city, year, persons) = (text(&row[0]), text(&row[1]), &row[2]);
        let Value::Int(persons) = persons else {
            panic!("persons")
        };
        let city_name = pathway_console::Locale::ZhCn.label("city", &city);
        let line = table_row(&dash.body, "各市各年新增就业人数", &city_name);
        let year_index = ["2022", "2023", "2024"]
            .iter()
            .position(|y| *y == year)
            .expect("year");
        let cell = line[year_index].clone();
        if *persons > 0 && *persons < small {
            suppressed += 1;
            assert_eq!(
                cell,
                format!("&lt;{small}"),
                "{city} {year}: a small cell is suppressed"
            );
        } else {
            assert_eq!(cell, n(*persons), "{city} {year}");
        }
    }
    eprintln!("dashboard: {suppressed} small cells suppressed");
    let by_year = get(&app, "/console/dashboard?year=2023", Some(&committee)).await;
    assert!(by_year.body.contains("各市新增就业（2023）"));
    // The committee may not open a DPF's pages.
    let refused = get(&app, "/console/cases", Some(&committee)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("无权访问"));
    assert_no_missing_labels(&refused);

    // --- A city DPF: its own city's cases only.
    let harbin = sign_in(&app, &token("dpf", Some(HARBIN))).await;
    let persons = p.rows("dpf", "persons", &[]);
    let own: Vec<String> = persons
        .iter()
        .filter(|r| text(&r[1]) == HARBIN)
        .map(|r| text(&r[0]))
        .collect();
    let other: Vec<String> = persons
        .iter()
        .filter(|r| text(&r[1]) != HARBIN)
        .map(|r| text(&r[0]))
        .collect();
    assert!(!own.is_empty() && !other.is_empty());
    let list = get(&app, "/console/cases", Some(&harbin)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_no_missing_labels(&list);
    assert!(
        list.body
            .contains(&format!("共找到 {} 人", n(own.len() as i64))),
        "count of Harbin's cases"
    );
    for r in &other {
        assert!(
            !list.body.contains(r.as_str()),
            "another city's person {r} is listed"
        );
    }
    // Search by the first characters of a reference.
    let target = &own[0];
    let found = get(
        &app,
        &format!("/console/cases?q={}", &target[..8]),
        Some(&harbin),
    )
    .await;
    assert!(found.body.contains(&format!("/console/cases/{target}")));
    // Asking for another city is refused.
    let refused = get(&app, "/console/cases?city=230200", Some(&harbin)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // A case page of the city's own person, against the read model.
    let case = get(&app, &format!("/console/cases/{target}"), Some(&harbin)).await;
    assert_eq!(case.status, StatusCode::OK, "{}", case.body);
    assert_no_missing_labels(&case);
    for heading in [
        "基本情况",
        "“四个一”服务",
        "职业培训",
        "就业安置",
        "高校毕业生台账",
    ] {
        assert!(case.body.contains(heading), "{heading}");
    }
    assert!(
        !case.body.contains("wage") && !case.body.contains("income"),
        "no wage or income"
    );
    // Another city's person is refused, and an unknown one is not found.
    let refused = get(&app, &format!("/console/cases/{}", other[0]), Some(&harbin)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("此人不是本市居民"));
    let missing = get(
        &app,
        "/console/cases/00000000-0000-0000-0000-000000000000",
        Some(&harbin),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // A city DPF may not see the dashboard or the audit pages.
    for path in [
        "/console/dashboard",
        "/console/phase-outs",
        "/console/audit/timeline",
    ] {
        assert_eq!(
            get(&app, path, Some(&harbin)).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // The province DPF sees every city, and may filter to one.
    let province_dpf = sign_in(&app, &token("dpf", None)).await;
    let all = get(&app, "/console/cases", Some(&province_dpf)).await;
    assert!(
        all.body
            .contains(&format!("共找到 {} 人", n(persons.len() as i64)))
    );
    let other_case = get(
        &app,
        &format!("/console/cases/{}", other[0]),
        Some(&province_dpf),
    )
    .await;
    assert_eq!(other_case.status, StatusCode::OK);
    // Filters and the search are counted by the read store, as the rows say.
    let county_at = pathway_projections::models::by_name("dpf")
        .expect("dpf")
        .tables()
        .iter()
        .find(|t| t.name == "persons")
        .expect("persons")
        .columns()
        .position(|c| c.name == "county")
        .expect("county");
    let in_qiqihar_counties = persons
        .iter()
        .filter(|r| text(&r[county_at]).starts_with("2302"))
        .count();
    for (query, want) in [
        (
            "employed=yes",
            p.rows("dpf", "persons", &[("employed", Value::Bool(true))])
                .len(),
        ),
        (
            "employed=no",
            p.rows("dpf", "persons", &[("employed", Value::Bool(false))])
                .len(),
        ),
        (
            "phase_out=yes",
            p.rows("dpf", "persons", &[("in_phase_out", Value::Bool(true))])
                .len(),
        ),
        (
            "city=230200&employed=yes",
            p.rows(
                "dpf",
                "persons",
                &[
                    ("city", Value::from("230200")),
                    ("employed", Value::Bool(true)),
                ],
            )
            .len(),
        ),
        ("q=2302", in_qiqihar_counties),
    ] {
        assert!(want > 0, "{query}: no rows to count");
        let page = get(
            &app,
            &format!("/console/cases?{query}"),
            Some(&province_dpf),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert!(
            page.body.contains(&format!("共找到 {} 人", n(want as i64))),
            "{query}: {want} expected"
        );
    }
    // A page past the last shows the last one, however far past.
    for page in ["1000000", "18446744073709551615"] {
        let last = get(
            &app,
            &format!("/console/cases?page={page}"),
            Some(&province_dpf),
        )
        .await;
        assert_eq!(last.status, StatusCode::OK, "page {page}");
        assert!(
            last.body.contains("/console/cases/"),
            "rows on the last page"
        );
    }

    // --- Civil Affairs' calendar, against the households table.
    let civil = sign_in(&app, &token("civil_affairs", None)).await;
    let calendar = get(&app, "/console/phase-outs", Some(&civil)).await;
    assert_eq!(calendar.status, StatusCode::OK);
    assert_no_missing_labels(&calendar);
    let active = p
        .rows(
            "civil_affairs",
            "households",
            &[("phase_out_state", Value::Text("active".into()))],
        )
        .len();
    assert!(
        calendar
            .body
            .contains(&format!("当前处于渐退期的家庭共 {} 户", n(active as i64)))
    );
    let as_of = get(&app, "/console/phase-outs?on=2023-06-30", Some(&civil)).await;
    assert!(as_of.body.contains("2023年6月30日"));
    assert_eq!(
        get(&app, "/console/cases", Some(&civil)).await.status,
        StatusCode::FORBIDDEN
    );

    // --- Education's graduate outcomes.
    let education = sign_in(&app, &token("education", None)).await;
    let graduates = get(&app, "/console/graduates", Some(&education)).await;
    assert_eq!(graduates.status, StatusCode::OK);
    assert_no_missing_labels(&graduates);
    let outcomes = p.rows("education", "graduate_outcomes", &[]);
    assert!(
        graduates
            .body
            .contains(&format!("共 {} 人", n(outcomes.len() as i64)))
    );
    for row in p.rows("education", "school_outcomes", &[]) {
        assert!(
            graduates.body.contains(&text(&row[0])),
            "school {}",
            text(&row[0])
        );
    }

    // --- The auditor: a person's timeline and the verification status.
    let auditor = sign_in(&app, &token("auditor", None)).await;
    let timeline = get(
        &app,
        &format!("/console/audit/timeline?person={target}"),
        Some(&auditor),
    )
    .await;
    assert_eq!(timeline.status, StatusCode::OK);
    assert_no_missing_labels(&timeline);
    let history = pathway_audit::history::history(
        &p.store,
        &pathway_audit::history::Subject {
            kind: pathway_audit::history::SubjectKind::Person,
            reference: target.clone(),
        },
        None,
        chrono::Utc::now(),
    )
    .await
    .expect("history");
    assert!(
        timeline
            .body
            .contains(&format!("共 {} 个事件", n(history.entries.len() as i64)))
    );
    let positions: Vec<usize> = history
        .entries
        .iter()
        .map(|e| {
            timeline
                .body
                .find(&format!("第 {} 号", n(e.position as i64)))
                .expect("entry shown")
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "entries in log order"
    );
    assert!(timeline.body.contains("PersonRegistered"));
    let verification = get(&app, "/console/audit/verification", Some(&auditor)).await;
    assert_eq!(verification.status, StatusCode::OK);
    assert_no_missing_labels(&verification);
    let head = pathway_store::EventStore::head(&p.store)
        .await
        .expect("head");
    assert!(
        verification
            .body
            .contains(&format!("第 1 号至第 {} 号", n(head.position as i64))),
        "{}",
        verification.body
    );
    assert!(verification.body.contains("签名有效"));
    assert!(verification.body.contains("仍与签名一致"));
    // The auditor reads no department model.
    assert_eq!(
        get(&app, "/console/dashboard", Some(&auditor)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&app, "/console/timeline", Some(&auditor)).await.status,
        StatusCode::NOT_FOUND
    );

    // --- Language: English on request, remembered by a cookie.
    let en = get(&app, "/console/dashboard?lang=en", Some(&committee)).await;
    assert!(en.body.contains(r#"<html lang="en">"#));
    assert!(en.body.contains("Committee dashboard"));
    assert_no_missing_labels(&en);
    let lang = en
        .cookie(pathway_console::LANG_COOKIE)
        .expect("language cookie");
    assert!(lang.starts_with("pathway_console_lang=en"));
    let both = format!("{committee}; pathway_console_lang=en");
    let remembered = get(&app, "/console/dashboard", Some(&both)).await;
    assert!(remembered.body.contains(r#"<html lang="en">"#));
    assert!(
        remembered.body.contains(r#"hreflang="zh-CN""#),
        "the switch offers Chinese"
    );
    for (path, who) in [
        ("/console/cases", &harbin),
        (&format!("/console/cases/{target}") as &str, &harbin),
        ("/console/phase-outs", &civil),
        ("/console/graduates", &education),
        ("/console/audit/verification", &auditor),
        (
            &format!("/console/audit/timeline?person={target}") as &str,
            &auditor,
        ),
    ] {
        let page = get(
            &app,
            &format!(
                "{path}{}lang=en",
                if path.contains('?') { "&" } else { "?" }
            ),
            Some(who),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_no_missing_labels(&page);
    }

    // Sign-out clears the cookie.
    let out = crate::helpers::send(
        &app,
        axum::http::Request::post("/console/sign-out")
            .header(axum::http::header::COOKIE, &committee)
            .body(axum::body::Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.cookie(pathway_console::SESSION_COOKIE)
            .expect("cleared")
            .contains("Max-Age=0")
    );
}

/// The cells (after the row header) of the row headed `header` in the
/// table captioned `caption`.
fn table_row(html: &str, caption: &str, header: &str) -> Vec<String> {
    let table = html
        .split(&format!("<caption>{caption}</caption>"))
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("table");
    let row = table
        .split(&format!(r#"<th scope="row">{header}</th>"#))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_else(|| panic!("row {header}"));
    row.split("</td>")
        .filter_map(|c| c.rsplit('>').next())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}
