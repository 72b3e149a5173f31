//! The document for Tolvan Tolvansson (191212121212): his patientkontrakt with Region
//! Stockholm and Solna stad, read by himself, a relative and staff.

use super::*;
use paraply_fhir::codes;
use serde_json::json;
use time::macros::datetime;

const BASE: &str = "https://paraply.example.se/fhir";
const DOCUMENT_ID: &str = "5b0f9b8e-3c4d-4e2a-9f1b-2a7c6d8e9f01";

fn patient() -> Value {
    json!({
        "resourceType": "Patient", "id": "tolvan",
        "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "191212121212"}],
        "name": [{"family": "Tolvansson", "given": ["Tolvan"]}],
        "gender": "male", "birthDate": "1912-12-12"
    })
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn internal_note(text: &str) -> Value {
    json!({"extension": [{"url": codes::NOTE_VISIBILITY_URL, "valueCode": "internal"}], "text": text})
}

fn external_note(text: &str) -> Value {
    json!({"extension": [{"url": codes::NOTE_VISIBILITY_URL, "valueCode": "external"}], "text": text})
}

fn fast_kontakt(id: &str, role: &str, member: &str) -> Value {
    json!({
        "resourceType": "CareTeam", "id": id, "status": "active",
        "meta": {"profile": [codes::profile::FAST_KONTAKT]},
        "category": [coding(codes::CARE_TEAM_CATEGORY_SYSTEM, codes::FAST_KONTAKT)],
        "subject": {"reference": "Patient/tolvan"},
        "participant": [{"role": [coding(codes::FAST_KONTAKT_ROLE_SYSTEM, role)], "member": {"reference": member}}]
    })
}

fn appointment(id: &str, start: &str, end: &str, status: &str, patient_status: &str) -> Value {
    json!({
        "resourceType": "Appointment", "id": id, "status": status,
        "meta": {"profile": [codes::profile::AGREED_APPOINTMENT]},
        "description": "Uppföljning av blodtryck",
        "start": start, "end": end,
        "participant": [
            {"actor": {"reference": "Patient/tolvan"}, "required": "required", "status": patient_status},
            {"actor": {"reference": "PractitionerRole/anna-lakare"}, "required": "required", "status": "accepted"},
            {"actor": {"reference": "Location/vc-solna-mottagning"}, "required": "information-only", "status": "accepted"}
        ]
    })
}

fn resources() -> Vec<Value> {
    let mut lakare = fast_kontakt("fk-lakare", "2", "PractitionerRole/anna-lakare");
    lakare["note"] = json!([
        internal_note("Patienten är orolig för sina provsvar"),
        external_note("Ring gärna före lunch")
    ]);
    let mut samordnare = fast_kontakt("fk-samordnare", "4", "PractitionerRole/karin-ssk");
    samordnare["telecom"] = json!([{"system": "phone", "value": "08-123 456 78", "use": "work"}]);
    samordnare["extension"] = json!([
        {"url": codes::REACHABLE_HOURS_URL, "extension": [
            {"url": "daysOfWeek", "valueCode": "mon"}, {"url": "daysOfWeek", "valueCode": "tue"},
            {"url": "daysOfWeek", "valueCode": "wed"}, {"url": "daysOfWeek", "valueCode": "thu"},
            {"url": "daysOfWeek", "valueCode": "fri"},
            {"url": "availableStartTime", "valueTime": "08:00:00"},
            {"url": "availableEndTime", "valueTime": "16:00:00"}
        ]},
        {"url": codes::CONTACT_ROUTE_URL, "valueString": "Ring vårdcentralens växel och be om Karin."}
    ]);
    let mut omsorg = fast_kontakt("fk-omsorg", "3", "PractitionerRole/sara-hemtjanst");
    omsorg["status"] = json!("inactive");

    let mut tentative = appointment(
        "besok-ny-tid",
        "2026-05-20T11:00:00+02:00",
        "2026-05-20T11:30:00+02:00",
        "pending",
        "tentative",
    );
    tentative["description"] = json!("Samtal om <läkemedel> & biverkningar");
    let mut restricted = appointment(
        "besok-skyddat",
        "2026-04-22T08:00:00Z",
        "2026-04-22T08:30:00Z",
        "booked",
        "accepted",
    );
    restricted["meta"]["security"] = json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]);

    vec![
        json!({
            "resourceType": "CarePlan", "id": "patientkontrakt", "status": "active", "intent": "plan",
            "meta": {"profile": [codes::profile::PATIENTKONTRAKT]},
            "category": [coding(codes::PLAN_CATEGORY_SYSTEM, codes::PATIENTKONTRAKT)],
            "title": "Tolvans patientkontrakt",
            "description": "Tolvan och vården är överens om att Karin samordnar vården och att Tolvan kan bo kvar hemma.",
            "subject": {"reference": "Patient/tolvan"},
            "author": {"reference": "PractitionerRole/karin-ssk"},
            "goal": [{"reference": "Goal/promenad"}],
            "note": [internal_note("Diskutera boende vid nästa SIP")]
        }),
        json!({
            "resourceType": "Goal", "id": "promenad", "lifecycleStatus": "active",
            "description": {"text": "Jag vill kunna gå till affären själv"},
            "subject": {"reference": "Patient/tolvan"}, "expressedBy": {"reference": "Patient/tolvan"}
        }),
        json!({
            "resourceType": "Task", "id": "egen-promenad", "status": "in-progress", "intent": "plan",
            "description": "Promenera 20 minuter varje dag",
            "for": {"reference": "Patient/tolvan"}, "basedOn": [{"reference": "CarePlan/patientkontrakt"}],
            "owner": {"reference": "Patient/tolvan"}
        }),
        lakare,
        samordnare,
        omsorg,
        appointment(
            "besok-bokat",
            "2026-04-14T07:30:00Z",
            "2026-04-14T08:00:00Z",
            "booked",
            "accepted",
        ),
        tentative,
        appointment(
            "besok-forslag",
            "2026-04-12T09:00:00+02:00",
            "2026-04-12T09:30:00+02:00",
            "proposed",
            "needs-action",
        ),
        appointment(
            "besok-langt-fram",
            "2027-01-10T09:00:00+01:00",
            "2027-01-10T09:30:00+01:00",
            "booked",
            "accepted",
        ),
        restricted,
        json!({
            "resourceType": "AppointmentResponse", "id": "svar-ny-tid",
            "appointment": {"reference": "Appointment/besok-ny-tid"},
            "start": "2026-05-21T13:00:00+02:00", "end": "2026-05-21T13:30:00+02:00",
            "actor": {"reference": "Patient/tolvan"}, "participantStatus": "tentative",
            "comment": "Jag har tandläkare den dagen"
        }),
        json!({
            "resourceType": "CarePlan", "id": "sip", "status": "active", "intent": "plan",
            "meta": {"profile": [codes::profile::SIP]},
            "category": [coding(codes::PLAN_TYPE_SYSTEM, "SIP")],
            "title": "SIP för Tolvan",
            "subject": {"reference": "Patient/tolvan"},
            "partOf": [{"reference": "CarePlan/patientkontrakt"}],
            "author": {"reference": "Organization/region-stockholm"},
            "contributor": [{"reference": "Organization/solna-stad"}],
            "careTeam": [{"reference": "CareTeam/sip-team"}]
        }),
        json!({
            "resourceType": "CarePlan", "id": "rehab", "status": "active", "intent": "plan",
            "category": [coding(codes::PLAN_TYPE_SYSTEM, "RP")],
            "title": "Rehabilitering efter höftoperation",
            "subject": {"reference": "Patient/tolvan"},
            "partOf": [{"reference": "CarePlan/patientkontrakt"}],
            "author": {"reference": "Organization/vc-solna"}
        }),
        json!({
            "resourceType": "Task", "id": "hemtjanst", "status": "in-progress", "intent": "plan",
            "description": "Hemtjänst morgon och kväll",
            "for": {"reference": "Patient/tolvan"}, "basedOn": [{"reference": "CarePlan/sip"}],
            "owner": {"reference": "Organization/solna-stad"}
        }),
        json!({
            "resourceType": "Task", "id": "lakemedelsgenomgang", "status": "requested", "intent": "plan",
            "description": "Läkemedelsgenomgång",
            "for": {"reference": "Patient/tolvan"}, "basedOn": [{"reference": "CarePlan/sip"}],
            "owner": {"reference": "PractitionerRole/anna-lakare"},
            "note": [internal_note("Kolla interaktion med warfarin")]
        }),
        json!({
            "resourceType": "Task", "id": "fk-ansokan", "status": "requested", "intent": "plan",
            "description": "Ansökan om bostadstillägg",
            "for": {"reference": "Patient/tolvan"}, "basedOn": [{"reference": "CarePlan/sip"}],
            "owner": {"reference": "Organization/solna-stad"},
            "extension": [{"url": codes::PERFORMED_BY_OTHER_URL, "valueString": "Försäkringskassan"}]
        }),
        json!({
            "resourceType": "CareTeam", "id": "sip-team", "status": "active",
            "category": [coding(codes::CARE_TEAM_CATEGORY_SYSTEM, codes::SIP_TEAM)],
            "subject": {"reference": "Patient/tolvan"},
            "participant": [
                {"role": [coding(codes::SIP_ROLE_SYSTEM, "sip-samordnare")], "member": {"reference": "PractitionerRole/karin-ssk"}},
                {"role": [coding(codes::SIP_ROLE_SYSTEM, "insatsansvarig")], "member": {"reference": "PractitionerRole/sara-hemtjanst"}},
                {"role": [coding(codes::SIP_ROLE_SYSTEM, "narstaende")], "member": {"reference": "RelatedPerson/lisa"}}
            ]
        }),
        json!({
            "resourceType": "Appointment", "id": "sip-mote", "status": "booked",
            "serviceType": [coding(codes::SERVICE_TYPE_SYSTEM, codes::SIP_MOTE)],
            "start": "2026-05-04T13:00:00+02:00", "end": "2026-05-04T14:30:00+02:00",
            "supportingInformation": [{"reference": "CarePlan/sip"}],
            "participant": [
                {"actor": {"reference": "Patient/tolvan"}, "status": "accepted"},
                {"actor": {"reference": "PractitionerRole/karin-ssk"}, "status": "accepted"},
                {"actor": {"reference": "PractitionerRole/sara-hemtjanst"}, "status": "accepted"},
                {"actor": {"reference": "Location/vc-solna-mottagning"}, "status": "accepted"}
            ]
        }),
        json!({
            "resourceType": "Consent", "id": "sip-samtycke", "status": "active",
            "scope": coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            "category": [coding("http://loinc.org", "59284-0")],
            "patient": {"reference": "Patient/tolvan"}, "dateTime": "2026-02-03",
            "provision": {"type": "permit", "data": [{"meaning": "related", "reference": {"reference": "CarePlan/sip"}}]}
        }),
        json!({
            "resourceType": "RelatedPerson", "id": "lisa",
            "patient": {"reference": "Patient/tolvan"},
            "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": "194510262391"}],
            "name": [{"family": "Tolvansson", "given": ["Lisa"]}],
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "DAU"}], "text": "dotter"}]
        }),
        json!({
            "resourceType": "RelatedPerson", "id": "olle",
            "patient": {"reference": "Patient/tolvan"},
            "name": [{"text": "Olle Olsson"}],
            "relationship": [{"text": "granne"}]
        }),
        json!({
            "resourceType": "Consent", "id": "lisa-samtycke", "status": "active",
            "scope": coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            "category": [coding("http://loinc.org", "59284-0")],
            "patient": {"reference": "Patient/tolvan"},
            "provision": {"type": "permit",
                "actor": [{"role": coding("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "DAU"), "reference": {"reference": "RelatedPerson/lisa"}}],
                "action": [coding("http://terminology.hl7.org/CodeSystem/consentaction", "access"), coding(codes::CONSENT_ACTION_SYSTEM, codes::BOOK)]}
        }),
        json!({
            "resourceType": "Communication", "id": "fraga", "status": "completed",
            "subject": {"reference": "Patient/tolvan"},
            "payload": [{"contentString": "Kan jag få en ny tid?"}]
        }),
    ]
}

fn directory() -> Vec<Value> {
    vec![
        json!({"resourceType": "Organization", "id": "region-stockholm", "name": "Region Stockholm",
               "type": [coding(codes::HUVUDMAN_TYPE_SYSTEM, "region")]}),
        json!({"resourceType": "Organization", "id": "solna-stad", "name": "Solna stad",
               "type": [coding(codes::HUVUDMAN_TYPE_SYSTEM, "kommun")]}),
        json!({"resourceType": "Organization", "id": "vc-solna", "name": "Vårdcentralen Solna",
               "partOf": {"reference": "Organization/region-stockholm"}}),
        json!({"resourceType": "Organization", "id": "hemtjanst-solna", "name": "Hemtjänsten Solna centrum",
               "partOf": {"reference": "Organization/solna-stad"}}),
        json!({"resourceType": "Practitioner", "id": "anna", "name": [{"family": "Andersson", "given": ["Anna"]}]}),
        json!({"resourceType": "Practitioner", "id": "karin", "name": [{"family": "Karlsson", "given": ["Karin"]}]}),
        json!({"resourceType": "Practitioner", "id": "sara", "name": [{"family": "Svensson", "given": ["Sara"]}]}),
        json!({"resourceType": "PractitionerRole", "id": "anna-lakare", "practitioner": {"reference": "Practitioner/anna"},
               "organization": {"reference": "Organization/vc-solna"}, "code": [{"text": "Distriktsläkare"}],
               "telecom": [{"system": "phone", "value": "08-123 450 00"}],
               "healthcareService": [{"reference": "HealthcareService/vc-solna-mottagning"}]}),
        json!({"resourceType": "PractitionerRole", "id": "karin-ssk", "practitioner": {"reference": "Practitioner/karin"},
               "organization": {"reference": "Organization/vc-solna"}, "code": [{"text": "Distriktssköterska"}]}),
        json!({"resourceType": "PractitionerRole", "id": "sara-hemtjanst", "practitioner": {"reference": "Practitioner/sara"},
               "organization": {"reference": "Organization/hemtjanst-solna"}, "code": [{"text": "Undersköterska"}]}),
        json!({"resourceType": "Location", "id": "vc-solna-mottagning", "name": "Vårdcentralen Solna, mottagning 2",
               "managingOrganization": {"reference": "Organization/vc-solna"}}),
        json!({"resourceType": "HealthcareService", "id": "vc-solna-mottagning", "name": "Vårdcentralen Solna",
               "providedBy": {"reference": "Organization/vc-solna"},
               "telecom": [{"system": "phone", "value": "08-123 450 00"}],
               "availableTime": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00", "availableEndTime": "17:00:00"}],
               "availabilityExceptions": "Stängt röda dagar"}),
    ]
}

fn build(audience: Audience, resources: &[Value], directory: &[Value]) -> Value {
    let patient = patient();
    let now = datetime!(2026-04-10 08:00 UTC);
    document(&PlanInput {
        base: BASE,
        patient: &patient,
        resources,
        directory,
        period: (now, now + time::Duration::days(180)),
        audience,
        now,
        document_id: DOCUMENT_ID,
    })
}

fn tolvans(audience: Audience) -> Value {
    build(audience, &resources(), &directory())
}

fn composition(bundle: &Value) -> &Value {
    &bundle["entry"][0]["resource"]
}

fn section<'a>(bundle: &'a Value, code: &str) -> &'a Value {
    composition(bundle)["section"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no section {code}"))
}

