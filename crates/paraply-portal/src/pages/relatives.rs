//! Relatives: the patient gives and takes back access; a relative chooses whose plan to view.

use super::*;

/// `/narstaende` (the patient's) and `/valj` (a relative's choice).
pub(super) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/narstaende", get(relatives).post(add_relative))
        .route("/narstaende/{id}", post(revoke_relative))
        .route("/valj", get(choose).post(chosen))
}

#[derive(Deserialize)]
struct RelativeParams {
    sparat: Option<String>,
    borttagen: Option<String>,
}

async fn relatives(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<RelativeParams>,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/narstaende").await?;
    me.patient_only()?;
    let notice = match (params.sparat, params.borttagen) {
        (Some(_), _) => Some("relatives-saved"),
        (None, Some(_)) => Some("relatives-revoked"),
        _ => None,
    };
    let form = RelativeForm {
        personnummer: "",
        given: "",
        family: "",
        relation: "",
        access: "",
        errors: FieldErrors::new(),
    };
    let document = portal.document(&me).await?;
    Ok(html(
        StatusCode::OK,
        views::relatives(
            &me.frame(Nav::Relatives, "/narstaende"),
            &document,
            &form,
            notice,
        ),
    ))
}

/// The patient gives a relative (by personnummer) read access, or read and booking access:
/// their RelatedPerson (unless recorded already) and a permit Consent naming them, in one
/// transaction.
async fn add_relative(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/narstaende").await?;
    me.patient_only()?;
    let fields = portal.posted_form(&headers, &body, Some(&me.session))?;
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    let lang = me.lang;
    let personnummer: String = field("personnummer")
        .chars()
        .filter(|c| !matches!(c, '-' | '+' | ' '))
        .collect();
    let mut errors = FieldErrors::new();
    let mut problem =
        |field: &str, key: &str| errors.push((field.to_owned(), lang.t(key).to_owned()));
    if personnummer.len() != 12 || !personnummer.chars().all(|c| c.is_ascii_digit()) {
        problem("personnummer", "error-pnr");
    }
    if field("given").is_empty() || field("family").is_empty() {
        problem(
            if field("given").is_empty() {
                "given"
            } else {
                "family"
            },
            "error-name",
        );
    }
    let relation = RELATIONS.iter().find(|code| **code == field("relation"));
    if relation.is_none() {
        problem("relation", "error-relation");
    }
    let books = match field("access") {
        "read" => Some(false),
        "book" => Some(true),
        _ => None,
    };
    if books.is_none() {
        problem("access", "error-access");
    }
    let document = portal.document(&me).await?;
    if let (true, Some(relation), Some(books)) = (errors.is_empty(), relation, books) {
        let patient = format!("Patient/{}", me.patient);
        let existing = document
            .related_person_with(&personnummer)
            .and_then(crate::plan::self_reference);
        let person_reference = existing
            .clone()
            .unwrap_or_else(|| format!("urn:uuid:{}", uuid::Uuid::new_v4()));
        let mut entries = Vec::new();
        if existing.is_none() {
            entries.push(json!({
                "fullUrl": person_reference,
                "resource": {
                    "resourceType": "RelatedPerson",
                    "active": true,
                    "patient": {"reference": patient},
                    "identifier": [{"system": paraply_fhir::PERSONNUMMER, "value": personnummer}],
                    "relationship": [{
                        "coding": [{"system": ROLE_CODE_SYSTEM, "code": relation}],
                        "text": Language::Sv.t(&format!("relation-{relation}")),
                    }],
                    "name": [{"family": field("family"), "given": [field("given")]}],
                },
                "request": {"method": "POST", "url": "RelatedPerson"},
            }));
        }
        let mut actions = vec![
            json!({"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}),
        ];
        if books {
            actions.push(json!({"system": "https://paraply.se/fhir/CodeSystem/consent-action", "code": "book"}));
        }
        let today = OffsetDateTime::now_utc().date().to_string();
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource": {
                "resourceType": "Consent",
                "meta": {"profile": ["https://paraply.se/fhir/StructureDefinition/narstaende-consent"]},
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                "patient": {"reference": patient},
                "dateTime": format_instant(OffsetDateTime::now_utc()),
                "performer": [{"reference": patient}],
                "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
                "provision": {
                    "type": "permit",
                    "period": {"start": today},
                    "actor": [{
                        "role": {"coding": [{"system": ROLE_CODE_SYSTEM, "code": relation}]},
                        "reference": {"reference": person_reference},
                    }],
                    "action": [{"coding": actions}],
                },
            },
            "request": {"method": "POST", "url": "Consent"},
        }));
        let mut request = FhirRequest::new(Method::Post, "");
        request.body =
            Some(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}));
        match portal.fhir.handle_as(&me.context, request).await {
            Ok(_) => return Ok(redirect("/narstaende?sparat=1", None)),
            // The personnummer's check digit, mostly: the engine checks Swedish identifiers.
            Err(CoreError::Invalid(_) | CoreError::Transaction { .. }) => {
                errors.push(("personnummer".into(), lang.t("error-pnr").to_owned()));
            }
            Err(error) => return Err(error.into()),
        }
    }
    let form = RelativeForm {
        personnummer: field("personnummer"),
        given: field("given"),
        family: field("family"),
        relation: field("relation"),
        access: field("access"),
        errors,
    };
    Ok(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        views::relatives(
            &me.frame(Nav::Relatives, "/narstaende"),
            &document,
            &form,
            None,
        ),
    ))
}

