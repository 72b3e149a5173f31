//! The SIP part of a patientkontrakt (DOMAIN.md §1, §3; invariants I6–I8, I10).

use paraply_fhir::codes::{
    CARE_TEAM_CATEGORY_SYSTEM, PLAN_TYPE_SYSTEM, SERVICE_TYPE_SYSTEM, SIP_MOTE, SIP_ROLE_SYSTEM,
    SIP_TEAM, profile,
};
use serde_json::{Map, Value, json};
use time::Date;

use super::{Builder, Relative};
use crate::clock::{at, day, plus_days, weekday_on_or_after};
use crate::data::{KOMMUN_TASKS, Profession, REGION_TASKS};
use crate::fhir::{
    CONSENT_SCOPE, LOINC, V3_ACT_CODE, V3_PARTICIPATION_TYPE, claims, concept, reference,
};

impl Builder<'_> {
    /// A SIP: region and municipality plan together with the patient, who consented; one
    /// of them holds the overall responsibility. Team, consent, an insats per huvudman,
    /// a goal, the first SIP meeting (held) and the follow-up meeting (coming).
    pub(super) fn sip(&mut self, k: usize, since: Date, relatives: &[Relative]) {
        let world = self.world;
        let kommun = &world.kommuner[k];
        let region_org = &world.regions[kommun.region].id;
        let kommun_org = &kommun.id;
        let region_staff = self
            .rng
            .pick(&world.staff_of(kommun.vardcentral, Profession::Sjukskoterska));
        let kommun_staff = if self.rng.chance(50) {
            self.rng
                .pick(&world.staff_of(kommun.bistand, Profession::Bistandshandlaggare))
        } else {
            self.rng
                .pick(&world.staff_of(kommun.hemsjukvard, Profession::Sjukskoterska))
        };
        let region_led = self.rng.chance(50);
        let (author, contributor) = if region_led {
            (region_org, kommun_org)
        } else {
            (kommun_org, region_org)
        };
        let n = self.n;
        let sip_id = format!("sip-{n}");
        let team_id = format!("sipteam-{n}");
        let consent_id = format!("sipsamtycke-{n}");
        let start = self.day_between(since, plus_days(self.today, -7));

        // Members are PractitionerRoles whose `organization` leads to their huvudman; R4's
        // ctm-1 forbids `onBehalfOf` with such a member.
        let role_ref = |s: usize| reference("PractitionerRole", &world.staff[s].role_id);
        let sip_role = |code: &str, display: &str| concept(SIP_ROLE_SYSTEM, code, display);
        let region_member = json!({
            "role": [if region_led { sip_role("sip-samordnare", "SIP-samordnare") } else { sip_role("insatsansvarig", "Insatsansvarig") }],
            "member": role_ref(region_staff),
        });
        let kommun_member = json!({
            "role": [if region_led { sip_role("insatsansvarig", "Insatsansvarig") } else { sip_role("sip-samordnare", "SIP-samordnare") }],
            "member": role_ref(kommun_staff),
        });
        let mut participants = vec![
            json!({ "member": self.patient_ref() }),
            region_member,
            kommun_member,
        ];
        // Närstående take part only with the patient's consent (they all have one here).
        for relative in relatives {
            participants.push(json!({
                "role": [sip_role("narstaende", "Närstående")],
                "member": reference("RelatedPerson", &relative.id),
            }));
        }
        self.out.push(json!({
            "resourceType": "CareTeam",
            "id": team_id,
            "meta": claims(profile::SIP_TEAM),
            "status": "active",
            "category": [concept(CARE_TEAM_CATEGORY_SYSTEM, SIP_TEAM, "SIP-team")],
            "name": "SIP-team",
            "subject": self.patient_ref(),
            "period": { "start": day(start) },
            "participant": participants,
        }));

        self.out.push(json!({
            "resourceType": "Consent",
            "id": consent_id,
            "meta": claims(profile::SIP_CONSENT),
            "status": "active",
            "scope": concept(CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
            "category": [concept(LOINC, "59284-0", "Patient Consent")],
            "patient": self.patient_ref(),
            "dateTime": day(start),
            "performer": [self.patient_ref()],
            "organization": [reference("Organization", region_org), reference("Organization", kommun_org)],
            "policyRule": concept(V3_ACT_CODE, "OPTIN", "opt-in"),
            "provision": {
                "type": "permit",
                "period": { "start": day(start) },
                "actor": [
                    {
                        "role": concept(V3_PARTICIPATION_TYPE, "IRCP", "information recipient"),
                        "reference": reference("Organization", region_org),
                    },
                    {
                        "role": concept(V3_PARTICIPATION_TYPE, "IRCP", "information recipient"),
                        "reference": reference("Organization", kommun_org),
                    },
                ],
                "data": [{ "meaning": "related", "reference": reference("CarePlan", &sip_id) }],
            },
        }));

        // At least one insats per huvudman (I8), sometimes one more.
        let region_text = self.rng.pick(REGION_TASKS);
        let kommun_text = self.rng.pick(KOMMUN_TASKS);
        let mut tasks = vec![
            self.task(region_text, &sip_id, role_ref(region_staff)),
            self.task(
                kommun_text,
                &sip_id,
                reference("Organization", &world.units[kommun.hemtjanst].id),
            ),
        ];
        if self.rng.chance(40) {
            let text = self.rng.pick(KOMMUN_TASKS);
            tasks.push(self.task(
                text,
                &sip_id,
                reference("Organization", &world.units[kommun.hemsjukvard].id),
            ));
        }
        let (goal, _) = self.goal(start);

        self.sip_meeting(1, start, true, region_staff, kommun_staff, relatives);
        let next_day = weekday_on_or_after(plus_days(self.today, self.rng.range(14, 150) as i64));
        let follow_up = self.sip_meeting(2, next_day, false, region_staff, kommun_staff, relatives);

        let names = relatives
            .iter()
            .map(|r| r.given)
            .collect::<Vec<_>>()
            .join(" och ");
        let mut description = format!(
            "{} och {} kommun samordnar insatserna. Övergripande ansvar: {}.",
            world.regions[kommun.region].name,
            kommun.name,
            if region_led {
                world.regions[kommun.region].name.to_owned()
            } else {
                format!("{} kommun", kommun.name)
            }
        );
        if !names.is_empty() {
            description.push_str(&format!(" Närstående som deltar: {names}."));
        }
        self.out.push(json!({
            "resourceType": "CarePlan",
            "id": sip_id,
            "meta": claims(profile::SIP),
            "status": "active",
            "intent": "plan",
            "category": [concept(PLAN_TYPE_SYSTEM, "SIP", "Samordnad individuell plan")],
            "title": "Samordnad individuell plan (SIP)",
            "description": description,
            "subject": self.patient_ref(),
            "period": { "start": day(start) },
            "created": day(start),
            "partOf": [reference("CarePlan", &self.umbrella_id)],
            "author": reference("Organization", author),
            "contributor": [reference("Organization", contributor)],
            "careTeam": [reference("CareTeam", &team_id)],
            "goal": [reference("Goal", &goal)],
            // The follow-up meeting is the SIP's next follow-up date.
            "activity": tasks
                .iter()
                .map(|t| json!({ "reference": reference("Task", t) }))
                .chain([json!({ "reference": reference("Appointment", &follow_up) })])
                .collect::<Vec<_>>(),
            "supportingInfo": [reference("Consent", &consent_id)],
        }));
    }

    /// A SIP meeting with the patient, one region and one municipality participant and the
    /// consented närstående, plus the answers of those who accepted.
    fn sip_meeting(
        &mut self,
        number: u32,
        date: Date,
        held: bool,
        region_staff: usize,
        kommun_staff: usize,
        relatives: &[Relative],
    ) -> String {
        let world = self.world;
        let id = format!("sipmote-{}-{number}", self.n);
        let status = if held {
            "fulfilled"
        } else if self.rng.chance(60) {
            "booked"
        } else {
            "proposed"
        };
        let mut actors = vec![self.patient_ref()];
        actors.push(reference(
            "PractitionerRole",
            &world.staff[region_staff].role_id,
        ));
        actors.push(reference(
            "PractitionerRole",
            &world.staff[kommun_staff].role_id,
        ));
        actors.extend(relatives.iter().map(|r| reference("RelatedPerson", &r.id)));
        let mut participants = Vec::new();
        let mut answered = Vec::new();
        for (i, actor) in actors.into_iter().enumerate() {
            // A proposed meeting waits for the patient; others may not have answered yet.
            let accepted = status != "proposed" || (i != 0 && self.rng.chance(50));
            let mut participant = Map::new();
            participant.insert("actor".into(), actor.clone());
            participant.insert(
                "required".into(),
                json!(if i < 3 { "required" } else { "optional" }),
            );
            participant.insert(
                "status".into(),
                json!(if accepted { "accepted" } else { "needs-action" }),
            );
            participants.push(Value::Object(participant));
            if accepted {
                answered.push(actor);
            }
        }
        let hour = self.rng.range(9, 14) as u8;
        self.out.push(json!({
            "resourceType": "Appointment",
            "id": id,
            "meta": claims(profile::SIP_MEETING),
            "status": status,
            "serviceType": [concept(SERVICE_TYPE_SYSTEM, SIP_MOTE, "SIP-möte")],
            "description": if held { "SIP-möte" } else { "Uppföljande SIP-möte" },
            "start": at(date, hour, 0),
            "end": at(date, hour + 1, 30),
            "supportingInformation": [reference("CarePlan", &format!("sip-{}", self.n))],
            "participant": participants,
        }));
        for actor in answered {
            let response = json!({
                "resourceType": "AppointmentResponse",
                "id": self.next_response_id(),
                "appointment": reference("Appointment", &id),
                "actor": actor,
                "participantStatus": "accepted",
            });
            self.out.push(response);
        }
        id
    }
}