fn narrative(bundle: &Value, code: &str) -> String {
    section(bundle, code)["text"]["div"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn section_entries(bundle: &Value, code: &str) -> Vec<String> {
    section(bundle, code)["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    e["reference"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches(BASE)
                        .trim_start_matches('/')
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn full_urls(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
        .collect()
}

fn placed(bundle: &Value, reference: &str) -> Option<Value> {
    let url = format!("{BASE}/{reference}");
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["fullUrl"] == url.as_str())
        .map(|e| e["resource"].clone())
}

#[test]
fn the_document_is_a_bundle_opening_with_the_patientkontrakt_composition() {
    let bundle = tolvans(Audience::Patient);
    assert_eq!(bundle["type"], "document");
    assert_eq!(bundle["identifier"]["system"], "urn:ietf:rfc:3986");
    assert_eq!(
        bundle["identifier"]["value"],
        format!("urn:uuid:{DOCUMENT_ID}")
    );
    assert_eq!(bundle["timestamp"], "2026-04-10T08:00:00Z");
    let composition = composition(&bundle);
    assert_eq!(composition["resourceType"], "Composition");
    assert_eq!(composition["status"], "final");
    assert_eq!(composition["title"], "Patientkontrakt");
    assert_eq!(composition["type"]["coding"][0]["code"], "18776-5");
    assert_eq!(
        composition["subject"]["reference"],
        format!("{BASE}/Patient/tolvan")
    );
    assert_eq!(
        composition["author"][0]["reference"],
        format!("{BASE}/PractitionerRole/karin-ssk")
    );
    let codes: Vec<&str> = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "overenskommelse",
            "fasta-kontakter",
            "overenskomna-tider",
            "planer",
            "sip",
            "narstaende",
            "kontaktvagar"
        ]
    );
}

#[test]
fn every_resource_a_section_names_is_placed_once_with_what_it_names() {
    let bundle = tolvans(Audience::Staff);
    let urls = full_urls(&bundle);
    let unique: HashSet<&String> = urls.iter().collect();
    assert_eq!(unique.len(), urls.len(), "{urls:?}");
    assert_eq!(urls[1], format!("{BASE}/Patient/tolvan"));
    for section in composition(&bundle)["section"].as_array().unwrap() {
        for entry in section["entry"].as_array().into_iter().flatten() {
            assert!(
                urls.contains(&entry["reference"].as_str().unwrap().to_owned()),
                "{entry}"
            );
        }
    }
    // A fixed contact's PractitionerRole brings its Practitioner and unit along.
    for reference in [
        "PractitionerRole/anna-lakare",
        "Practitioner/anna",
        "Organization/vc-solna",
        "Organization/region-stockholm",
    ] {
        assert!(placed(&bundle, reference).is_some(), "{reference} missing");
    }
    // Nothing names the Communication: it stays out.
    assert!(placed(&bundle, "Communication/fraga").is_none());
}

#[test]
fn the_agreement_shows_the_umbrella_description_goals_and_own_tasks() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "overenskommelse");
    assert!(text.contains("Karin samordnar vården"), "{text}");
    assert!(
        text.contains("Jag vill kunna gå till affären själv – Pågår"),
        "{text}"
    );
    assert!(
        text.contains("Promenera 20 minuter varje dag – ansvarig: Du själv – Pågår"),
        "{text}"
    );
    assert_eq!(
        section_entries(&bundle, "overenskommelse"),
        [
            "CarePlan/patientkontrakt",
            "Goal/promenad",
            "Task/egen-promenad"
        ]
    );
}

