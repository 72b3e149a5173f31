//! Query-plan checks of the hot searches on a large generated database; ignored by default
//! because they need minutes and a database to fill:
//!
//! ```text
//! PARAPLY_PLAN_DB=/tmp/plans.db PARAPLY_PLAN_PATIENTS=50000 \
//!     cargo test -p paraply-store-sql --lib plans -- --ignored --nocapture
//! ```
//!
//! `PARAPLY_PLAN_DB` may also be a `postgres://` URL of an existing database. The database is
//! filled once (when it has no patients) with `PARAPLY_PLAN_PATIENTS` patients of ten
//! resources each, shaped like the domain's (care teams, care plans, appointments, tasks
//! owned by one of 50 organizations), then each search's plan and time are printed.

use std::time::Instant;

use paraply_fhir::ResourceType;
use paraply_search::{Restriction, SearchQuery, StaffScope, index_rows};
use paraply_store::{NewVersion, Store};
use serde_json::{Value, json};
use sqlx::{Arguments, AssertSqlSafe, Row};

use crate::search;
use crate::sql::{Bind, Statement};
use crate::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};

const ORGANIZATIONS: usize = 50;

fn uuid(kind: u32, n: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

fn pnr(n: usize) -> String {
    format!("19{:010}", n)
}

fn version(resource_type: ResourceType, id: &str, mut content: Value) -> NewVersion {
    content["resourceType"] = json!(resource_type.as_str());
    content["id"] = json!(id);
    content["meta"] = json!({"versionId": "1", "lastUpdated": "2026-11-20T10:00:00Z"});
    NewVersion {
        resource_type,
        id: id.parse().expect("generated id"),
        version_id: paraply_fhir::VersionId::FIRST,
        last_updated: time::OffsetDateTime::now_utc(),
        body: Some(content.to_string()),
        index: index_rows(resource_type, &content),
    }
}

fn patient_resources(n: usize) -> Vec<NewVersion> {
    use ResourceType::*;
    let patient = uuid(1, n);
    let subject = json!({"reference": format!("Patient/{patient}")});
    let org = |k: usize| format!("Organization/{}", uuid(9, k % ORGANIZATIONS));
    let mut out = vec![version(
        Patient,
        &patient,
        json!({"identifier": [{"system": "http://electronichealth.se/identifier/personnummer",
            "value": pnr(n)}], "active": true, "gender": if n.is_multiple_of(2) { "female" } else { "male" },
            "name": [{"family": format!("Family{}", n % 5000), "given": ["Anna", "Maria"]}],
            "birthDate": format!("19{:02}-0{}-1{}", n % 100, 1 + n % 9, n % 10),
            "telecom": [{"system": "phone", "value": format!("070-{n}")}],
            "address": [{"city": "Göteborg", "postalCode": "41101", "line": ["Gatan 1"]}],
            "generalPractitioner": [{"reference": org(n)}]}),
    )];
    for k in 0..2 {
        let team = uuid(2, n * 2 + k);
        out.push(version(
            CareTeam,
            &team,
            json!({"status": if k == 0 { "active" } else { "inactive" }, "subject": subject,
                "category": [{"coding": [{"system": "https://paraply.se/fhir/CodeSystem/careteam-category",
                    "code": if k == 0 { "fast-kontakt" } else { "team" }, "display": "Fast vårdkontakt"}]}],
                "participant": [{"member": {"reference": org(n + k)}, "role": [{"coding": [{"system":
                    "urn:oid:1.2.752.129.5.1.69", "code": "2"}]}]}],
                "managingOrganization": [{"reference": org(n)}]}),
        ));
        out.push(version(
            CarePlan,
            &uuid(3, n * 2 + k),
            json!({"status": if k == 0 { "active" } else { "completed" }, "intent": "plan",
                "subject": subject, "careTeam": [{"reference": format!("CareTeam/{team}")}],
                "period": {"start": "2026-01-01"}, "author": {"reference": org(n)},
                "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "734163000"}]}]}),
        ));
    }
    for k in 0..3 {
        out.push(version(
            Appointment,
            &uuid(4, n * 3 + k),
            json!({"status": "booked", "start": format!("2026-{:02}-{:02}T10:00:00Z", 9 + k, 1 + n % 28),
                "end": format!("2026-{:02}-{:02}T10:30:00Z", 9 + k, 1 + n % 28),
                "serviceType": [{"coding": [{"system": "http://s", "code": "besok"}]}],
                "participant": [{"actor": subject, "status": "accepted"},
                    {"actor": {"reference": org(n + k)}, "status": "accepted"}]}),
        ));
    }
    for k in 0..2 {
        let status = ["requested", "accepted", "completed", "cancelled"][(n + k) % 4];
        out.push(version(
            Task,
            &uuid(5, n * 2 + k),
            json!({"status": status, "intent": "order", "for": subject, "owner": {"reference": org(n * 2 + k)},
                "authoredOn": "2026-11-01T08:00:00Z", "code": {"coding": [{"system": "http://s", "code": "x"}]}}),
        ));
    }
    out
}

async fn fill(store: &dyn Store, patients: usize) {
    let started = Instant::now();
    let mut tx = store.begin().await.expect("begin");
    for k in 0..ORGANIZATIONS {
        tx.write(version(
            ResourceType::Organization,
            &uuid(9, k),
            json!({"name": format!("Org {k}")}),
        ))
        .await
        .expect("write");
    }
    tx.commit().await.expect("commit");
    for chunk in (0..patients).collect::<Vec<_>>().chunks(200) {
        let mut tx = store.begin().await.expect("begin");
        for &n in chunk {
            for v in patient_resources(n) {
                tx.write(v).await.expect("write");
            }
        }
        tx.commit().await.expect("commit");
    }
    println!("filled {patients} patients in {:?}", started.elapsed());
}

fn searches(patients: usize) -> Vec<(&'static str, SearchQuery)> {
    use ResourceType::*;
    let n = patients / 2;
    let patient = format!("Patient/{}", uuid(1, n));
    let org = format!("Organization/{}", uuid(9, 7));
    let patient_org = format!("Organization/{}", uuid(9, n % ORGANIZATIONS));
    let pnr = pnr(n);
    let q = |t, pairs: Vec<(&str, &str)>| SearchQuery::parse(t, pairs).expect("query");
    vec![
        (
            "CareTeam?patient&category&status",
            q(
                CareTeam,
                vec![
                    ("patient", &patient),
                    ("category", "fast-kontakt"),
                    ("status", "active"),
                ],
            ),
        ),
        (
            "CarePlan?patient&status&_include=care-team",
            q(
                CarePlan,
                vec![
                    ("patient", &patient),
                    ("status", "active"),
                    ("_include", "CarePlan:care-team"),
                ],
            ),
        ),
        (
            "Appointment?patient&date=ge&_sort=date",
            q(
                Appointment,
                vec![
                    ("patient", &patient),
                    ("date", "ge2026-10-22"),
                    ("_sort", "date"),
                ],
            ),
        ),
        ("Patient?identifier", q(Patient, vec![("identifier", &pnr)])),
        (
            "Task?owner&status=requested,accepted",
            q(
                Task,
                vec![("owner", &org), ("status", "requested,accepted")],
            ),
        ),
        (
            "Task?owner&status&_total=accurate",
            q(
                Task,
                vec![
                    ("owner", &org),
                    ("status", "requested,accepted"),
                    ("_total", "accurate"),
                ],
            ),
        ),
        (
            "CareTeam?patient.identifier",
            q(CareTeam, vec![("patient.identifier", &pnr)]),
        ),
        (
            "Patient?_has:CareTeam:patient:status&_id",
            q(
                Patient,
                vec![
                    ("_id", &patient[8..]),
                    ("_has:CareTeam:patient:status", "active"),
                ],
            ),
        ),
        ("Patient? (no filter)", q(Patient, vec![])),
        (
            "CareTeam?patient&status as the patient",
            restricted(
                q(CareTeam, vec![("patient", &patient), ("status", "active")]),
                Restriction::Patients(vec![patient[8..].parse().expect("id")]),
            ),
        ),
        (
            "CareTeam?status as the patient (the restriction drives)",
            restricted(
                q(CareTeam, vec![("status", "active")]),
                Restriction::Patients(vec![patient[8..].parse().expect("id")]),
            ),
        ),
        (
            "CarePlan?patient&_include=care-team as staff",
            restricted(
                q(
                    CarePlan,
                    vec![("patient", &patient), ("_include", "CarePlan:care-team")],
                ),
                staff(&patient_org),
            ),
        ),
        (
            "Appointment?patient&date=ge as staff",
            restricted(
                q(
                    Appointment,
                    vec![("patient", &patient), ("date", "ge2026-10-22")],
                ),
                staff(&patient_org),
            ),
        ),
        (
            "Patient?identifier as staff",
            restricted(q(Patient, vec![("identifier", &pnr)]), staff(&patient_org)),
        ),
    ]
}

/// Searches whose plan and time are taken on their second page (after a `next` cursor).
fn next_pages() -> Vec<(&'static str, SearchQuery)> {
    let org = format!("Organization/{}", uuid(9, 7));
    vec![(
        "Task?owner&status=requested,accepted, the next page",
        SearchQuery::parse(
            ResourceType::Task,
            [("owner", org.as_str()), ("status", "requested,accepted")],
        )
        .expect("query"),
    )]
}

fn restricted(mut query: SearchQuery, restriction: Restriction) -> SearchQuery {
    query.restriction = Some(restriction);
    query
}

/// Staff of `org`, which takes part in the patient's active care team.
fn staff(org: &str) -> Restriction {
    Restriction::Staff(Box::new(StaffScope {
        members: vec![org.to_owned()],
        units: vec![org.to_owned()],
        organizations: vec![org.to_owned()],
        care_provider: "SE-X".to_owned(),
        blocked_if_actor: vec![org.to_owned()],
        emergency: false,
    }))
}

fn arguments<DB: sqlx::Database>(binds: Vec<Bind>) -> DB::Arguments
where
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut args = DB::Arguments::default();
    for b in binds {
        match b {
            Bind::Text(t) => args.add(t),
            Bind::NullableText(t) => args.add(t),
            Bind::Int(i) => args.add(i),
            Bind::Real(r) => args.add(r),
        }
        .expect("encode");
    }
    args
}

async fn explain_sqlite(pool: &sqlx::SqlitePool, stmt: Statement) {
    let sql = format!("EXPLAIN QUERY PLAN {}", stmt.sql);
    let rows = sqlx::query_with(AssertSqlSafe(sql), arguments::<sqlx::Sqlite>(stmt.binds))
        .fetch_all(pool)
        .await
        .expect("explain");
    for row in rows {
        let detail: String = row.get(3);
        println!("    {detail}");
    }
}

async fn explain_postgres(pool: &sqlx::PgPool, stmt: Statement) {
    let sql = format!("EXPLAIN (ANALYZE, COSTS OFF, BUFFERS) {}", stmt.sql);
    let rows = sqlx::query_with(AssertSqlSafe(sql), arguments::<sqlx::Postgres>(stmt.binds))
        .fetch_all(pool)
        .await
        .expect("explain");
    for row in rows {
        let line: String = row.get(0);
        println!("    {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills a large database; run by hand"]
async fn plans_of_the_hot_searches() {
    let Ok(url) = std::env::var("PARAPLY_PLAN_DB") else {
        println!("PARAPLY_PLAN_DB is not set");
        return;
    };
    let patients: usize = std::env::var("PARAPLY_PLAN_PATIENTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(20_000);
    let postgres = url.starts_with("postgres");
    let store: Box<dyn Store> = if postgres {
        Box::new(
            PostgresStore::connect(&url, PostgresOptions::default())
                .await
                .expect("connect"),
        )
    } else {
        Box::new(
            SqliteStore::open(&url, SqliteOptions::default())
                .await
                .expect("open"),
        )
    };
    let probe = SearchQuery::parse(ResourceType::Patient, [("_count", "1")]).expect("query");
    if store
        .search(&probe)
        .await
        .expect("search")
        .matches
        .is_empty()
    {
        fill(&*store, patients).await;
    }
    let sqlite_pool = if postgres {
        None
    } else {
        Some(
            sqlx::SqlitePool::connect(&format!("sqlite://{url}"))
                .await
                .expect("pool"),
        )
    };
    let pg_pool = if postgres {
        let pool = sqlx::PgPool::connect(&url).await.expect("pool");
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
        Some(pool)
    } else {
        None
    };
    let mut all = searches(patients);
    for (name, mut query) in next_pages() {
        let first = store.search(&query).await.expect("search");
        query.page = first.matches.last().map(|last| last.cursor(false));
        all.push((name, query));
    }
    for (name, query) in all {
        // Warm up, then time the whole search (page, total, includes).
        let page = store.search(&query).await.expect("search");
        let started = Instant::now();
        let runs = 20;
        for _ in 0..runs {
            store.search(&query).await.expect("search");
        }
        println!(
            "\n{name}: {} matches, total {:?}, {} included, {:?} per search",
            page.matches.len(),
            page.total,
            page.included.len(),
            started.elapsed() / runs
        );
        let plan = search::search(&query, 0);
        let mut statements = vec![("page", plan.page)];
        statements.extend(plan.total.map(|t| ("total", t)));
        for (label, stmt) in statements {
            println!("  {label}:");
            if let Some(pool) = &sqlite_pool {
                explain_sqlite(pool, stmt).await;
            } else if let Some(pool) = &pg_pool {
                explain_postgres(pool, stmt).await;
            }
        }
    }
}
