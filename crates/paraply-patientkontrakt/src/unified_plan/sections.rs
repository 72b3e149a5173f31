//! The seven sections' content: what each shows, in Swedish, and which resources it
//! points at. Names of people, units and places are resolved through the document's index.

use serde_json::Value;
use time::OffsetDateTime;

use super::words::{self, escape};
use super::{Doc, SectionOut, parse_instant};
use crate::json::{
    concept_code, list, reference_at, reference_of, references_at, resource_type, self_reference,
    status, text,
};
use crate::kind::{
    ConsentAction, consent_allows, consent_in_force, fast_kontakt_member, fast_kontakt_role,
    is_fast_kontakt, is_sip, is_sip_consent_for, is_sip_meeting, is_sip_team, narstaende_of,
    participant_of, plan_type,
};
use paraply_fhir::codes;

impl<'d> Doc<'d> {
    // ---- names and words ----

    /// A readable name of a resource: a person's name, an organization's, a role's
    /// person, or a plan's title.
    pub(super) fn display_name(&self, resource: &Value) -> Option<String> {
        match resource_type(resource)? {
            "Patient" | "Practitioner" | "RelatedPerson" => human_name(resource),
            "PractitionerRole" => reference_at(resource, "practitioner")
                .and_then(|p| self.get(&p))
                .and_then(human_name)
                .or_else(|| role_text(resource)),
            "Organization" | "Location" | "HealthcareService" => {
                text(resource, "name").map(str::to_owned)
            }
            "CarePlan" => text(resource, "title").map(str::to_owned),
            _ => None,
        }
    }

    /// Who a reference names, in words: `Anna Andersson, Vårdcentralen Solna` for a
    /// PractitionerRole; the display given in the reference when the resource is absent.
    fn who(&self, reference: &Value) -> Option<String> {
        let target = reference_of(reference).and_then(|r| self.get(&r));
        let name = match target {
            Some(resource) if resource_type(resource) == Some("PractitionerRole") => {
                let person = self.display_name(resource);
                let unit = self.unit_of(resource);
                match (person, unit) {
                    (Some(person), Some(unit)) => Some(format!("{person}, {unit}")),
                    (person, unit) => person.or(unit),
                }
            }
            Some(resource) => self.display_name(resource),
            None => None,
        };
        name.or_else(|| text(reference, "display").map(str::to_owned))
    }

    fn unit_of(&self, practitioner_role: &Value) -> Option<String> {
        reference_at(practitioner_role, "organization")
            .and_then(|org| self.get(&org))
            .and_then(|org| self.display_name(org))
    }

