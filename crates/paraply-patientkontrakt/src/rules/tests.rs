//! Each rule both ways: allowed at its limit, refused one past it. Fixtures are Tolvan
//! Tolvansson's (Patient/tolvan) resources, built small by the helpers below.

use super::*;
use serde_json::json;
use time::macros::date;

const REGION: &str = "Organization/region-stockholm";
const KOMMUN: &str = "Organization/solna-stad";
const PRIVAT: &str = "Organization/privat-hemtjanst";
const LAKARE: &str = "PractitionerRole/anna-lakare";
const HEMTJANST: &str = "PractitionerRole/sara-hemtjanst";

fn huvudman() -> HashMap<String, Huvudman> {
    let of = |organization: &str, kind| Huvudman {
        organization: organization.to_owned(),
        kind,
    };
    HashMap::from([
        (REGION.to_owned(), of(REGION, HuvudmanKind::Region)),
        (KOMMUN.to_owned(), of(KOMMUN, HuvudmanKind::Kommun)),
        (PRIVAT.to_owned(), of(PRIVAT, HuvudmanKind::PrivatUtforare)),
        (LAKARE.to_owned(), of(REGION, HuvudmanKind::Region)),
        (HEMTJANST.to_owned(), of(KOMMUN, HuvudmanKind::Kommun)),
    ])
}

fn run(resources: &[Value], responses: &[Value], written: &[&str], rule: Rule) -> Vec<Violation> {
    run_with(
        resources,
        responses,
        written,
        rule,
        &RuleSettings::default(),
    )
}

fn run_with(
    resources: &[Value],
    responses: &[Value],
    written: &[&str],
    rule: Rule,
    settings: &RuleSettings,
) -> Vec<Violation> {
    let huvudman = huvudman();
    let state = PatientState {
        patient: "tolvan",
        resources,
        responses,
        huvudman: &huvudman,
        today: date!(2026 - 04 - 10),
    };
    let written: Vec<String> = written.iter().map(|w| (*w).to_owned()).collect();
    check(&state, &[rule], &written, settings)
}

fn fast_kontakt(id: &str, role: &str, status: &str) -> Value {
    json!({
        "resourceType": "CareTeam", "id": id, "status": status,
        "category": [{"coding": [{"system": codes::CARE_TEAM_CATEGORY_SYSTEM, "code": codes::FAST_KONTAKT}]}],
        "subject": {"reference": "Patient/tolvan"},
        "participant": [{
            "role": [{"coding": [{"system": codes::FAST_KONTAKT_ROLE_SYSTEM, "code": role}]}],
            "member": {"reference": LAKARE}
        }]
    })
}

fn care_plan(id: &str, category: (&str, &str), status: &str, part_of: &[&str]) -> Value {
    let mut plan = json!({
        "resourceType": "CarePlan", "id": id, "status": status, "intent": "plan",
        "category": [{"coding": [{"system": category.0, "code": category.1}]}],
        "subject": {"reference": "Patient/tolvan"}
    });
    if !part_of.is_empty() {
        plan["partOf"] = part_of.iter().map(|p| json!({"reference": p})).collect();
    }
    plan
}

fn umbrella(id: &str, status: &str) -> Value {
    care_plan(
        id,
        (codes::PLAN_CATEGORY_SYSTEM, codes::PATIENTKONTRAKT),
        status,
        &[],
    )
}

fn linked_plan(id: &str, status: &str, part_of: &[&str]) -> Value {
    care_plan(id, (codes::PLAN_TYPE_SYSTEM, "RP"), status, part_of)
}

fn sip(id: &str, status: &str, author: &str, contributors: &[&str]) -> Value {
    let mut plan = care_plan(
        id,
        (codes::PLAN_TYPE_SYSTEM, "SIP"),
        status,
        &["CarePlan/patientkontrakt"],
    );
    plan["author"] = json!({"reference": author});
    plan["contributor"] = contributors
        .iter()
        .map(|c| json!({"reference": c}))
        .collect();
    plan
}

fn sip_consent(id: &str, sip: &str, status: &str) -> Value {
    json!({
        "resourceType": "Consent", "id": id, "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/tolvan"},
        "provision": {"type": "permit", "data": [{"meaning": "related", "reference": {"reference": sip}}]}
    })
}

