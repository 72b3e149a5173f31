//! The portal "Min plan" end to end: the real server with the demo data, a patient logging
//! in through the real OpenID provider of `tests/idp` (code flow, PKCE), and the pages read
//! the way a browser without JavaScript would — on SQLite and PostgreSQL.

use paraply_auth::{IssuerKind, TrustedIssuer};
use paraply_core::{Fhir, FhirRequest, Method, Outcome};
use paraply_idp_harness::{Idp, idp_available};
use paraply_portal::PortalSettings;
use paraply_server::config::{AuthMode, Config, FileConfig};
use paraply_server::{engine, load_demo_data};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use tokio::net::TcpListener;

use super::*;

const AUDIENCE: &str = "http://paraply.test/fhir";

/// The demo data, the provider trusting this portal's callback, the server with `[portal]`.
struct PortalWorld {
    server: TestServer,
    database: TestDatabase,
    /// The provider process lives as long as the world.
    _idp: Idp,
    /// The engine over the same store, unrestricted: for setting the scene and checking it.
    fhir: Fhir,
}

/// One person's browser: cookies, no redirects followed, no JavaScript.
struct Browser {
    client: reqwest::Client,
    root: String,
}

impl PortalWorld {
    async fn start(backend: Backend) -> Option<PortalWorld> {
        assert!(
            idp_available(),
            "the portal is tested against the real provider: install Node 20+ and run `npm ci --prefix tests/idp`"
        );
        let database = TestDatabase::create(backend).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let root = format!("http://{}", listener.local_addr().expect("address"));
        let idp = Idp::start(AUDIENCE, &format!("--redirect '{root}/auth/callback'"));
        let portal = PortalSettings {
            issuer: idp.citizen.clone(),
            client_id: "paraply-portal".into(),
            client_secret: Some("paraply-portal-secret".into()),
            public_url: root.clone(),
            scopes: "openid patient/*.cruds".into(),
            session_lifetime_minutes: 60,
            accessibility_contact: Some("tillganglighet@paraply.test".into()),
        };
        let file = FileConfig {
            issuer: vec![
                TrustedIssuer::new(&idp.citizen, AUDIENCE, IssuerKind::Citizen),
                TrustedIssuer::new(&idp.region, AUDIENCE, IssuerKind::Staff),
            ],
            portal: Some(portal),
            ..FileConfig::default()
        };
        let config = Config {
            listen: listener.local_addr().expect("address"),
            database_url: database.url.clone(),
            auth: AuthMode::Oidc,
            file: file.clone(),
        };
        let server = TestServer::start_on(listener, &database.url, file, AuthMode::Oidc).await;
        let fhir = engine(server.store.clone(), &config);
        load_demo_data(&fhir).await.expect("the demo data loads");
        // A time proposed to Tolvan, inside the plan's window of the next 180 days.
        let start = (time::OffsetDateTime::now_utc() + time::Duration::days(60))
            .replace_time(time::macros::time!(10:00));
        let end = start + time::Duration::minutes(30);
        let rfc3339 = |at: time::OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .expect("a time")
        };
        let mut put = FhirRequest::new(Method::Put, "Appointment/portal-tid");
        put.body = Some(json!({
            "resourceType": "Appointment", "id": "portal-tid", "status": "proposed",
            "meta": {"profile": ["https://paraply.se/fhir/StructureDefinition/agreed-appointment"]},
            "description": "Uppföljning av patientkontraktet",
            "start": rfc3339(start), "end": rfc3339(end),
            "participant": [
                {"actor": {"reference": "Patient/demo-tolvan"}, "required": "required", "status": "needs-action"},
                {"actor": {"reference": "PractitionerRole/demo-lakare-vc"}, "required": "required", "status": "accepted"}]
        }));
        fhir.handle(put.clone())
            .await
            .expect("the proposed time is stored");
        // Another, for Lisa to answer as Tolvan's relative.
        put.path = "Appointment/portal-tid-lisa".into();
        if let Some(body) = put.body.as_mut() {
            body["id"] = json!("portal-tid-lisa");
        }
        fhir.handle(put).await.expect("the second time is stored");
        // Staff record Lisa as the guardian of a five-year-old (I13).
        let five = (time::OffsetDateTime::now_utc() - time::Duration::days(5 * 365)).date();
        for (path, body) in [
            (
                "Patient/barn",
                json!({"resourceType": "Patient", "id": "barn", "birthDate": five.to_string(),
                "name": [{"given": ["Alva"], "family": "Tolvansson"}]}),
            ),
            (
                "RelatedPerson/lisa-barn",
                json!({"resourceType": "RelatedPerson", "id": "lisa-barn",
                "active": true, "patient": {"reference": "Patient/barn"},
                "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "198505052384"}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "GUARD"}]}],
                "name": [{"given": ["Lisa"], "family": "Tolvansson"}]}),
            ),
        ] {
            let mut put = FhirRequest::new(Method::Put, path);
            put.body = Some(body);
            fhir.handle(put).await.expect("staff record the guardian");
        }