    fn you(&self) -> &'static str {
        if self.to_the_patient {
            "du"
        } else {
            "patienten"
        }
    }

    // ---- sections ----

    pub(super) fn overenskommelse(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns ingen överenskommelse nedskriven ännu.";
        let mut html = String::new();
        if let Some(umbrella) = self.umbrella {
            out.entries.extend(self_reference(umbrella));
            let description = text(umbrella, "description")
                .map(|d| format!("<p>{}</p>", escape(d)))
                .unwrap_or_else(|| {
                    "<p>Överenskommelsen har ingen beskrivning ännu.</p>".to_owned()
                });
            html.push_str(&description);
            if status(umbrella) != Some("active") {
                let state = words::plan_status(status(umbrella).unwrap_or_default());
                html.push_str(&format!("<p>Status: {}</p>", escape(state)));
            }
        }
        // Goals named by the umbrella first, in its order, then the patient's other goals.
        let named: Vec<String> = self
            .umbrella
            .map(|u| references_at(u, "goal"))
            .unwrap_or_default();
        let mut goals: Vec<&Value> = named.iter().filter_map(|g| self.get(g)).collect();
        goals.extend(
            self.of_type("Goal")
                .filter(|goal| self_reference(goal).is_some_and(|g| !named.contains(&g))),
        );
        if !goals.is_empty() {
            html.push_str("<h3>Mål</h3><ul>");
            for goal in goals {
                let description = goal
                    .get("description")
                    .and_then(|d| {
                        text(d, "text")
                            .map(str::to_owned)
                            .or_else(|| coding_display(d))
                    })
                    .unwrap_or_else(|| "Mål utan beskrivning".to_owned());
                let state = words::goal_status(text(goal, "lifecycleStatus").unwrap_or_default());
                html.push_str(&format!("<li>{} – {}</li>", escape(&description), state));
                out.entries.extend(self_reference(goal));
            }
            html.push_str("</ul>");
        }
        if let Some(umbrella) = self.umbrella.and_then(self_reference) {
            let tasks = self.tasks_of(&umbrella);
            if !tasks.is_empty() {
                html.push_str("<h3>Insatser i överenskommelsen</h3>");
                html.push_str(&self.task_list(&tasks, out));
            }
        }
        out.html = Some(html);
    }

    fn active_fast_kontakter(&self) -> Vec<&'d Value> {
        let mut teams: Vec<&Value> = self
            .of_type("CareTeam")
            .filter(|team| is_fast_kontakt(team) && status(team) == Some("active"))
            .collect();
        // The coordinating contact first, then läkare, vårdkontakter, omsorgskontakter.
        let order = |team: &&Value| match fast_kontakt_role(team) {
            Some("4") => 0,
            Some("2") => 1,
            Some("1") => 2,
            _ => 3,
        };
        teams.sort_by_key(order);
        teams
    }

    pub(super) fn fasta_kontakter(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns ingen fast kontakt registrerad.";
        let mut html = String::from("<ul>");
        for team in self.active_fast_kontakter() {
            out.entries.extend(self_reference(team));
            html.push_str(&format!("<li>{}</li>", self.contact_line(team)));
        }
        html.push_str("</ul>");
        out.html = Some(html);
    }

    /// One fixed contact: role, person, unit, phone, reachable hours, contact route.
    fn contact_line(&self, team: &Value) -> String {
        let role = words::fast_kontakt_role(fast_kontakt_role(team).unwrap_or_default());
        let member = fast_kontakt_member(team).and_then(|m| self.get(&m));
        let person = member
            .and_then(|m| self.display_name(m))
            .unwrap_or_else(|| "namn saknas".to_owned());
        let mut line = format!("<b>{}</b>: {}", escape(role), escape(&person));
        if let Some(professional) = member.and_then(role_text) {
            line.push_str(&format!(" ({})", escape(&professional)));
        }
        if let Some(unit) = member.and_then(|m| self.unit_of(m)) {
            line.push_str(&format!(", {}", escape(&unit)));
        }
        line.push('.');
        let phone = phone_of(team).or_else(|| member.and_then(phone_of));
        if let Some(phone) = phone {
            line.push_str(&format!(" Telefon {}.", escape(&phone)));
        }
        let hours = reachable_hours(team);
        let hours = if hours.is_empty() {
            member.map(available_times).unwrap_or_default()
        } else {
            hours
        };
        if !hours.is_empty() {
            line.push_str(&format!(" Nås {}.", escape(&hours.join("; "))));
        }
        for route in list(team, "extension")
            .iter()
            .filter(|e| text(e, "url") == Some(codes::CONTACT_ROUTE_URL))
            .filter_map(|e| text(e, "valueString"))
        {
            line.push_str(&format!(" {}", escape(route)));
        }
        line
    }

    pub(super) fn overenskomna_tider(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns inga inbokade eller föreslagna tider under perioden.";
        let (from, to) = self.input.period;
        let mut upcoming: Vec<(OffsetDateTime, &Value)> = self
            .of_type("Appointment")
            .filter_map(|appointment| {
                let start = parse_instant(text(appointment, "start")?)?;
                (start >= from && start <= to).then_some((start, appointment))
            })
            .collect();
        upcoming.sort_by_key(|(start, _)| *start);
        let mut html = String::from("<ul>");
        for (start, appointment) in upcoming {
            let Some(this) = self_reference(appointment) else {
                continue;
            };
            out.entries.push(this.clone());
            let what = text(appointment, "description")
                .map(str::to_owned)
                .or_else(|| {
                    list(appointment, "serviceType")
                        .iter()
                        .find_map(concept_text)
                })
                .or_else(|| appointment.get("appointmentType").and_then(concept_text))
                .unwrap_or_else(|| {
                    let kind = if is_sip_meeting(appointment) {
                        "SIP-möte"
                    } else {
                        "Besök"
                    };
                    kind.to_owned()
                });
            let mut line = format!(
                "<b>{}</b>: {}",
                escape(&words::date_time(start)),
                escape(&what)
            );
            let with: Vec<String> = list(appointment, "participant")
                .iter()
                .filter_map(|p| p.get("actor"))
                .filter(|actor| {
                    reference_of(actor).is_some_and(|r| {
                        r.starts_with("PractitionerRole/") || r.starts_with("Practitioner/")
                    })
                })
                .filter_map(|actor| self.who(actor))
                .collect();
            if !with.is_empty() {
                line.push_str(&format!(" med {}", escape(&with.join(" och "))));
            }
            let places: Vec<String> = list(appointment, "participant")
                .iter()
                .filter_map(|p| p.get("actor"))
                .filter(|actor| reference_of(actor).is_some_and(|r| r.starts_with("Location/")))
                .filter_map(|actor| self.who(actor))
                .collect();
            if !places.is_empty() {
                line.push_str(&format!(". Plats: {}", escape(&places.join(", "))));
            }
            let patient_status = participant_of(appointment, &self.patient_ref)
                .and_then(|participant| text(participant, "status"));
            let state = words::appointment_state(
                status(appointment).unwrap_or_default(),
                patient_status,
                self.to_the_patient,
            );
            line.push_str(&format!(". <i>{}</i>", escape(state)));
            for response in self.of_type("AppointmentResponse").filter(|r| {
                reference_at(r, "appointment").as_deref() == Some(this.as_str())
                    && text(r, "participantStatus") == Some("tentative")
            }) {
                out.entries.extend(self_reference(response));
                if let Some(wished) = text(response, "start").and_then(parse_instant) {
                    line.push_str(&format!(
                        " Önskad tid: {}.",
                        escape(&words::date_time(wished))
                    ));
                }
                if let Some(comment) = text(response, "comment") {
                    line.push_str(&format!(" Meddelande: ”{}”", escape(comment)));
                }
            }
            html.push_str(&format!("<li>{line}</li>"));
        }
        html.push_str("</ul>");
        out.html = Some(html);
    }

    /// The Tasks based on a plan, live ones in input order.
    fn tasks_of(&self, plan: &str) -> Vec<&'d Value> {
        self.of_type("Task")
            .filter(|task| references_at(task, "basedOn").iter().any(|b| b == plan))
            .collect()
    }

    /// Who does what: `<ul>` of tasks, each with its owner and status, entries added.
    fn task_list(&self, tasks: &[&Value], out: &mut SectionOut) -> String {
        let mut html = String::from("<ul>");
        for task in tasks {
            out.entries.extend(self_reference(task));
            let what = text(task, "description")
                .map(str::to_owned)
                .or_else(|| task.get("code").and_then(concept_text))
                .unwrap_or_else(|| "Insats".to_owned());
            let owner = task.get("owner").and_then(|owner| {
                if reference_of(owner).as_deref() == Some(self.patient_ref.as_str()) {
                    Some(if self.to_the_patient {
                        "Du själv".to_owned()
                    } else {
                        "Patienten själv".to_owned()
                    })
                } else {
                    self.who(owner)
                }
            });
            let other = list(task, "extension")
                .iter()
                .find(|e| text(e, "url") == Some(codes::PERFORMED_BY_OTHER_URL))
                .and_then(|e| {
                    text(e, "valueString")
                        .map(str::to_owned)
                        .or_else(|| e.get("valueReference").and_then(|r| self.who(r)))
                });
            let mut line = escape(&what);
            if let Some(owner) = owner {
                line.push_str(&format!(" – ansvarig: {}", escape(&owner)));
            }
            if let Some(other) = other {
                line.push_str(&format!(" – utförs av {}", escape(&other)));
            }
            line.push_str(&format!(
                " – {}",
                words::task_status(status(task).unwrap_or_default())
            ));
            html.push_str(&format!("<li>{line}</li>"));
        }
        html.push_str("</ul>");
        html
    }

    /// The plan's kind in words: its national type, or "Plan".
    fn plan_kind(plan: &Value) -> &'static str {
        words::plan_type(plan_type(plan).unwrap_or_default())
    }

    pub(super) fn planer(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns inga planer kopplade till patientkontraktet.";
        let Some(umbrella) = self.umbrella.and_then(self_reference) else {
            return;
        };
        let plans: Vec<&Value> = self
            .of_type("CarePlan")
            .filter(|plan| plan_type(plan).is_some())
            .filter(|plan| references_at(plan, "partOf").contains(&umbrella))
            .collect();
        let mut html = String::from("<ul>");
        for plan in plans {
            let Some(this) = self_reference(plan) else {
                continue;
            };
            out.entries.push(this.clone());
            let kind = Self::plan_kind(plan);
            let mut line = match text(plan, "title") {
                Some(title) => format!("<b>{}</b> ({})", escape(title), escape(kind)),
                None => format!("<b>{}</b>", escape(kind)),
            };
            if let Some(author) = plan.get("author").and_then(|a| self.who(a)) {
                line.push_str(&format!(" – ansvarig: {}", escape(&author)));
            }
            line.push_str(&format!(
                " – {}",
                words::plan_status(status(plan).unwrap_or_default())
            ));
            let tasks = self.tasks_of(&this);
            if !tasks.is_empty() {
                line.push_str(&self.task_list(&tasks, out));
            }
            html.push_str(&format!("<li>{line}</li>"));
        }
        html.push_str("</ul>");
        out.html = Some(html);
    }

    pub(super) fn sip(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns ingen samordnad individuell plan (SIP).";
        let sips: Vec<&Value> = self
            .of_type("CarePlan")
            .filter(|plan| is_sip(plan))
            .collect();
        let mut html = String::new();
        let now = self.input.now;
        for sip in sips {
            let Some(this) = self_reference(sip) else {
                continue;
            };
            out.entries.push(this.clone());
            let title = text(sip, "title").unwrap_or("SIP");
            html.push_str(&format!(
                "<h3>{}</h3><p>Status: {}.",
                escape(title),
                words::plan_status(status(sip).unwrap_or_default())
            ));
            if let Some(author) = sip.get("author").and_then(|a| self.who(a)) {
                html.push_str(&format!(" Övergripande ansvar: {}.", escape(&author)));
            }
            let contributors: Vec<String> = list(sip, "contributor")
                .iter()
                .filter_map(|c| self.who(c))
                .collect();
            if !contributors.is_empty() {
                html.push_str(&format!(
                    " Deltar också: {}.",
                    escape(&contributors.join(", "))
                ));
            }
            html.push_str("</p>");

            let consent = self.of_type("Consent").find(|c| {
                consent_in_force(c, &now.date().to_string()) && is_sip_consent_for(c, &this)
            });
            match consent {
                Some(consent) => {
                    out.entries.extend(self_reference(consent));
                    let given = text(consent, "dateTime").map(words::date);
                    let line = match given {
                        Some(day) => format!("Samtycke till SIP lämnat {day}."),
                        None => "Samtycke till SIP är lämnat.".to_owned(),
                    };
                    html.push_str(&format!("<p>{}</p>", escape(&line)));
                }
                None => html.push_str("<p>Samtycke till SIP är inte registrerat.</p>"),
            }

            // The next meeting of this SIP: one naming it, or naming no SIP at all.
            let next = self
                .of_type("Appointment")
                .filter(|m| {
                    is_sip_meeting(m)
                        && !matches!(status(m), Some("cancelled" | "entered-in-error"))
                })
                .filter(|m| {
                    let about = references_at(m, "supportingInformation");
                    about.contains(&this) || !about.iter().any(|r| r.starts_with("CarePlan/"))
                })
                .filter_map(|m| Some((parse_instant(text(m, "start")?)?, m)))
                .filter(|(start, _)| *start >= now)
                .min_by_key(|(start, _)| *start);
            match next {
                Some((start, meeting)) => {
                    out.entries.extend(self_reference(meeting));
                    let place: Vec<String> = list(meeting, "participant")
                        .iter()
                        .filter_map(|p| p.get("actor"))
                        .filter(|a| reference_of(a).is_some_and(|r| r.starts_with("Location/")))
                        .filter_map(|a| self.who(a))
                        .collect();
                    let mut line = format!("Nästa SIP-möte: {}", words::date_time(start));
                    if !place.is_empty() {
                        line.push_str(&format!(", {}", place.join(", ")));
                    }
                    html.push_str(&format!("<p>{}.</p>", escape(&line)));
                }
                None => html.push_str("<p>Inget SIP-möte är inplanerat.</p>"),
            }

            let named_teams = references_at(sip, "careTeam");
            let teams: Vec<&Value> = if named_teams.is_empty() {
                self.of_type("CareTeam")
                    .filter(|t| is_sip_team(t))
                    .collect()
            } else {
                named_teams.iter().filter_map(|t| self.get(t)).collect()
            };
            for team in teams {
                out.entries.extend(self_reference(team));
                html.push_str("<p>SIP-team:</p><ul>");
                for participant in list(team, "participant") {
                    let Some(member) = participant.get("member") else {
                        continue;
                    };
                    let name = if reference_of(member).as_deref() == Some(self.patient_ref.as_str())
                    {
                        self.get(&self.patient_ref)
                            .and_then(|p| self.display_name(p))
                    } else {
                        self.who(member)
                    };
                    let role = list(participant, "role").iter().find_map(|role| {
                        concept_code(role, codes::SIP_ROLE_SYSTEM)
                            .map(|code| words::sip_role(code).to_owned())
                            .or_else(|| concept_text(role))
                    });
                    let mut line = escape(&name.unwrap_or_else(|| "namn saknas".to_owned()));
                    if let Some(role) = role {
                        line.push_str(&format!(" – {}", escape(&role)));
                    }
                    html.push_str(&format!("<li>{line}</li>"));
                }
                html.push_str("</ul>");
            }
        }
        out.html = Some(html);
    }

    pub(super) fn narstaende(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns inga närstående registrerade.";
        let today = self.input.now.date().to_string();
        let consents: Vec<&Value> = self
            .of_type("Consent")
            .filter(|consent| consent_in_force(consent, &today))
            .collect();
        let mut html = String::from("<ul>");
        for relative in self.of_type("RelatedPerson") {
            let Some(this) = self_reference(relative) else {
                continue;
            };
            out.entries.push(this.clone());
            let name = human_name(relative).unwrap_or_else(|| "namn saknas".to_owned());
            let mut line = escape(&name);
            if let Some(relation) = list(relative, "relationship").iter().find_map(concept_text) {
                line.push_str(&format!(" ({})", escape(&relation)));
            }
            let theirs: Vec<&Value> = consents
                .iter()
                .copied()
                .filter(|consent| narstaende_of(consent).contains(&this))
                .collect();
            let may_read = theirs
                .iter()
                .any(|c| consent_allows(c, ConsentAction::Read));
            let may_book = theirs
                .iter()
                .any(|c| consent_allows(c, ConsentAction::Book));
            let rights = match (may_read, may_book) {
                (_, true) => "får se patientkontraktet och svara på tider",
                (true, false) => "får se patientkontraktet",
                (false, false) => "har ingen behörighet just nu",
            };
            line.push_str(&format!(" – {rights}"));
            out.entries
                .extend(theirs.iter().filter_map(|c| self_reference(c)));
            html.push_str(&format!("<li>{line}</li>"));
        }
        html.push_str("</ul>");
        out.html = Some(html);
    }

    pub(super) fn kontaktvagar(&self, out: &mut SectionOut) {
        out.empty_text = "Det finns ingen kontaktväg registrerad. Vid frågor om vård, ring 1177. Vid akuta besvär, ring 112.";
        let mut html = String::new();
        let vardkontakter: Vec<&Value> = self
            .active_fast_kontakter()
            .into_iter()
            .filter(|team| matches!(fast_kontakt_role(team), Some("1" | "4")))
            .collect();
        if !vardkontakter.is_empty() {
            let intro = if self.to_the_patient {
                "Har du frågor om din vård, kontakta i första hand din fasta vårdkontakt:"
            } else {
                "Frågor om patientens vård går i första hand till den fasta vårdkontakten:"
            };
            html.push_str(&format!("<p>{intro}</p><ul>"));
            for team in vardkontakter {
                out.entries.extend(self_reference(team));
                html.push_str(&format!("<li>{}</li>", self.contact_line(team)));
            }
            html.push_str("</ul>");
        }
        let services: Vec<&Value> = self.of_type("HealthcareService").collect();
        if !services.is_empty() {
            html.push_str("<p>Mottagningar:</p><ul>");
            for service in services {
                out.entries.extend(self_reference(service));
                let mut line = format!(
                    "<b>{}</b>",
                    escape(text(service, "name").unwrap_or("Mottagning"))
                );
                if let Some(phone) = phone_of(service) {
                    line.push_str(&format!(", telefon {}", escape(&phone)));
                }
                let hours = available_times(service);
                if !hours.is_empty() {
                    line.push_str(&format!(". Öppet {}", escape(&hours.join("; "))));
                }
                if let Some(comment) = text(service, "availabilityExceptions") {
                    line.push_str(&format!(". {}", escape(comment)));
                }
                html.push_str(&format!("<li>{line}.</li>"));
            }
            html.push_str("</ul>");
        }
        html.push_str(&format!(
            "<p>Behöver {} sjukvårdsrådgivning, ring 1177. Vid akuta besvär, ring 112.</p>",
            self.you()
        ));
        out.html = Some(html);
    }
}