fn narstaende_consent(id: &str, related_person: &str, book: bool) -> Value {
    let mut action = vec![
        json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}),
    ];
    if book {
        action.push(
            json!({"coding": [{"system": codes::CONSENT_ACTION_SYSTEM, "code": codes::BOOK}]}),
        );
    }
    json!({
        "resourceType": "Consent", "id": id, "status": "active",
        "patient": {"reference": "Patient/tolvan"},
        "provision": {"type": "permit", "actor": [{"role": {"text": "närstående"}, "reference": {"reference": related_person}}], "action": action}
    })
}

fn task(id: &str, based_on: &str, owner: Option<&str>, status: &str) -> Value {
    let mut task = json!({
        "resourceType": "Task", "id": id, "status": status, "intent": "plan",
        "for": {"reference": "Patient/tolvan"},
        "basedOn": [{"reference": based_on}]
    });
    if let Some(owner) = owner {
        task["owner"] = json!({"reference": owner});
    }
    task
}

fn agreed_appointment(id: &str, status: &str, patient_status: &str) -> Value {
    json!({
        "resourceType": "Appointment", "id": id, "status": status,
        "meta": {"profile": [codes::profile::AGREED_APPOINTMENT]},
        "start": "2026-04-14T09:30:00+02:00", "end": "2026-04-14T10:00:00+02:00",
        "participant": [
            {"actor": {"reference": "Patient/tolvan"}, "status": patient_status},
            {"actor": {"reference": LAKARE}, "status": "accepted"}
        ]
    })
}

fn response(appointment: &str, actor: &str, status: &str) -> Value {
    json!({
        "resourceType": "AppointmentResponse",
        "appointment": {"reference": appointment},
        "actor": {"reference": actor}, "participantStatus": status
    })
}

fn sip_meeting(id: &str, actors: &[&str]) -> Value {
    json!({
        "resourceType": "Appointment", "id": id, "status": "booked",
        "serviceType": [{"coding": [{"system": codes::SERVICE_TYPE_SYSTEM, "code": codes::SIP_MOTE}]}],
        "start": "2026-05-04T13:00:00+02:00", "end": "2026-05-04T14:30:00+02:00",
        "participant": actors.iter().map(|a| json!({"actor": {"reference": a}, "status": "accepted"})).collect::<Vec<_>>()
    })
}

fn resources(violations: &[Violation]) -> Vec<&str> {
    violations.iter().map(|v| v.resource.as_str()).collect()
}

// ---- which rules, which references, whose patient ----

#[test]
fn written_types_call_for_their_rule_groups_and_consents_for_none() {
    assert_eq!(
        rules_for(&[ResourceType::Task, ResourceType::CareTeam]),
        vec![Rule::I1, Rule::I2, Rule::I3, Rule::I4, Rule::I8]
    );
    assert_eq!(
        rules_for(&[ResourceType::CarePlan, ResourceType::Appointment]),
        vec![Rule::I5, Rule::I6, Rule::I7, Rule::I8, Rule::I9, Rule::I10]
    );
    assert!(rules_for(&[ResourceType::Consent, ResourceType::Goal]).is_empty());
}

#[test]
fn huvudman_is_asked_for_sip_parties_task_owners_and_meeting_actors_once_each() {
    let found = huvudman_references(&[
        sip("sip", "active", REGION, &[KOMMUN]),
        task("t1", "CarePlan/sip", Some(HEMTJANST), "requested"),
        task("t2", "CarePlan/sip", Some(KOMMUN), "requested"),
        sip_meeting("m", &["Patient/tolvan", LAKARE, "RelatedPerson/lisa"]),
        fast_kontakt("fk", "2", "active"),
    ]);
    assert_eq!(found, vec![REGION, KOMMUN, HEMTJANST, LAKARE]);
}

#[test]
fn the_patient_of_a_resource_comes_from_its_patient_element() {
    assert_eq!(
        patient_of(&fast_kontakt("fk", "1", "active")).as_deref(),
        Some("tolvan")
    );
    assert_eq!(
        patient_of(&umbrella("u", "active")).as_deref(),
        Some("tolvan")
    );
    assert_eq!(
        patient_of(&sip_consent("c", "CarePlan/s", "active")).as_deref(),
        Some("tolvan")
    );
    assert_eq!(
        patient_of(&task("t", "CarePlan/s", None, "ready")).as_deref(),
        Some("tolvan")
    );
    assert_eq!(
        patient_of(&sip_meeting("m", &[LAKARE, "Patient/tolvan"])).as_deref(),
        Some("tolvan")
    );
    assert_eq!(patient_of(&sip_meeting("m", &[LAKARE])), None);
    assert_eq!(
        patient_of(&json!({"resourceType": "Goal", "subject": {"reference": "Patient/tolvan"}})),
        None
    );
}