/// HL7 v3 RoleCode: how a relative is related to the patient.
const ROLE_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";

/// The patient takes a relative's permission back: the Consent becomes inactive, at once.
async fn revoke_relative(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/narstaende").await?;
    me.patient_only()?;
    portal.posted_form(&headers, &body, Some(&me.session))?;
    let document = portal.document(&me).await?;
    let reference = format!("Consent/{id}");
    let granted = document
        .relatives()
        .into_iter()
        .flat_map(|(_, consents)| consents)
        .any(|consent| crate::plan::self_reference(consent).as_deref() == Some(reference.as_str()));
    if !granted {
        return Err(PortalError::NotFound);
    }
    let mut request = FhirRequest::new(Method::Patch, reference);
    request.body = Some(json!([{"op": "replace", "path": "/status", "value": "inactive"}]));
    portal.call(&me, request).await?;
    Ok(redirect("/narstaende?borttagen=1", None))
}

/// A relative's choice of whose plan to view; a patient has nothing to choose.
async fn choose(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let (session, context) = portal.logged_in(&headers, "/valj").await?;
    if let CitizenIdentity::Patient(_) = portal.fhir.citizen_identity(&context).await? {
        return Ok(redirect("/", None));
    }
    let patients = portal.allowed_patients(&context).await?;
    // One plan to see: nothing to choose.
    if let [(id, _)] = patients.as_slice() {
        return Ok(redirect("/", Some(portal.patient_cookie(id)?)));
    }
    let frame = Frame {
        lang: language(&headers),
        csrf: Some(&session.csrf_token),
        nav: Nav::Other,
        path: "/valj",
        relative: true,
    };
    Ok(html(StatusCode::OK, views::choose(&frame, &patients)))
}

async fn chosen(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let (session, context) = portal.logged_in(&headers, "/valj").await?;
    let fields = portal.posted_form(&headers, &body, Some(&session))?;
    let wanted = fields
        .get("patient")
        .map(String::as_str)
        .unwrap_or_default();
    // Only a patient who allowed it: the choice is checked here, and again by every call.
    let patients = portal.allowed_patients(&context).await?;
    let (id, _) = patients
        .iter()
        .find(|(id, _)| id == wanted)
        .ok_or(PortalError::NotFound)?;
    Ok(redirect("/", Some(portal.patient_cookie(id)?)))
}

impl Portal {
    /// The cookie that remembers whose plan a relative views.
    fn patient_cookie(&self, id: &str) -> Result<HeaderValue, PortalError> {
        let secure = if self.rp()?.config().secure_cookie {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{PATIENT_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{secure}"
        ))
        .map_err(|_| PortalError::Unexpected("the patient cookie"))
    }
}