#[test]
fn fixed_contacts_name_the_person_role_unit_phone_and_hours() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "fasta-kontakter");
    assert!(
        text.contains("<b>Fast vårdkontakt med samordningsansvar</b>: Karin Karlsson (Distriktssköterska), Vårdcentralen Solna. Telefon 08-123 456 78. Nås måndag–fredag 08:00–16:00. Ring vårdcentralens växel och be om Karin."),
        "{text}"
    );
    // No phone on the CareTeam: the PractitionerRole's.
    assert!(text.contains("<b>Fast läkarkontakt</b>: Anna Andersson (Distriktsläkare), Vårdcentralen Solna. Telefon 08-123 450 00."), "{text}");
    // Only active contacts.
    assert!(!text.contains("omsorgskontakt"), "{text}");
    assert_eq!(
        section_entries(&bundle, "fasta-kontakter"),
        ["CareTeam/fk-samordnare", "CareTeam/fk-lakare"]
    );
}

#[test]
fn agreed_times_in_the_period_come_soonest_first_with_the_patients_answer_in_words() {
    let bundle = tolvans(Audience::Patient);
    assert_eq!(
        section_entries(&bundle, "overenskomna-tider"),
        [
            "Appointment/besok-forslag",
            "Appointment/besok-bokat",
            "Appointment/sip-mote",
            "Appointment/besok-ny-tid",
            "AppointmentResponse/svar-ny-tid"
        ]
    );
    let text = narrative(&bundle, "overenskomna-tider");
    assert!(text.contains("<b>söndag 12 april 2026 kl. 09:00</b>: Uppföljning av blodtryck med Anna Andersson, Vårdcentralen Solna. Plats: Vårdcentralen Solna, mottagning 2. <i>Föreslagen – väntar på ditt svar</i>"), "{text}");
    // Stored in UTC, read in Swedish summer time.
    assert!(
        text.contains("<b>tisdag 14 april 2026 kl. 09:30</b>"),
        "{text}"
    );
    assert!(text.contains("<i>Bokad</i>"), "{text}");
    assert!(text.contains("<i>Du har bett om en annan tid</i> Önskad tid: torsdag 21 maj 2026 kl. 13:00. Meddelande: ”Jag har tandläkare den dagen”"), "{text}");
    // Text from resources is escaped, never markup.
    assert!(
        text.contains("Samtal om &lt;läkemedel&gt; &amp; biverkningar"),
        "{text}"
    );
    let for_relative = narrative(&tolvans(Audience::Relative), "overenskomna-tider");
    assert!(
        for_relative.contains("Föreslagen – väntar på patientens svar"),
        "{for_relative}"
    );
}