// ---- I1–I3: fixed contacts ----

#[test]
fn i1_one_active_fast_lakarkontakt_is_allowed() {
    let state = [
        fast_kontakt("lakare-1", "2", "active"),
        fast_kontakt("lakare-old", "2", "inactive"),
    ];
    assert!(run(&state, &[], &["CareTeam/lakare-1"], Rule::I1).is_empty());
}

#[test]
fn i1_a_second_active_fast_lakarkontakt_is_refused_naming_the_first() {
    let state = [
        fast_kontakt("lakare-1", "2", "active"),
        fast_kontakt("lakare-2", "2", "active"),
    ];
    let violations = run(&state, &[], &["CareTeam/lakare-2"], Rule::I1);
    assert_eq!(resources(&violations), vec!["CareTeam/lakare-2"]);
    assert_eq!(
        violations[0].message,
        "Patient/tolvan already has an active fast läkarkontakt (CareTeam/lakare-1)"
    );
    assert!(violations[0].to_string().starts_with("paraply-I1: "));
}

#[test]
fn i2_up_to_the_configured_number_of_fasta_vardkontakter_is_allowed() {
    let mut state: Vec<Value> = (1..=8)
        .map(|n| fast_kontakt(&format!("vk-{n}"), "1", "active"))
        .collect();
    state.push(fast_kontakt("samordnare", "4", "active"));
    state.push(fast_kontakt("lakare", "2", "active"));
    state.push(fast_kontakt("omsorg", "3", "active"));
    assert!(run(&state, &[], &["CareTeam/vk-8"], Rule::I2).is_empty());
}

#[test]
fn i2_one_fast_vardkontakt_past_the_limit_is_refused() {
    let mut state: Vec<Value> = (1..=9)
        .map(|n| fast_kontakt(&format!("vk-{n}"), "1", "active"))
        .collect();
    state.push(fast_kontakt("samordnare", "4", "active"));
    let violations = run(&state, &[], &["CareTeam/samordnare"], Rule::I2);
    assert_eq!(resources(&violations), vec!["CareTeam/samordnare"]);
    assert!(
        violations[0].message.contains("at most 9"),
        "{}",
        violations[0].message
    );
}

#[test]
fn i2_the_limit_is_a_setting() {
    let state = [
        fast_kontakt("vk-1", "1", "active"),
        fast_kontakt("vk-2", "1", "active"),
    ];
    let one = RuleSettings {
        max_fasta_vardkontakter: 1,
        ..RuleSettings::default()
    };
    assert_eq!(
        run_with(&state, &[], &["CareTeam/vk-2"], Rule::I2, &one).len(),
        1
    );
    let two = RuleSettings {
        max_fasta_vardkontakter: 2,
        ..RuleSettings::default()
    };
    assert!(run_with(&state, &[], &["CareTeam/vk-2"], Rule::I2, &two).is_empty());
}

#[test]
fn i3_one_active_coordinating_contact_is_allowed_a_second_is_refused() {
    let one = [
        fast_kontakt("samordnare-1", "4", "active"),
        fast_kontakt("vk", "1", "active"),
    ];
    assert!(run(&one, &[], &["CareTeam/samordnare-1"], Rule::I3).is_empty());
    let two = [
        fast_kontakt("samordnare-1", "4", "active"),
        fast_kontakt("samordnare-2", "4", "active"),
    ];
    let violations = run(&two, &[], &["CareTeam/samordnare-2"], Rule::I3);
    assert_eq!(resources(&violations), vec!["CareTeam/samordnare-2"]);
    assert!(violations[0].message.contains("CareTeam/samordnare-1"));
}

// ---- I4: shape of a fixed contact ----

#[test]
fn i4_a_well_formed_fast_kontakt_passes() {
    assert!(
        run(
            &[fast_kontakt("fk", "1", "active")],
            &[],
            &["CareTeam/fk"],
            Rule::I4
        )
        .is_empty()
    );
}

