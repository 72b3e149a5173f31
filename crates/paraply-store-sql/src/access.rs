//! A search's [`Restriction`] as SQL predicates next to the client's own filters
//! (DOMAIN.md §4, I11–I13), so pages, totals and includes only ever hold what the caller may
//! see.
//!
//! Every rule is read from the index tables in the same statement as the search: a consent
//! revoked or a care team closed one moment ago takes effect on the next query. Index rows
//! exist only for current, non-deleted versions, so finding a row is proof enough that the
//! CareTeam, Consent or RelatedPerson it belongs to is current.
//!
//! A resource of a type linked to patients by a reference parameter (`patient`) may name
//! several patients: it is visible when *any* of them is one the caller may see (for staff:
//! a patient passing every rule). One patient per resource is the rule in practice, and
//! "all" would hide a shared resource from every caregiver of one of its patients. A
//! patient-linked resource naming no patient is visible to no restricted caller.

use paraply_fhir::ResourceType;
use paraply_fhir::codes::CARE_PROVIDER_TAG_SYSTEM;
use paraply_search::{
    PatientLink, Relatives, Restriction, StaffScope, owner_only, patient_link, patient_link_via,
};

use crate::search::Builder;

/// Consent `provision.type` codes (`http://hl7.org/fhir/consent-provision-type`).
const PERMIT: &str = "permit";
const DENY: &str = "deny";

/// Encounter statuses of a visit that is not over (`http://hl7.org/fhir/encounter-status`).
const OPEN_ENCOUNTER: [&str; 5] = ["planned", "arrived", "triaged", "in-progress", "onleave"];