/// A HumanName in reading order: `text`, else given names and family name.
fn human_name(resource: &Value) -> Option<String> {
    let name = list(resource, "name").first()?;
    if let Some(text) = text(name, "text") {
        return Some(text.to_owned());
    }
    let mut parts: Vec<&str> = list(name, "given")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    parts.extend(text(name, "family"));
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The profession or function of a PractitionerRole (`code`), e.g. "Distriktsläkare".
fn role_text(practitioner_role: &Value) -> Option<String> {
    list(practitioner_role, "code")
        .iter()
        .find_map(concept_text)
}

fn concept_text(concept: &Value) -> Option<String> {
    text(concept, "text")
        .map(str::to_owned)
        .or_else(|| coding_display(concept))
}

fn coding_display(concept: &Value) -> Option<String> {
    list(concept, "coding")
        .iter()
        .find_map(|coding| text(coding, "display"))
        .map(str::to_owned)
}

/// The first phone number among `telecom`.
fn phone_of(resource: &Value) -> Option<String> {
    list(resource, "telecom")
        .iter()
        .find(|contact| text(contact, "system") == Some("phone"))
        .and_then(|contact| text(contact, "value"))
        .map(str::to_owned)
}

/// Hours from the reachable-hours extension of a fixed contact.
fn reachable_hours(care_team: &Value) -> Vec<String> {
    list(care_team, "extension")
        .iter()
        .filter(|extension| text(extension, "url") == Some(codes::REACHABLE_HOURS_URL))
        .filter_map(|extension| {
            let parts = list(extension, "extension");
            let days: Vec<&str> = parts
                .iter()
                .filter(|p| text(p, "url") == Some("daysOfWeek"))
                .filter_map(|p| text(p, "valueCode"))
                .collect();
            let part = |url: &str| {
                parts
                    .iter()
                    .find(|p| text(p, "url") == Some(url))
                    .and_then(|p| text(p, "valueTime"))
            };
            hours_line(
                &days,
                false,
                part("availableStartTime"),
                part("availableEndTime"),
            )
        })
        .collect()
}

/// Hours from `availableTime` (PractitionerRole, HealthcareService).
fn available_times(resource: &Value) -> Vec<String> {
    list(resource, "availableTime")
        .iter()
        .filter_map(|time| {
            let days: Vec<&str> = list(time, "daysOfWeek")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let all_day = time.get("allDay").and_then(Value::as_bool).unwrap_or(false);
            hours_line(
                &days,
                all_day,
                text(time, "availableStartTime"),
                text(time, "availableEndTime"),
            )
        })
        .collect()
}

/// `måndag–fredag 08:00–16:00`.
fn hours_line(
    days: &[&str],
    all_day: bool,
    start: Option<&str>,
    end: Option<&str>,
) -> Option<String> {
    let days = words::days(days);
    let times = match (all_day, start, end) {
        (true, _, _) => Some("hela dagen".to_owned()),
        (false, Some(start), Some(end)) => {
            Some(format!("{}–{}", words::clock(start), words::clock(end)))
        }
        (false, Some(start), None) => Some(format!("från {}", words::clock(start))),
        (false, None, Some(end)) => Some(format!("till {}", words::clock(end))),
        (false, None, None) => None,
    };
    match (days.is_empty(), times) {
        (true, None) => None,
        (true, Some(times)) => Some(times),
        (false, None) => Some(days),
        (false, Some(times)) => Some(format!("{days} {times}")),
    }
}