#[test]
fn plans_under_the_umbrella_show_who_is_responsible_and_who_does_what() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "planer");
    assert!(text.contains("<b>SIP för Tolvan</b> (Samordnad individuell plan (SIP)) – ansvarig: Region Stockholm – Gäller"), "{text}");
    assert!(
        text.contains("Hemtjänst morgon och kväll – ansvarig: Solna stad – Pågår"),
        "{text}"
    );
    assert!(text.contains("Ansökan om bostadstillägg – ansvarig: Solna stad – utförs av Försäkringskassan – Beställd"), "{text}");
    assert!(text.contains("<b>Rehabilitering efter höftoperation</b> (Rehabiliteringsplan) – ansvarig: Vårdcentralen Solna – Gäller"), "{text}");
}

#[test]
fn the_sip_section_names_the_responsible_huvudman_next_meeting_consent_and_team() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "sip");
    assert!(
        text.contains("Övergripande ansvar: Region Stockholm. Deltar också: Solna stad."),
        "{text}"
    );
    assert!(
        text.contains("Samtycke till SIP lämnat 3 februari 2026."),
        "{text}"
    );
    assert!(
        text.contains(
            "Nästa SIP-möte: måndag 4 maj 2026 kl. 13:00, Vårdcentralen Solna, mottagning 2."
        ),
        "{text}"
    );
    assert!(
        text.contains("<li>Karin Karlsson, Vårdcentralen Solna – SIP-samordnare</li>"),
        "{text}"
    );
    assert!(
        text.contains("<li>Lisa Tolvansson – Närstående</li>"),
        "{text}"
    );
    assert_eq!(
        section_entries(&bundle, "sip"),
        [
            "CarePlan/sip",
            "Consent/sip-samtycke",
            "Appointment/sip-mote",
            "CareTeam/sip-team"
        ]
    );
}