#[test]
fn i4_a_fast_kontakt_with_two_participants_or_no_role_is_refused() {
    let mut two = fast_kontakt("two", "1", "active");
    let extra = two["participant"][0].clone();
    two["participant"].as_array_mut().unwrap().push(extra);
    let mut roleless = fast_kontakt("roleless", "1", "active");
    roleless["participant"][0]
        .as_object_mut()
        .unwrap()
        .remove("role");
    let violations = run(&[two, roleless], &[], &["CareTeam/two"], Rule::I4);
    assert_eq!(
        resources(&violations),
        vec!["CareTeam/two", "CareTeam/roleless"]
    );
    assert!(violations[0].message.contains("2 participants"));
    assert!(violations[1].message.contains("no role"));
}

#[test]
fn i4_a_profile_claim_without_the_category_is_refused_and_entered_in_error_is_ignored() {
    let mut claimed = fast_kontakt("claimed", "1", "active");
    claimed.as_object_mut().unwrap().remove("category");
    claimed["meta"] = json!({"profile": [codes::profile::FAST_KONTAKT]});
    let mut broken_but_void = fast_kontakt("void", "1", "entered-in-error");
    broken_but_void["participant"] = json!([]);
    let violations = run(&[claimed, broken_but_void], &[], &[], Rule::I4);
    assert_eq!(resources(&violations), vec!["CareTeam/claimed"]);
    assert!(violations[0].message.contains("no category fast-kontakt"));
}

#[test]
fn i4_a_fast_kontakt_without_subject_is_refused_without_a_patient_state() {
    let mut orphan = fast_kontakt("orphan", "1", "active");
    orphan.as_object_mut().unwrap().remove("subject");
    assert_eq!(patient_of(&orphan), None);
    let violations = check_without_patient(&orphan, &[Rule::I4]);
    assert_eq!(resources(&violations), vec!["CareTeam/orphan"]);
    assert!(violations[0].message.contains("no subject"));
    assert!(check_without_patient(&fast_kontakt("fk", "1", "active"), &[Rule::I4]).is_empty());
}

// ---- I5: umbrella and partOf ----

#[test]
fn i5_one_umbrella_with_its_plans_under_it_passes() {
    let state = [
        umbrella("patientkontrakt", "active"),
        umbrella("old", "completed"),
        linked_plan("rehab", "active", &["CarePlan/patientkontrakt"]),
        linked_plan("finished", "completed", &[]),
        care_plan(
            "not-paraply",
            ("http://snomed.info/sct", "736353004"),
            "active",
            &[],
        ),
    ];
    assert!(run(&state, &[], &["CarePlan/rehab"], Rule::I5).is_empty());
}

#[test]
fn i5_a_second_active_umbrella_is_refused() {
    let state = [
        umbrella("patientkontrakt", "active"),
        umbrella("another", "active"),
    ];
    let violations = run(&state, &[], &["CarePlan/another"], Rule::I5);
    assert_eq!(resources(&violations), vec!["CarePlan/another"]);
    assert!(violations[0].message.contains("CarePlan/patientkontrakt"));
}

#[test]
fn i5_an_open_plan_must_be_part_of_the_active_umbrella() {
    let state = [
        umbrella("patientkontrakt", "active"),
        umbrella("draft-umbrella", "draft"),
        linked_plan("loose", "draft", &[]),
        linked_plan("wrong-parent", "on-hold", &["CarePlan/draft-umbrella"]),
    ];
    let violations = run(&state, &[], &["CarePlan/loose"], Rule::I5);
    assert_eq!(
        resources(&violations),
        vec!["CarePlan/loose", "CarePlan/wrong-parent"]
    );
    assert!(violations[0].message.contains("CarePlan/patientkontrakt"));
    assert!(violations[1].message.contains("CarePlan/draft-umbrella"));
}

#[test]
fn i5_an_umbrella_must_not_be_part_of_another_plan() {
    let mut nested = umbrella("patientkontrakt", "active");
    nested["partOf"] = json!([{"reference": "CarePlan/rehab"}]);
    let violations = run(&[nested], &[], &["CarePlan/patientkontrakt"], Rule::I5);
    assert_eq!(resources(&violations), vec!["CarePlan/patientkontrakt"]);
}