        Some(PortalWorld {
            server,
            database,
            _idp: idp,
            fhir,
        })
    }

    async fn finish(self) {
        self.server.stop().await;
        self.database.remove().await;
    }

    /// A new browser, logged in as `who` through the provider.
    async fn browser(&self, who: &str) -> Browser {
        let browser = Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            root: self.server.root.clone(),
        };
        browser.log_in(who).await;
        browser
    }

    async fn search(&self, query: &str) -> Vec<Value> {
        let (path, query) = query.split_once('?').unwrap_or((query, ""));
        let mut request = FhirRequest::new(Method::Get, path);
        request.query = paraply_core::parse_query(query);
        match self.fhir.handle(request).await.expect("a search") {
            Outcome::Searchset { page, .. } => page
                .matches
                .iter()
                .filter_map(|m| m.resource.body.as_deref())
                .map(|body| serde_json::from_str(body).expect("stored JSON"))
                .collect(),
            _ => panic!("not a searchset"),
        }
    }
}

impl Browser {
    /// A portal URL (the server's `url` is below `/fhir`).
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// Logs `who` in through the provider, as a browser following redirects would.
    async fn log_in(&self, who: &str) {
        let mut url = self.at(&format!("/auth/login?login_hint={who}&return_to=/"));
        for _ in 0..20 {
            let response = self.client.get(&url).send().await.expect("a login step");
            let Some(location) = response.headers().get(header::LOCATION) else {
                panic!("the login stopped at {url}: {}", response.status());
            };
            let next = location.to_str().expect("ASCII").to_owned();
            if next == "/" {
                return;
            }
            url = reqwest::Url::parse(&url)
                .and_then(|base| base.join(&next))
                .expect("a URL")
                .to_string();
        }
        panic!("the login did not come back to the portal");
    }

    async fn page(&self, path: &str) -> Page {
        let response = self.client.get(self.at(path)).send().await.expect("a page");
        Page::read(response).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(self.at(path))
            .header(header::ORIGIN, self.root.clone())
            .form(form)
            .send()
            .await
            .expect("a form post");
        Page::read(response).await
    }
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    async fn read(response: reqwest::Response) -> Page {
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.expect("a body"),
        }
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first form's CSRF field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("a closing quote")].to_owned()
    }

    fn assert_html(&self) {
        assert!(
            self.header(header::CONTENT_TYPE).starts_with("text/html"),
            "{}",
            self.body
        );
        assert!(self.body.starts_with("<!DOCTYPE html>"), "{}", self.body);
    }
}

async fn run(backend: Backend) {
    let Some(world) = PortalWorld::start(backend).await else {
        return;
    };
    scenario(&world).await;
    world.finish().await;
}

#[tokio::test]
async fn sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres() {
    run(Backend::Postgres).await;
}