#[test]
fn relatives_are_listed_with_what_their_consent_allows() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "narstaende");
    assert!(
        text.contains("Lisa Tolvansson (dotter) – får se patientkontraktet och svara på tider"),
        "{text}"
    );
    assert!(
        text.contains("Olle Olsson (granne) – har ingen behörighet just nu"),
        "{text}"
    );
    assert_eq!(
        section_entries(&bundle, "narstaende"),
        [
            "RelatedPerson/lisa",
            "Consent/lisa-samtycke",
            "RelatedPerson/olle"
        ]
    );
}

#[test]
fn contact_routes_give_the_fast_vardkontakt_and_the_clinics_opening_hours() {
    let bundle = tolvans(Audience::Patient);
    let text = narrative(&bundle, "kontaktvagar");
    assert!(
        text.contains("kontakta i första hand din fasta vårdkontakt"),
        "{text}"
    );
    assert!(text.contains("<b>Vårdcentralen Solna</b>, telefon 08-123 450 00. Öppet måndag–fredag 08:00–17:00. Stängt röda dagar."), "{text}");
    assert_eq!(
        section_entries(&bundle, "kontaktvagar"),
        [
            "CareTeam/fk-samordnare",
            "HealthcareService/vc-solna-mottagning"
        ]
    );
}