#[test]
fn i5_a_part_of_chain_that_loops_is_refused_once() {
    let state = [
        umbrella("patientkontrakt", "active"),
        linked_plan("a", "completed", &["CarePlan/b"]),
        linked_plan("b", "completed", &["CarePlan/c"]),
        linked_plan("c", "completed", &["CarePlan/a"]),
        linked_plan("leaf", "active", &["CarePlan/patientkontrakt"]),
    ];
    let violations = run(&state, &[], &["CarePlan/c"], Rule::I5);
    assert_eq!(resources(&violations), vec!["CarePlan/c"]);
    assert!(
        violations[0]
            .message
            .contains("CarePlan/c → CarePlan/a → CarePlan/b → CarePlan/c"),
        "{}",
        violations[0].message
    );
}

#[test]
fn i5_a_plan_part_of_itself_is_a_loop() {
    let state = [linked_plan("self", "completed", &["CarePlan/self"])];
    let violations = run(&state, &[], &[], Rule::I5);
    assert_eq!(resources(&violations), vec!["CarePlan/self"]);
}

// ---- I6: SIP consent ----

#[test]
fn i6_an_active_sip_with_an_active_sip_consent_passes() {
    let state = [
        sip("sip", "active", REGION, &[KOMMUN]),
        sip_consent("samtycke", "CarePlan/sip", "active"),
        sip("draft-sip", "draft", REGION, &[KOMMUN]),
    ];
    assert!(run(&state, &[], &["CarePlan/sip"], Rule::I6).is_empty());
}

#[test]
fn i6_an_active_sip_without_an_active_consent_is_refused() {
    let state = [
        sip("sip", "active", REGION, &[KOMMUN]),
        sip_consent("withdrawn", "CarePlan/sip", "inactive"),
        sip_consent("other", "CarePlan/other-sip", "active"),
    ];
    let violations = run(&state, &[], &["CarePlan/sip"], Rule::I6);
    assert_eq!(resources(&violations), vec!["CarePlan/sip"]);
}

// ---- I7: huvudmän of a SIP ----

#[test]
fn i7_a_sip_of_region_and_kommun_with_the_region_responsible_passes() {
    let state = [sip("sip", "draft", REGION, &[KOMMUN, PRIVAT])];
    assert!(run(&state, &[], &["CarePlan/sip"], Rule::I7).is_empty());
    let by_roles = [sip("sip", "draft", HEMTJANST, &[LAKARE])];
    assert!(run(&by_roles, &[], &["CarePlan/sip"], Rule::I7).is_empty());
}

#[test]
fn i7_a_sip_without_a_kommun_is_refused() {
    let violations = run(
        &[sip("sip", "draft", REGION, &[PRIVAT])],
        &[],
        &[],
        Rule::I7,
    );
    assert_eq!(resources(&violations), vec!["CarePlan/sip"]);
    assert!(violations[0].message.contains("no kommun huvudman"));
}

#[test]
fn i7_a_private_provider_cannot_hold_the_overall_responsibility() {
    let violations = run(
        &[sip("sip", "draft", PRIVAT, &[REGION, KOMMUN])],
        &[],
        &[],
        Rule::I7,
    );
    assert_eq!(resources(&violations), vec!["CarePlan/sip"]);
    assert!(
        violations[0].message.contains("privat-utforare"),
        "{}",
        violations[0].message
    );
}

// ---- I8: tasks of a SIP ----

#[test]
fn i8_an_active_sip_with_a_task_per_huvudman_passes() {
    let state = [
        sip("sip", "active", REGION, &[KOMMUN]),
        task("lakemedel", "CarePlan/sip", Some(LAKARE), "in-progress"),
        task("hemtjanst", "CarePlan/sip", Some(KOMMUN), "requested"),
    ];
    assert!(run(&state, &[], &["Task/hemtjanst"], Rule::I8).is_empty());
}

#[test]
fn i8_a_huvudman_without_a_live_task_is_refused() {
    let state = [
        sip("sip", "active", REGION, &[KOMMUN]),
        task("lakemedel", "CarePlan/sip", Some(LAKARE), "in-progress"),
        task("hemtjanst", "CarePlan/sip", Some(HEMTJANST), "cancelled"),
    ];
    let violations = run(&state, &[], &["Task/hemtjanst"], Rule::I8);
    assert_eq!(resources(&violations), vec!["CarePlan/sip"]);
    assert!(
        violations[0].message.contains(KOMMUN),
        "{}",
        violations[0].message
    );
}