async fn scenario(world: &PortalWorld) {
    // Before logging in: a start page that offers the login, and pages that send there.
    let anonymous = Browser {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client"),
        root: world.server.root.clone(),
    };
    let landing = anonymous.page("/").await;
    assert_eq!(landing.status, StatusCode::OK);
    landing.assert_html();
    assert!(landing.body.contains("href=\"/auth/login?return_to=/\""));
    let protected = anonymous.page("/logg").await;
    assert_eq!(protected.status, StatusCode::SEE_OTHER);
    assert_eq!(
        protected.header(header::LOCATION),
        "/auth/login?return_to=%2Flogg"
    );

    let tolvan = world.browser("tolvan").await;

    // The start page: the whole patientkontrakt, with the security headers.
    let start = tolvan.page("/").await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.body);
    start.assert_html();
    for expected in [
        "<html lang=\"sv\">",
        "Plan för Tolvan Tolvansson",
        "Mina fasta kontakter",
        "Anna Berg",
        "Mina tider",
        "<a href=\"/tider/portal-tid\">Svara på tiden ",
        "href=\"/planer/demo-sip-tolvan\"",
        "Tider som väntar på ditt svar",
    ] {
        assert!(start.body.contains(expected), "{expected}: {}", start.body);
    }
    let csp = start.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(start.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(start.header(header::REFERRER_POLICY), "no-referrer");
    assert_eq!(start.header(header::CACHE_CONTROL), "no-store");

    // An appointment: the answer form.
    let appointment = tolvan.page("/tider/portal-tid").await;
    assert_eq!(appointment.status, StatusCode::OK, "{}", appointment.body);
    assert!(appointment.body.contains("Väntar på ditt svar"));
    let csrf = appointment.csrf();

    // A post without the session's CSRF token is refused with a page, not JSON.
    let forged = tolvan
        .post("/tider/portal-tid", &[("answer", "accepted")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    forged.assert_html();

    // A post with mistakes: an error summary linking to each field, nothing stored.
    let wrong = tolvan
        .post(
            "/tider/portal-tid",
            &[
                ("csrf", &csrf),
                ("wish_from", "4/3 2031"),
                ("message", "Hej"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.body.contains("Det finns ett problem"),
        "{}",
        wrong.body
    );
    assert!(wrong.body.contains("href=\"#answer\""), "{}", wrong.body);
    assert!(wrong.body.contains("href=\"#wish_from\""), "{}", wrong.body);
    assert!(
        wrong.body.contains(">Hej</textarea>"),
        "the message is kept"
    );
    assert!(
        world
            .search("AppointmentResponse?appointment=Appointment/portal-tid")
            .await
            .is_empty()
    );

    // Asking for another time reaches the clinician as an AppointmentResponse.
    let answered = tolvan
        .post(
            "/tider/portal-tid",
            &[
                ("csrf", &csrf),
                ("answer", "tentative"),
                ("message", "Helst en förmiddag"),
                ("wish_from", "2031-03-10"),
                ("wish_to", "2031-03-20"),
            ],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let responses = world
        .search("AppointmentResponse?appointment=Appointment/portal-tid")
        .await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    let response = &responses[0];
    assert_eq!(response["participantStatus"], "tentative");
    assert_eq!(response["comment"], "Helst en förmiddag");
    assert_eq!(response["actor"]["reference"], "Patient/demo-tolvan");
    assert_eq!(response["start"], "2031-03-10T00:00:00+01:00");
    let after = tolvan.page(answered.header(header::LOCATION)).await;
    assert!(
        after.body.contains("Ditt svar är skickat"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("Du har bett om en annan tid"),
        "{}",
        after.body
    );

    // Then accepting it books it.
    tolvan
        .post(
            "/tider/portal-tid",
            &[("csrf", &csrf), ("answer", "accepted")],
        )
        .await;
    let booked = tolvan.page("/tider/portal-tid").await;
    assert!(booked.body.contains("Bokad"), "{}", booked.body);

    // A plan: efforts per responsible organization.
    let plan = tolvan.page("/planer/demo-sip-tolvan").await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert!(plan.body.contains("Insatser"), "{}", plan.body);
    assert!(
        plan.body.contains("Hemtjänsten Solna centrum"),
        "{}",
        plan.body
    );

    // "Mina mål": a goal in the patient's own words, changed, then reached.
    let goals = tolvan.page("/mal").await;
    assert_eq!(goals.status, StatusCode::OK, "{}", goals.body);
    assert!(
        goals.body.contains("Kunna gå till affären själv"),
        "{}",
        goals.body
    );
    let empty = tolvan
        .post("/mal", &[("csrf", &csrf), ("description", "  ")])
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("href=\"#new-goal\""), "{}", empty.body);
    let added = tolvan
        .post(
            "/mal",
            &[
                ("csrf", &csrf),
                ("description", "Orka gå till kyrkan på söndagar"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let own_goal = |goals: Vec<Value>| {
        goals
            .into_iter()
            .find(|g| {
                g["description"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("kyrkan"))
            })
            .expect("the new goal is stored")
    };
    let goal = own_goal(world.search("Goal?patient=Patient/demo-tolvan").await);
    assert_eq!(goal["expressedBy"]["reference"], "Patient/demo-tolvan");
    assert_eq!(goal["lifecycleStatus"], "active");
    let goal_id = goal["id"].as_str().expect("an id").to_owned();
    let goals = tolvan.page("/mal?sparat=1").await;
    assert!(goals.body.contains("Ditt mål är sparat."), "{}", goals.body);
    assert!(goals.body.contains("Orka gå till kyrkan på söndagar"));
    tolvan
        .post(
            &format!("/mal/{goal_id}"),
            &[
                ("csrf", &csrf),
                ("action", "save"),
                ("description", "Orka gå till kyrkan varje söndag"),
            ],
        )
        .await;
    tolvan
        .post(
            &format!("/mal/{goal_id}"),
            &[("csrf", &csrf), ("action", "reached")],
        )
        .await;
    let goal = own_goal(world.search("Goal?patient=Patient/demo-tolvan").await);
    assert_eq!(
        goal["description"]["text"],
        "Orka gå till kyrkan varje söndag"
    );
    assert_eq!(goal["lifecycleStatus"], "completed");
    assert_eq!(goal["achievementStatus"]["coding"][0]["code"], "achieved");
    assert_eq!(goal["meta"]["versionId"], "3", "{goal}");
    let not_mine = tolvan
        .post("/mal/finns-inte", &[("csrf", &csrf), ("action", "reached")])
        .await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND);

    // Messages to a fixed contact, as FHIR Communications, and the answer, unread until seen.
    let messages = tolvan.page("/meddelanden").await;
    assert_eq!(messages.status, StatusCode::OK, "{}", messages.body);
    let contact = {
        let at = messages
            .body
            .find("<option value=\"PractitionerRole/")
            .expect("a contact to write to");
        let rest = &messages.body[at + "<option value=\"".len()..];
        rest[..rest.find('"').expect("a quote")].to_owned()
    };
    let empty = tolvan
        .post(
            "/meddelanden",
            &[("csrf", &csrf), ("to", &contact), ("text", "")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.body.contains("href=\"#text\""), "{}", empty.body);
    let stranger = tolvan
        .post(
            "/meddelanden",
            &[
                ("csrf", &csrf),
                ("to", "PractitionerRole/someone-else"),
                ("text", "Hej"),
            ],
        )
        .await;
    assert_eq!(
        stranger.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "only my contacts"
    );
    let sent = tolvan
        .post(
            "/meddelanden",
            &[
                ("csrf", &csrf),
                ("to", &contact),
                ("text", "Kan jag ta medicinen på kvällen?"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let outbox = world
        .search(&format!(
            "Communication?recipient={contact}&sender=Patient/demo-tolvan"
        ))
        .await;
    assert_eq!(
        outbox.len(),
        1,
        "the clinician's system finds it: {outbox:?}"
    );
    assert_eq!(outbox[0]["sender"]["reference"], "Patient/demo-tolvan");
    assert_eq!(
        outbox[0]["payload"][0]["contentString"],
        "Kan jag ta medicinen på kvällen?"
    );
    // The clinician's system answers with an ordinary FHIR create.
    let mut reply = FhirRequest::new(Method::Post, "Communication");
    reply.body = Some(json!({
        "resourceType": "Communication", "status": "completed",
        "subject": {"reference": "Patient/demo-tolvan"},
        "sender": {"reference": contact},
        "recipient": [{"reference": "Patient/demo-tolvan"}],
        "inResponseTo": [{"reference": format!("Communication/{}", outbox[0]["id"].as_str().expect("an id"))}],
        "sent": "2026-12-07T10:00:00+01:00",
        "payload": [{"contentString": "Ja, det går bra."}]
    }));
    world
        .fhir
        .handle(reply)
        .await
        .expect("the answer is stored");
    let start = tolvan.page("/").await;
    assert!(
        start.body.contains("Olästa meddelanden: 1."),
        "{}",
        start.body
    );
    let conversation = tolvan.page("/meddelanden").await;
    assert!(conversation.body.contains("Ja, det går bra."));
    assert!(
        conversation.body.contains(">Nytt</strong>"),
        "{}",
        conversation.body
    );
    let start = tolvan.page("/").await;
    assert!(
        !start.body.contains("Olästa meddelanden"),
        "read once shown"
    );
    let answered = world
        .search(&format!(
            "Communication?recipient=Patient/demo-tolvan&sender={contact}"
        ))
        .await;
    assert!(answered[0].get("received").is_some(), "{answered:?}");

    // Relatives: the demo's Lisa may see the plan and answer times; Tolvan adds Elsa.
    let relatives = tolvan.page("/narstaende").await;
    assert_eq!(relatives.status, StatusCode::OK, "{}", relatives.body);
    assert!(
        relatives.body.contains("Lisa Tolvansson"),
        "{}",
        relatives.body
    );
    assert!(
        relatives
            .body
            .contains("Får se din plan och svara på tider åt dig")
    );
    let bad = tolvan
        .post(
            "/narstaende",
            &[
                ("csrf", &csrf),
                ("personnummer", "12345"),
                ("given", "Elsa"),
                ("family", "Svensson"),
                ("relation", "FRND"),
                ("access", "read"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("href=\"#personnummer\""), "{}", bad.body);
    assert!(
        bad.body.contains("value=\"Elsa\""),
        "what was typed is kept"
    );
    let added = tolvan
        .post(
            "/narstaende",
            &[
                ("csrf", &csrf),
                ("personnummer", "20170315-2387"),
                ("given", "Elsa"),
                ("family", "Svensson"),
                ("relation", "FRND"),
                ("access", "read"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let elsa_record = world.search("RelatedPerson?identifier=201703152387").await;
    assert_eq!(elsa_record.len(), 1, "{elsa_record:?}");
    let elsa_id = elsa_record[0]["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        elsa_record[0]["patient"]["reference"],
        "Patient/demo-tolvan"
    );
    let elsa_consents = world
        .search(&format!(
            "Consent?actor=RelatedPerson/{elsa_id}&status=active"
        ))
        .await;
    assert_eq!(elsa_consents.len(), 1, "{elsa_consents:?}");
    let consent_id = elsa_consents[0]["id"].as_str().expect("an id").to_owned();

    // Elsa logs in: a relative, who picks whose plan to view and sees only its pages.
    let elsa = world.browser("elsa").await;
    let first = elsa.page("/").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    assert_eq!(first.header(header::LOCATION), "/valj");
    // Only Tolvan allowed her: nothing to choose.
    let choice = elsa.page("/valj").await;
    assert_eq!(choice.status, StatusCode::SEE_OTHER);
    assert_eq!(choice.header(header::LOCATION), "/");
    let elsa_csrf = elsa.page("/").await.csrf();
    let karin = elsa
        .post("/valj", &[("csrf", &elsa_csrf), ("patient", "demo-karin")])
        .await;
    assert_eq!(karin.status, StatusCode::NOT_FOUND, "only who allowed it");
    let viewed = elsa.page("/").await;
    assert_eq!(viewed.status, StatusCode::OK, "{}", viewed.body);
    assert!(
        viewed
            .body
            .contains("Du ser planen för Tolvan Tolvansson som närstående")
    );
    assert!(
        !viewed.body.contains("href=\"/mal\""),
        "no goals for a relative"
    );
    assert!(
        !viewed.body.contains("Svara på tiden") && !viewed.body.contains("väntar på ditt svar"),
        "a relative who may only read is asked for no answer: {}",
        viewed.body
    );
    assert_eq!(
        elsa.page("/meddelanden").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(elsa.page("/narstaende").await.status, StatusCode::FORBIDDEN);

    // Lisa may answer times for Tolvan, and is the guardian of a five-year-old: two plans to
    // choose between. She answers on Tolvan's behalf (the answer is his participation), and
    // the Provenance names her.
    let lisa = world.browser("lisa").await;
    let first = lisa.page("/").await;
    assert_eq!(first.header(header::LOCATION), "/valj");
    let choice = lisa.page("/valj").await;
    assert_eq!(choice.status, StatusCode::OK, "{}", choice.body);
    assert!(
        choice.body.contains("Visa planen för Tolvan Tolvansson"),
        "{}",
        choice.body
    );
    assert!(
        choice.body.contains("Visa planen för Alva Tolvansson"),
        "{}",
        choice.body
    );
    let chose = lisa
        .post(
            "/valj",
            &[("csrf", &choice.csrf()), ("patient", "demo-tolvan")],
        )
        .await;
    assert_eq!(chose.status, StatusCode::SEE_OTHER, "{}", chose.body);
    let time = lisa.page("/tider/portal-tid-lisa").await;
    assert_eq!(time.status, StatusCode::OK, "{}", time.body);
    let lisa_csrf = time.csrf();
    let answered = lisa
        .post(
            "/tider/portal-tid-lisa",
            &[("csrf", &lisa_csrf), ("answer", "accepted")],
        )
        .await;
    assert_eq!(answered.status, StatusCode::SEE_OTHER, "{}", answered.body);
    let responses = world
        .search("AppointmentResponse?appointment=Appointment/portal-tid-lisa")
        .await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["actor"]["reference"], "Patient/demo-tolvan");
    let response_id = responses[0]["id"].as_str().expect("an id");
    let provenance = world
        .search(&format!(
            "Provenance?target=AppointmentResponse/{response_id}"
        ))
        .await;
    assert!(
        provenance
            .iter()
            .any(|p| p.to_string().contains("RelatedPerson/demo-lisa")),
        "{provenance:?}"
    );
    // She is also the guardian of a five-year-old (recorded by staff when the world began):
    // the child's plan needs no consent (I13).
    let picked = lisa
        .post("/valj", &[("csrf", &lisa_csrf), ("patient", "barn")])
        .await;
    assert_eq!(picked.status, StatusCode::SEE_OTHER);
    let child = lisa.page("/").await;
    assert_eq!(child.status, StatusCode::OK, "{}", child.body);
    assert!(
        child
            .body
            .contains("Du ser planen för Alva Tolvansson som närstående"),
        "{}",
        child.body
    );

    // Elsa may only read: no answering for her.
    let elsa_answer = elsa
        .post(
            "/tider/portal-tid-lisa",
            &[("csrf", &elsa_csrf), ("answer", "declined")],
        )
        .await;
    assert_eq!(elsa_answer.status, StatusCode::FORBIDDEN);

    // Tolvan takes the permission back: at once, Elsa sees nothing of his.
    let revoked = tolvan
        .post(&format!("/narstaende/{consent_id}"), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let after = elsa.page("/").await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.body);
    assert!(!after.body.contains("Tolvan"), "{}", after.body);

    // Nobody else's plan or appointment, and no stack trace for a wrong address.
    for path in ["/planer/finns-inte", "/tider/finns-inte", "/nagot/annat"] {
        let missing = tolvan.page(path).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        missing.assert_html();
        assert!(missing.body.contains("Sidan finns inte"), "{path}");
    }

    // "Vem har läst min plan": the page views above are in the log, newest first.
    let log = tolvan.page("/logg").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    assert!(log.body.contains("Vem har läst min plan"));
    assert!(
        log.body.contains("Skapade uppgifter"),
        "the answer: {}",
        log.body
    );
    assert!(log.body.contains("Vård och behandling"), "{}", log.body);

    // The plan as a PDF.
    let response = tolvan
        .client
        .get(tolvan.at("/plan.pdf"))
        .send()
        .await
        .expect("the PDF");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/pdf");
    let pdf = response.bytes().await.expect("PDF bytes");
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");

    // English for the rest of the session; the domain's Swedish text says it is Swedish.
    let english = tolvan
        .post(
            "/sprak",
            &[("csrf", &csrf), ("lang", "en"), ("return_to", "/")],
        )
        .await;
    assert_eq!(english.status, StatusCode::SEE_OTHER);
    let start = tolvan.page("/").await;
    assert!(start.body.contains("<html lang=\"en\">"), "{}", start.body);
    assert!(start.body.contains("My named contacts"), "{}", start.body);
    assert!(
        start.body.contains("Show the appointment "),
        "{}",
        start.body
    );
    assert!(start.body.contains("<div class=\"narrative\" lang=\"sv\">"));

    // The accessibility statement names where to report a problem.
    let statement = tolvan.page("/tillganglighet").await;
    assert_eq!(statement.status, StatusCode::OK);
    assert!(statement.body.contains("tillganglighet@paraply.test"));
    assert!(statement.body.contains("WCAG 2.1"));

    // Logging out ends the session: the pages send to the login again.
    tolvan.post("/auth/logout", &[("csrf", &csrf)]).await;
    let after_logout = tolvan.page("/logg").await;
    assert_eq!(after_logout.status, StatusCode::SEE_OTHER);
}