#[test]
fn patients_and_relatives_never_see_internal_notes_or_restricted_resources() {
    for audience in [Audience::Patient, Audience::Relative] {
        let bundle = tolvans(audience);
        let text = bundle.to_string();
        assert!(!text.contains("orolig för sina provsvar"), "{audience:?}");
        assert!(!text.contains("Diskutera boende"), "{audience:?}");
        assert!(!text.contains("warfarin"), "{audience:?}");
        assert!(!text.contains("besok-skyddat"), "{audience:?}");
        // External notes stay; a note list emptied of internal notes goes away.
        let lakare = placed(&bundle, "CareTeam/fk-lakare").unwrap();
        assert_eq!(lakare["note"].as_array().unwrap().len(), 1);
        let umbrella = placed(&bundle, "CarePlan/patientkontrakt").unwrap();
        assert!(umbrella.get("note").is_none(), "{umbrella}");
    }
    let staff = tolvans(Audience::Staff);
    assert!(staff.to_string().contains("orolig för sina provsvar"));
    assert!(
        section_entries(&staff, "overenskomna-tider")
            .contains(&"Appointment/besok-skyddat".to_owned())
    );
}

#[test]
fn a_patient_without_a_patientkontrakt_gets_empty_sections_that_say_so() {
    let bundle = build(Audience::Patient, &[], &[]);
    let composition = composition(&bundle);
    assert_eq!(
        composition["author"][0]["reference"],
        format!("{BASE}/Patient/tolvan")
    );
    for section in composition["section"].as_array().unwrap() {
        assert!(section.get("entry").is_none(), "{section}");
        assert_eq!(section["emptyReason"]["coding"][0]["code"], "nilknown");
        assert!(
            section["text"]["div"]
                .as_str()
                .unwrap()
                .starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>")
        );
    }
    assert_eq!(full_urls(&bundle).len(), 2);
}