#[test]
fn i8_an_insats_without_owner_is_refused() {
    let state = [task(
        "ownerless",
        "CarePlan/patientkontrakt",
        None,
        "requested",
    )];
    let violations = run(&state, &[], &["Task/ownerless"], Rule::I8);
    assert_eq!(resources(&violations), vec!["Task/ownerless"]);
    assert_eq!(check_without_patient(&state[0], &[Rule::I8]).len(), 1);
}

// ---- I9: booked agreed appointments ----

#[test]
fn i9_a_booking_accepted_by_the_patient_passes() {
    let state = [agreed_appointment("besok", "booked", "accepted")];
    let responses = [response("Appointment/besok", "Patient/tolvan", "accepted")];
    assert!(run(&state, &responses, &["Appointment/besok"], Rule::I9).is_empty());
}

#[test]
fn i9_a_booking_accepted_by_a_relative_needs_the_booking_consent() {
    let state = [
        agreed_appointment("besok", "booked", "accepted"),
        narstaende_consent("lisa-bokar", "RelatedPerson/lisa", true),
        narstaende_consent("olle-laser", "RelatedPerson/olle", false),
    ];
    let by_lisa = [response(
        "Appointment/besok",
        "RelatedPerson/lisa",
        "accepted",
    )];
    assert!(run(&state, &by_lisa, &["Appointment/besok"], Rule::I9).is_empty());
    let by_olle = [response(
        "Appointment/besok",
        "RelatedPerson/olle",
        "accepted",
    )];
    let violations = run(&state, &by_olle, &["Appointment/besok"], Rule::I9);
    assert_eq!(resources(&violations), vec!["Appointment/besok"]);
}

#[test]
fn i9_a_booking_the_patient_has_not_accepted_is_refused() {
    let state = [agreed_appointment("besok", "booked", "needs-action")];
    let responses = [response("Appointment/besok", "Patient/tolvan", "accepted")];
    let violations = run(&state, &responses, &["Appointment/besok"], Rule::I9);
    assert_eq!(resources(&violations), vec!["Appointment/besok"]);
    assert!(violations[0].message.contains("has not accepted"));
}

#[test]
fn i9_is_checked_only_for_written_appointments() {
    let state = [agreed_appointment("old", "booked", "needs-action")];
    assert!(run(&state, &[], &["Appointment/other"], Rule::I9).is_empty());
    assert_eq!(run(&state, &[], &["Appointment/old"], Rule::I9).len(), 1);
}

// ---- I10: SIP meetings ----

#[test]
fn i10_a_meeting_with_patient_region_kommun_and_a_consented_relative_passes() {
    let state = [
        sip_meeting(
            "mote",
            &["Patient/tolvan", LAKARE, HEMTJANST, "RelatedPerson/lisa"],
        ),
        narstaende_consent("lisa", "RelatedPerson/lisa", false),
    ];
    assert!(run(&state, &[], &["Appointment/mote"], Rule::I10).is_empty());
}

#[test]
fn i10_a_meeting_without_kommun_or_with_an_unconsented_relative_is_refused() {
    let state = [sip_meeting(
        "mote",
        &["Patient/tolvan", LAKARE, "RelatedPerson/olle"],
    )];
    let violations = run(&state, &[], &["Appointment/mote"], Rule::I10);
    assert_eq!(resources(&violations), vec!["Appointment/mote"]);
    assert!(violations[0].message.contains("kommun"));
    assert!(violations[0].message.contains("RelatedPerson/olle"));
}

#[test]
fn i10_a_meeting_without_the_patient_is_refused_and_a_cancelled_one_is_not_checked() {
    let without = sip_meeting("mote", &[LAKARE, HEMTJANST]);
    assert_eq!(check_without_patient(&without, &[Rule::I10]).len(), 1);
    let mut cancelled = sip_meeting("mote", &["Patient/tolvan", LAKARE]);
    cancelled["status"] = json!("cancelled");
    assert!(run(&[cancelled], &[], &["Appointment/mote"], Rule::I10).is_empty());
}

#[test]
fn only_the_rules_asked_for_are_checked() {
    let state = [
        fast_kontakt("lakare-1", "2", "active"),
        fast_kontakt("lakare-2", "2", "active"),
    ];
    assert!(run(&state, &[], &["CareTeam/lakare-2"], Rule::I3).is_empty());
}