impl Builder<'_> {
    /// The search's restriction as a predicate on the `resource_version` row `alias`, which
    /// is of one of `types`; `None` when nothing is restricted.
    pub(crate) fn restricted(&mut self, alias: &str, types: &[ResourceType]) -> Option<String> {
        let restriction = self.restriction?;
        let mut open = Vec::new();
        let mut owned = Vec::new();
        let mut itself = Vec::new();
        let mut by_param: Vec<(&'static str, Vec<ResourceType>)> = Vec::new();
        let mut via = Vec::new();
        for &t in types {
            match patient_link(t) {
                PatientLink::None if owner_only(t) => owned.push(t),
                PatientLink::None => open.push(t),
                PatientLink::Itself => itself.push(t),
                PatientLink::Param(_) if patient_link_via(t).is_some() => via.push(t),
                PatientLink::Param(param) => match by_param.iter_mut().find(|(p, _)| *p == param) {
                    Some((_, list)) => list.push(t),
                    None => by_param.push((param, vec![t])),
                },
            }
        }
        let groups = usize::from(!open.is_empty())
            + usize::from(!owned.is_empty())
            + usize::from(!itself.is_empty())
            + by_param.len()
            + via.len();
        if owned.is_empty() && itself.is_empty() && by_param.is_empty() && via.is_empty() {
            return None;
        }
        // One group: every row already is of a type of it, no type test needed.
        let typed = groups > 1;
        let mut any = Vec::with_capacity(groups);
        if !open.is_empty() {
            any.push(format!(
                "{alias}.resource_type IN ({})",
                self.type_list(&open)
            ));
        }
        if !owned.is_empty() {
            let test = self.owned_by_caller(restriction, alias);
            any.push(self.of_types(alias, &owned, typed, test));
        }
        if !itself.is_empty() {
            let test = self.patient_allowed(restriction, &format!("{alias}.id"), None);
            any.push(self.of_types(alias, &itself, typed, test));
        }
        for (param, list) in by_param {
            let test = self.names_allowed_patient(restriction, alias, param);
            any.push(self.of_types(alias, &list, typed, test));
        }
        for t in via {
            let test = self.linked_to_allowed_patient(restriction, alias, t);
            any.push(self.of_types(alias, &[t], typed, test));
        }
        Some(if any.len() == 1 {
            any.remove(0)
        } else {
            format!("({})", any.join(" OR "))
        })
    }

    /// [`Self::restricted`] as ` AND …` to append to a condition list, or nothing.
    pub(crate) fn and_restricted(&mut self, alias: &str, types: &[ResourceType]) -> String {
        self.restricted(alias, types)
            .map(|test| format!(" AND {test}"))
            .unwrap_or_default()
    }

    /// The restriction as a predicate on the access-log row `alias`: it names (by a
    /// `patient` term) a patient the caller may see, by the same rules as any resource
    /// linked to patients. An access-log entry carries no owner tag, so the care-provider
    /// boundary (staff rule 3) never hides one. `None` when nothing is restricted.
    pub(crate) fn log_restricted(&mut self, alias: &str) -> Option<String> {
        let restriction = self.restriction?;
        let p = self.alias("lp");
        let name = self.stmt.text("patient");
        let allowed = self.patient_allowed(restriction, &format!("{p}.value"), None);
        Some(format!(
            "{alias}.seq IN (SELECT {p}.seq FROM access_log_term {p} \
             WHERE {p}.name = {name} AND {allowed})"
        ))
    }

    /// The restriction on a search of `resource_type` as a set of version rows to start from,
    /// when it names few patients up front (a patient, a relative) and the type links to
    /// patients by a reference: `SELECT rid FROM index_reference WHERE target_id IN (…)`.
    pub(crate) fn restriction_set(&mut self, resource_type: ResourceType) -> Option<String> {
        let restriction = self.restriction?;
        let PatientLink::Param(param) = patient_link(resource_type) else {
            return None;
        };
        if matches!(restriction, Restriction::Staff(_)) {
            return None;
        }
        let k = self.alias("k");
        let ids = self.patient_ids(restriction)?;
        let t = self.stmt.text(resource_type.as_str());
        let param = self.stmt.text(param);
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let direct = format!(
            "SELECT {k}.rid FROM index_reference {k} WHERE {k}.target_id IN ({ids}) \
             AND {k}.resource_type = {t} AND {k}.param = {param} AND {k}.target_type = {patient}"
        );
        let Some((link, target)) = patient_link_via(resource_type) else {
            return Some(direct);
        };
        let PatientLink::Param(target_param) = patient_link(target) else {
            return Some(direct);
        };
        // And the rows linked to the patients' resources of the target type.
        let (a, k2, v) = (self.alias("a"), self.alias("k"), self.alias("v"));
        let ids = self.patient_ids(restriction)?;
        let t = self.stmt.text(resource_type.as_str());
        let link = self.stmt.text(link);
        let target_type = self.stmt.text(target.as_str());
        let target_param = self.stmt.text(target_param);
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        Some(format!(
            "{direct} UNION SELECT {a}.rid FROM index_reference {a} \
             WHERE {a}.resource_type = {t} AND {a}.param = {link} AND {a}.target_type = {target_type} \
             AND {a}.target_id IN (SELECT {v}.id FROM index_reference {k2} \
             JOIN resource_version {v} ON {v}.seq = {k2}.rid \
             WHERE {k2}.target_id IN ({ids}) AND {k2}.resource_type = {target_type} \
             AND {k2}.param = {target_param} AND {k2}.target_type = {patient})"
        ))
    }

    fn of_types(
        &mut self,
        alias: &str,
        types: &[ResourceType],
        typed: bool,
        test: String,
    ) -> String {
        if typed {
            let list = self.type_list(types);
            format!("({alias}.resource_type IN ({list}) AND {test})")
        } else {
            test
        }
    }

    /// An [`owner_only`] resource `alias` carries the owner tag of the caller's care
    /// provider. Only staff have one; an emergency access is for patient data and does not
    /// widen this.
    fn owned_by_caller(&mut self, restriction: &Restriction, alias: &str) -> String {
        let Restriction::Staff(scope) = restriction else {
            return "FALSE".to_owned();
        };
        let o = self.alias("o");
        let tag = self.stmt.text("_tag");
        let system = self.stmt.text(CARE_PROVIDER_TAG_SYSTEM);
        let own = self.stmt.text(&scope.care_provider);
        format!(
            "EXISTS (SELECT 1 FROM index_token {o} WHERE {o}.rid = {alias}.seq \
             AND {o}.param = {tag} AND {o}.system = {system} AND {o}.code = {own})"
        )
    }

    /// The resource `alias` names, through its `param` reference rows, a patient the caller
    /// may see (staff: with rule 3 checked on `alias` itself).
    fn names_allowed_patient(
        &mut self,
        restriction: &Restriction,
        alias: &str,
        param: &str,
    ) -> String {
        let k = self.alias("k");
        let param = self.stmt.text(param);
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let allowed = self.patient_allowed(restriction, &format!("{k}.target_id"), Some(alias));
        format!(
            "EXISTS (SELECT 1 FROM index_reference {k} WHERE {k}.rid = {alias}.seq \
             AND {k}.param = {param} AND {k}.target_type = {patient} AND {allowed})"
        )
    }

    /// The resource `alias` (of `resource_type`, which has a [`patient_link_via`]) names a
    /// patient the caller may see, itself or through the current version of the resource
    /// its link reference names (staff: rule 3 checked on `alias` itself).
    fn linked_to_allowed_patient(
        &mut self,
        restriction: &Restriction,
        alias: &str,
        resource_type: ResourceType,
    ) -> String {
        let direct = match patient_link(resource_type) {
            PatientLink::Param(param) => self.names_allowed_patient(restriction, alias, param),
            _ => "FALSE".to_owned(),
        };
        let Some((link, target)) = patient_link_via(resource_type) else {
            return direct;
        };
        let PatientLink::Param(target_param) = patient_link(target) else {
            return direct;
        };
        let (a, v, k) = (self.alias("a"), self.alias("v"), self.alias("k"));
        let link = self.stmt.text(link);
        let target_type = self.stmt.text(target.as_str());
        let target_param = self.stmt.text(target_param);
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let allowed = self.patient_allowed(restriction, &format!("{k}.target_id"), Some(alias));
        format!(
            "({direct} OR EXISTS (SELECT 1 FROM index_reference {a} \
             JOIN resource_version {v} ON {v}.resource_type = {a}.target_type \
             AND {v}.id = {a}.target_id AND {v}.is_current \
             JOIN index_reference {k} ON {k}.rid = {v}.seq \
             WHERE {a}.rid = {alias}.seq AND {a}.param = {link} AND {a}.target_type = {target_type} \
             AND {k}.param = {target_param} AND {k}.target_type = {patient} AND {allowed}))"
        )
    }

    /// The caller may see data of the patient whose id is `pid`; `resource` is the row of a
    /// non-Patient resource, whose care-provider boundary (staff rule 3) applies too.
    fn patient_allowed(
        &mut self,
        restriction: &Restriction,
        pid: &str,
        resource: Option<&str>,
    ) -> String {
        match restriction {
            Restriction::Staff(scope) => self.staff_allowed(scope, pid, resource),
            other => match self.patient_ids(other) {
                Some(ids) => format!("{pid} IN ({ids})"),
                None => "FALSE".to_owned(),
            },
        }
    }

    /// The patient ids a patient or relative may see, as an `IN` list or subquery; `None`
    /// when there are none.
    fn patient_ids(&mut self, restriction: &Restriction) -> Option<String> {
        match restriction {
            Restriction::Patients(ids) => {
                if ids.is_empty() {
                    return None;
                }
                let list: Vec<String> = ids.iter().map(|id| self.stmt.text(id.as_str())).collect();
                Some(list.join(", "))
            }
            Restriction::RelativeOf(relatives) => {
                let related = &relatives.related_persons;
                if related.is_empty() {
                    return None;
                }
                let (rv, rp) = (self.alias("rv"), self.alias("rp"));
                let related_type = self.stmt.text(ResourceType::RelatedPerson.as_str());
                let list: Vec<String> = related
                    .iter()
                    .map(|id| self.stmt.text(id.as_str()))
                    .collect();
                let param = self.stmt.text("patient");
                let patient = self.stmt.text(ResourceType::Patient.as_str());
                let consent = self.active_consent(&format!("{rp}.target_id"), PERMIT, |b, a| {
                    let related_type = b.stmt.text(ResourceType::RelatedPerson.as_str());
                    format!("{a}.target_type = {related_type} AND {a}.target_id = {rv}.id")
                });
                let guardian = self.guardian_of_child(&rv, &format!("{rp}.target_id"), relatives);
                Some(format!(
                    "SELECT {rp}.target_id FROM resource_version {rv} JOIN index_reference {rp} \
                     ON {rp}.rid = {rv}.seq WHERE {rv}.resource_type = {related_type} \
                     AND {rv}.id IN ({}) AND {rv}.is_current AND {rp}.param = {param} \
                     AND {rp}.target_type = {patient} AND ({consent} OR {guardian})",
                    list.join(", ")
                ))
            }
            Restriction::Staff(_) => None,
        }
    }

    /// The RelatedPerson version `rv` is a guardian (`relationship` GUARD) and patient `pid`
    /// was born after the relatives' cut-off: a child under 13 (I13).
    fn guardian_of_child(&mut self, rv: &str, pid: &str, relatives: &Relatives) -> String {
        let (g, pv, pb) = (self.alias("g"), self.alias("pv"), self.alias("pb"));
        let relationship = self.stmt.text("relationship");
        let guard = self.stmt.text("GUARD");
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let birthdate = self.stmt.text("birthdate");
        // The day after the cut-off, as the start of a birthDate's range in microseconds.
        let after = relatives
            .guardian_of_born_after
            .next_day()
            .map(|day| day.midnight().assume_utc().unix_timestamp() * 1_000_000)
            .unwrap_or(i64::MAX);
        let after = self.stmt.int(after);
        format!(
            "(EXISTS (SELECT 1 FROM index_token {g} WHERE {g}.rid = {rv}.seq \
             AND {g}.param = {relationship} AND {g}.code = {guard}) \
             AND EXISTS (SELECT 1 FROM resource_version {pv} JOIN index_date {pb} \
             ON {pb}.rid = {pv}.seq WHERE {pv}.resource_type = {patient} AND {pv}.id = {pid} \
             AND {pv}.is_current AND {pb}.param = {birthdate} AND {pb}.start_us >= {after}))"
        )
    }

    /// Staff rules 1–3 (see [`StaffScope`]) for patient `pid`; rule 3 only for a `resource`.
    fn staff_allowed(&mut self, scope: &StaffScope, pid: &str, resource: Option<&str>) -> String {
        if scope.emergency {
            return "TRUE".to_owned();
        }
        let care_team = self.care_relationship(scope, pid);
        let encounter = self.open_encounter(scope, pid);
        let mut rules = vec![format!("({care_team} OR {encounter})")];
        if !scope.blocked_if_actor.is_empty() {
            let blocked =
                self.active_consent(pid, DENY, |b, a| b.names_one_of(a, &scope.blocked_if_actor));
            rules.push(format!("NOT {blocked}"));
        }
        if let Some(resource) = resource {
            rules.push(self.care_provider_boundary(scope, pid, resource));
        }
        rules.join(" AND ")
    }

    /// Rule 1: an active CareTeam of `pid` has the caller (one of `members`) or a role at
    /// one of the caller's `units` as a participant.
    fn care_relationship(&mut self, scope: &StaffScope, pid: &str) -> String {
        let cp = self.alias("cp");
        let participant = self.stmt.text("participant");
        let mut who = Vec::with_capacity(2);
        if !scope.members.is_empty() {
            who.push(self.names_one_of(&cp, &scope.members));
        }
        if !scope.units.is_empty() {
            // The unit's roles as a set found from the unit (few), rather than a test of
            // every role participant against its organization.
            let (pr, po) = (self.alias("pr"), self.alias("po"));
            let role = self.stmt.text(ResourceType::PractitionerRole.as_str());
            let organization = self.stmt.text("organization");
            let units = self.names_one_of(&po, &scope.units);
            who.push(format!(
                "({cp}.target_type = {role} AND {cp}.target_id IN (SELECT {pr}.id \
                 FROM index_reference {po} JOIN resource_version {pr} ON {pr}.seq = {po}.rid \
                 WHERE {units} AND {po}.resource_type = {role} \
                 AND {po}.param = {organization}))"
            ));
        }
        if who.is_empty() {
            return "FALSE".to_owned();
        }
        let naming = format!("{cp}.param = {participant} AND ({})", who.join(" OR "));
        self.of_patient_with_status(pid, ResourceType::CareTeam, &["active"], &cp, &naming)
    }

    /// Rule 1, second way: an open Encounter of `pid` (planned, arrived, triaged, in progress,
    /// on leave) has the caller as a participant or one of the caller's `units` as its
    /// service provider — the patient who is at the unit right now.
    fn open_encounter(&mut self, scope: &StaffScope, pid: &str) -> String {
        let ep = self.alias("ep");
        let participant = self.stmt.text("participant");
        let service_provider = self.stmt.text("service-provider");
        let mut who = Vec::with_capacity(2);
        if !scope.members.is_empty() {
            let named = self.names_one_of(&ep, &scope.members);
            who.push(format!("({ep}.param = {participant} AND {named})"));
        }
        if !scope.units.is_empty() {
            let named = self.names_one_of(&ep, &scope.units);
            who.push(format!("({ep}.param = {service_provider} AND {named})"));
        }
        if who.is_empty() {
            return "FALSE".to_owned();
        }
        let naming = who.join(" OR ");
        self.of_patient_with_status(pid, ResourceType::Encounter, &OPEN_ENCOUNTER, &ep, &naming)
    }

    /// Some `resource_type` of patient `pid` with one of the `statuses` has a reference row
    /// (aliased `named`) for which `naming` holds.
    fn of_patient_with_status(
        &mut self,
        pid: &str,
        resource_type: ResourceType,
        statuses: &[&str],
        named: &str,
        naming: &str,
    ) -> String {
        let (of, st) = (self.alias("of"), self.alias("st"));
        let t = self.stmt.text(resource_type.as_str());
        let patient_param = self.stmt.text("patient");
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let status = self.stmt.text("status");
        let codes: Vec<String> = statuses.iter().map(|code| self.stmt.text(code)).collect();
        format!(
            "EXISTS (SELECT 1 FROM index_reference {of} WHERE {of}.target_id = {pid} \
             AND {of}.resource_type = {t} AND {of}.param = {patient_param} \
             AND {of}.target_type = {patient} \
             AND EXISTS (SELECT 1 FROM index_token {st} WHERE {st}.rid = {of}.rid \
             AND {st}.param = {status} AND {st}.code IN ({})) \
             AND EXISTS (SELECT 1 FROM index_reference {named} WHERE {named}.rid = {of}.rid \
             AND ({naming})))",
            codes.join(", ")
        )
    }

    /// Rule 3: `resource` has no owner tag of another care provider, or it names the
    /// caller's organization, or `pid` has an active permit Consent for one of
    /// `organizations`.
    fn care_provider_boundary(&mut self, scope: &StaffScope, pid: &str, resource: &str) -> String {
        let o = self.alias("o");
        let tag = self.stmt.text("_tag");
        let system = self.stmt.text(CARE_PROVIDER_TAG_SYSTEM);
        let own = self.stmt.text(&scope.care_provider);
        let mut any = vec![format!(
            "NOT EXISTS (SELECT 1 FROM index_token {o} WHERE {o}.rid = {resource}.seq \
             AND {o}.param = {tag} AND {o}.system = {system} AND {o}.code <> {own})"
        )];
        let ours: Vec<String> = (scope.members.iter())
            .chain(&scope.units)
            .chain(&scope.organizations)
            .cloned()
            .collect();
        if !ours.is_empty() {
            let n = self.alias("n");
            let names = self.names_one_of(&n, &ours);
            any.push(format!(
                "EXISTS (SELECT 1 FROM index_reference {n} WHERE {n}.rid = {resource}.seq \
                 AND {names})"
            ));
        }
        if !scope.organizations.is_empty() {
            any.push(
                self.active_consent(pid, PERMIT, |b, a| b.names_one_of(a, &scope.organizations)),
            );
        }
        format!("({})", any.join(" OR "))
    }

    /// `EXISTS` an active Consent of patient `pid` whose base provision is `provision` and
    /// one of whose `actor` rows (alias given to `actor`) passes `actor`.
    fn active_consent(
        &mut self,
        pid: &str,
        provision: &str,
        actor: impl FnOnce(&mut Self, &str) -> String,
    ) -> String {
        let (c, cs, cv, ca) = (
            self.alias("c"),
            self.alias("cs"),
            self.alias("cv"),
            self.alias("ca"),
        );
        let consent = self.stmt.text(ResourceType::Consent.as_str());
        let patient_param = self.stmt.text("patient");
        let patient = self.stmt.text(ResourceType::Patient.as_str());
        let status = self.stmt.text("status");
        let active = self.stmt.text("active");
        let provision_type = self.stmt.text("provision-type");
        let provision = self.stmt.text(provision);
        let actor_param = self.stmt.text("actor");
        let actor = actor(self, &ca);
        format!(
            "EXISTS (SELECT 1 FROM index_reference {c} WHERE {c}.target_id = {pid} \
             AND {c}.resource_type = {consent} AND {c}.param = {patient_param} \
             AND {c}.target_type = {patient} \
             AND EXISTS (SELECT 1 FROM index_token {cs} WHERE {cs}.rid = {c}.rid \
             AND {cs}.param = {status} AND {cs}.code = {active}) \
             AND EXISTS (SELECT 1 FROM index_token {cv} WHERE {cv}.rid = {c}.rid \
             AND {cv}.param = {provision_type} AND {cv}.code = {provision}) \
             AND EXISTS (SELECT 1 FROM index_reference {ca} WHERE {ca}.rid = {c}.rid \
             AND {ca}.param = {actor_param} AND {actor}))"
        )
    }

    /// The reference row `a` targets one of `references` (`Type/id`), grouped by type so
    /// each group is one `IN` list. A malformed reference names nothing.
    fn names_one_of(&mut self, a: &str, references: &[String]) -> String {
        let mut by_type: Vec<(&str, Vec<&str>)> = Vec::new();
        for (t, id) in references.iter().filter_map(|r| r.split_once('/')) {
            match by_type.iter_mut().find(|(known, _)| *known == t) {
                Some((_, ids)) => ids.push(id),
                None => by_type.push((t, vec![id])),
            }
        }
        if by_type.is_empty() {
            return "FALSE".to_owned();
        }
        let any: Vec<String> = by_type
            .into_iter()
            .map(|(t, ids)| {
                let t = self.stmt.text(t);
                let ids: Vec<String> = ids.into_iter().map(|id| self.stmt.text(id)).collect();
                format!(
                    "({a}.target_type = {t} AND {a}.target_id IN ({}))",
                    ids.join(", ")
                )
            })
            .collect();
        format!("({})", any.join(" OR "))
    }
}