#[test]
fn the_directory_is_asked_for_every_person_unit_place_and_service_named() {
    let wanted = directory_references(&resources());
    for reference in [
        "PractitionerRole/anna-lakare",
        "PractitionerRole/karin-ssk",
        "PractitionerRole/sara-hemtjanst",
        "Location/vc-solna-mottagning",
        "Organization/region-stockholm",
        "Organization/solna-stad",
        "Organization/vc-solna",
    ] {
        assert!(
            wanted.contains(&reference.to_owned()),
            "{reference} missing from {wanted:?}"
        );
    }
    assert!(
        wanted
            .iter()
            .all(|r| !r.starts_with("Patient/") && !r.starts_with("CarePlan/"))
    );
    let second_round = directory_references(&directory());
    assert!(second_round.contains(&"Practitioner/anna".to_owned()));
    assert!(second_round.contains(&"HealthcareService/vc-solna-mottagning".to_owned()));
}

/// The documents pass the independent R4 validator (`../shared/tools/fhir-validate`),
/// run when `PARAPLY_FHIR_VALIDATOR_PYTHON` names a Python with `fhir.resources`.
#[test]
fn the_documents_are_valid_r4() {
    let mut documents = Vec::new();
    for (name, bundle) in [
        ("patient", tolvans(Audience::Patient)),
        ("relative", tolvans(Audience::Relative)),
        ("staff", tolvans(Audience::Staff)),
        ("empty", build(Audience::Patient, &[], &[])),
    ] {
        documents.push((name, serde_json::to_string_pretty(&bundle).unwrap()));
    }
    let documents: Vec<(&str, &str)> = documents
        .iter()
        .map(|(name, text)| (*name, text.as_str()))
        .collect();
    paraply_fhir_validator::assert_valid(&documents);
}
