//! The portal's pages. Each handler makes the caller's request context from the session's
//! access token — the same validation, access rules and access log as the FHIR API — makes
//! one call into the engine, and renders the answer. No second path to the data.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paraply_auth::Principal;
use paraply_core::{
    Caller, CitizenIdentity, CoreError, FhirRequest, Method, Outcome, Purpose, RequestContext,
    format_instant,
};
use paraply_fhir::ResourceId;
use paraply_store::Session;
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, time};
use time::{Date, OffsetDateTime, Time};

use crate::cookie::{cross_site, csrf_matches, safe_return_to};
use crate::error::PortalError;
use crate::i18n::Language;
use crate::plan::PlanDocument;
use crate::views::{
    self, AnswerForm, FieldErrors, Frame, MessageForm, Nav, RELATIONS, RelativeForm,
};
use crate::{BASE_POLICY, Portal, current_session, redirect, with_security_headers};

/// The cookie that keeps the chosen language for the browser session.
const LANGUAGE_COOKIE: &str = "paraply_lang";
/// The cookie that keeps whose plan a relative chose to view (a Patient id).
const PATIENT_COOKIE: &str = "paraply_patient";
/// Messages shown on the messages page, newest first.
const MESSAGE_PAGE_SIZE: u32 = 100;
/// Access-log rows per page of "Vem har läst min plan".
const LOG_PAGE_SIZE: u32 = 50;
/// The longest text a patient may send in one field (a message, a goal), in characters.
const MAX_TEXT_CHARS: usize = 1000;

pub(crate) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/", get(start))
        .route("/tider/{id}", get(appointment).post(answer))
        .route("/planer/{id}", get(plan))
        .route("/mal", get(goals).post(add_goal))
        .route("/mal/{id}", post(change_goal))
        .route("/meddelanden", get(messages).post(send_message))
        .route("/narstaende", get(relatives).post(add_relative))
        .route("/narstaende/{id}", post(revoke_relative))
        .route("/valj", get(choose).post(chosen))
        .route("/logg", get(access_log))
        .route("/plan.pdf", get(plan_pdf))
        .route("/tillganglighet", get(accessibility))
        .route("/sprak", post(choose_language))
        .route("/static/paraply.css", get(stylesheet))
}

/// The value of the cookie `name`, if the browser sent it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The language the browser chose, Swedish unless it chose another.
pub(crate) fn language(headers: &HeaderMap) -> Language {
    cookie(headers, LANGUAGE_COOKIE)
        .and_then(Language::from_code)
        .unwrap_or(Language::Sv)
}

/// A logged-in patient, or a relative viewing a patient's plan: their session, the context
/// their requests run in, the Patient whose plan it is.
struct Me {
    session: Session,
    context: RequestContext,
    patient: ResourceId,
    lang: Language,
    /// For a relative, their personnummer (to find their RelatedPerson in the plan).
    relative: Option<String>,
}

impl Me {
    /// Whether this viewer may answer the plan's times: the patient, or a relative the
    /// patient allowed to.
    fn may_answer(&self, document: &PlanDocument) -> bool {
        match &self.relative {
            None => true,
            Some(personnummer) => document.may_book(personnummer),
        }
    }

    /// Pages that are the patient's own: their goals, messages, relatives, access log.
    fn patient_only(&self) -> Result<(), PortalError> {
        match self.relative {
            Some(_) => Err(PortalError::PatientOnly),
            None => Ok(()),
        }
    }

    fn frame<'a>(&'a self, nav: Nav, path: &'a str) -> Frame<'a> {
        Frame {
            lang: self.lang,
            csrf: Some(&self.session.csrf_token),
            nav,
            path,
            relative: self.relative.is_some(),
        }
    }
}

impl Portal {
    /// The logged-in patient, or a redirect to the login that returns to `path`.
    async fn me(&self, headers: &HeaderMap, path: &str) -> Result<Me, PortalError> {
        let (session, context) = self.logged_in(headers, path).await?;
        let lang = language(headers);
        let (patient, relative) = match self.fhir.citizen_identity(&context).await? {
            CitizenIdentity::Patient(patient) => (patient, None),
            // Which patient a relative views is their choice (a cookie): every call below
            // still needs that patient's consent, checked by the access rules.
            CitizenIdentity::Relative(_) => {
                let chosen = cookie(headers, PATIENT_COOKIE)
                    .and_then(|id| id.parse::<ResourceId>().ok())
                    .ok_or(PortalError::ChoosePatient)?;
                let personnummer = match &context.caller {
                    Caller::Authenticated(Principal::Citizen { personnummer, .. }) => {
                        personnummer.as_str().to_owned()
                    }
                    _ => return Err(PortalError::NoPatient),
                };
                (chosen, Some(personnummer))
            }
            CitizenIdentity::NotACitizen => return Err(PortalError::NoPatient),
        };
        Ok(Me {
            session,
            context,
            patient,
            lang,
            relative,
        })
    }

    /// The session and the request context of its access token, or a redirect to the login
    /// that returns to `path`.
    async fn logged_in(
        &self,
        headers: &HeaderMap,
        path: &str,
    ) -> Result<(Session, RequestContext), PortalError> {
        let login = || PortalError::LoginNeeded {
            return_to: path.to_owned(),
        };
        let session = current_session(headers, self.sessions.as_ref())
            .await?
            .ok_or_else(login)?;
        let authenticator = self
            .authenticator
            .as_ref()
            .ok_or_else(|| PortalError::Settings("the server runs without logins".into()))?;
        // The token is checked like any bearer token at the FHIR API: signature, issuer,
        // audience, expiry. An expired one means logging in again.
        let principal = match authenticator.authenticate(&session.access_token).await {
            Ok(principal) => principal,
            Err(error) if error.is_token_rejected() => return Err(login()),
            Err(error) => return Err(PortalError::Provider(error.to_string())),
        };
        let context = RequestContext::authenticated(
            principal,
            Purpose::Treatment,
            uuid::Uuid::new_v4().to_string(),
        );
        Ok((session, context))
    }

    /// For a relative: the patients who allowed them to see their plan, `(id, name)`.
    async fn allowed_patients(
        &self,
        context: &RequestContext,
    ) -> Result<Vec<(String, String)>, PortalError> {
        let mut request = FhirRequest::new(Method::Get, "Patient");
        request.query = vec![("_count".into(), "50".into())];
        let Outcome::Searchset { page, .. } = self.fhir.handle_as(context, request).await? else {
            return Err(PortalError::Unexpected("a search answered no searchset"));
        };
        Ok(page
            .matches
            .iter()
            .filter_map(|m| m.resource.body.as_deref())
            .filter_map(|body| serde_json::from_str::<Value>(body).ok())
            .filter_map(|patient| {
                let id = patient.get("id")?.as_str()?.to_owned();
                Some((id, crate::plan::human_name(&patient).unwrap_or_default()))
            })
            .collect())
    }

    async fn call(&self, me: &Me, request: FhirRequest) -> Result<Outcome, PortalError> {
        Ok(self.fhir.handle_as(&me.context, request).await?)
    }

    /// The unified plan: the one domain call behind the start, plan and appointment pages.
    async fn plan_bundle(&self, me: &Me) -> Result<Value, PortalError> {
        let request = FhirRequest::new(
            Method::Get,
            format!("Patient/{}/$patientkontrakt", me.patient),
        );
        match self.call(me, request).await? {
            Outcome::Built(bundle) => Ok(bundle),
            _ => Err(PortalError::Unexpected(
                "$patientkontrakt answered no Bundle",
            )),
        }
    }

    async fn document(&self, me: &Me) -> Result<PlanDocument, PortalError> {
        PlanDocument::from_bundle(&self.plan_bundle(me).await?)
            .ok_or(PortalError::Unexpected("the plan has no Composition"))
    }

    /// Checks a form post: same site, and the session's CSRF token.
    fn check_form(
        &self,
        headers: &HeaderMap,
        csrf: Option<&str>,
        session: Option<&Session>,
    ) -> Result<(), PortalError> {
        if cross_site(headers, &self.rp()?.config().origin) {
            return Err(PortalError::Forbidden(
                "cross-site form post refused".into(),
            ));
        }
        if let Some(session) = session
            && !csrf_matches(csrf.unwrap_or_default(), &session.csrf_token)
        {
            return Err(PortalError::Forbidden(
                "the form's CSRF token is missing or wrong".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

async fn start(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let lang = language(&headers);
    if current_session(&headers, portal.sessions.as_ref())
        .await?
        .is_none()
    {
        let frame = Frame {
            lang,
            csrf: None,
            nav: Nav::Start,
            path: "/",
            relative: false,
        };
        return Ok(html(StatusCode::OK, views::landing(&frame)));
    }
    let me = portal.me(&headers, "/").await?;
    let document = portal.document(&me).await?;
    let unread = portal.unread_messages(&me).await?;
    Ok(html(
        StatusCode::OK,
        views::start(&me.frame(Nav::Start, "/"), &document, unread),
    ))
}

#[derive(Deserialize)]
struct AppointmentParams {
    skickat: Option<String>,
}

async fn appointment(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<AppointmentParams>,
) -> Result<Response, PortalError> {
    let path = format!("/tider/{id}");
    let me = portal.me(&headers, &path).await?;
    let document = portal.document(&me).await?;
    let appointment = document.appointment(&id).ok_or(PortalError::NotFound)?;
    let form = AnswerForm {
        answer: None,
        message: "",
        wish_from: "",
        wish_to: "",
        errors: Vec::new(),
    };
    Ok(html(
        StatusCode::OK,
        views::appointment(
            &me.frame(Nav::Other, &path),
            &appointment,
            &form,
            params.skickat.is_some(),
            me.may_answer(&document),
        ),
    ))
}

/// The patient's answer to an appointment: accept, decline, or ask for another time (with
/// a message and a wished period). It becomes an AppointmentResponse — what the clinician's
/// system reads — written through the engine, where the agreed-time rules move the
/// Appointment.
async fn answer(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PortalError> {
    let path = format!("/tider/{id}");
    let me = portal.me(&headers, &path).await?;
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    portal.check_form(&headers, Some(field("csrf")), Some(&me.session))?;
    let lang = me.lang;

    let answer =
        Some(field("answer")).filter(|a| ["accepted", "declined", "tentative"].contains(a));
    let mut errors = FieldErrors::new();
    let mut problem =
        |field: &str, key: &str| errors.push((field.to_owned(), lang.t(key).to_owned()));
    if answer.is_none() {
        problem("answer", "error-choose-answer");
    }
    if field("message").chars().count() > MAX_TEXT_CHARS {
        problem("message", "error-message-long");
    }
    let from = parse_date(field("wish_from"));
    let to = parse_date(field("wish_to"));
    if from.is_err() {
        problem("wish_from", "error-date-from");
    }
    if to.is_err() {
        problem("wish_to", "error-date-to");
    }
    if let (Ok(Some(from)), Ok(Some(to))) = (&from, &to)
        && to < from
    {
        problem("wish_to", "error-date-order");
    }

    if errors.is_empty()
        && let Some(answer) = answer
    {
        // A relative answers on the patient's behalf, and only with the patient's consent to
        // answer times: the answer is the patient's participation (the actor stays the
        // Patient, which is also what links it to the patient for the access rules), and the
        // engine's Provenance names the relative who gave it.
        if me.relative.is_some() && !me.may_answer(&portal.document(&me).await?) {
            return Err(PortalError::Forbidden(
                "the patient has not allowed this relative to answer times".into(),
            ));
        }
        let mut response = json!({
            "resourceType": "AppointmentResponse",
            "appointment": {"reference": format!("Appointment/{id}")},
            "actor": {"reference": format!("Patient/{}", me.patient)},
            "participantStatus": answer,
        });
        if !field("message").is_empty() {
            response["comment"] = json!(field("message"));
        }
        if let Ok(Some(from)) = from {
            response["start"] = json!(swedish_instant(from, Time::MIDNIGHT));
        }
        if let Ok(Some(to)) = to {
            response["end"] = json!(swedish_instant(to, time!(23:59:59)));
        }
        let mut request = FhirRequest::new(Method::Post, "AppointmentResponse");
        request.body = Some(response);
        match portal.fhir.handle_as(&me.context, request).await {
            Ok(_) => return Ok(redirect(&format!("{path}?skickat=1"), None)),
            // The rules refused the answer (say, the time was cancelled meanwhile): the
            // patient reads why, on the form.
            Err(
                error @ (CoreError::RuleBroken { .. }
                | CoreError::Invalid(_)
                | CoreError::BadRequest { .. }),
            ) => errors.push((
                "answer".to_owned(),
                lang.t_with("error-not-saved", &[("reason", &error.to_string())]),
            )),
            Err(error) => return Err(error.into()),
        }
    }

    let document = portal.document(&me).await?;
    let appointment = document.appointment(&id).ok_or(PortalError::NotFound)?;
    let form = AnswerForm {
        answer,
        message: field("message"),
        wish_from: field("wish_from"),
        wish_to: field("wish_to"),
        errors,
    };
    Ok(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        views::appointment(
            &me.frame(Nav::Other, &path),
            &appointment,
            &form,
            false,
            me.may_answer(&document),
        ),
    ))
}

/// An optional `YYYY-MM-DD`.
fn parse_date(text: &str) -> Result<Option<Date>, ()> {
    if text.is_empty() {
        return Ok(None);
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map(Some)
        .map_err(|_| ())
}

/// The instant a Swedish wall clock shows `time` on `date`.
fn swedish_instant(date: Date, time: Time) -> String {
    let guess = date.with_time(time).assume_utc();
    let offset = paraply_patientkontrakt::unified_plan::swedish_time(guess).offset();
    date.with_time(time)
        .assume_offset(offset)
        .format(&Rfc3339)
        .unwrap_or_default()
}

async fn plan(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let path = format!("/planer/{id}");
    let me = portal.me(&headers, &path).await?;
    let document = portal.document(&me).await?;
    let plan = document.plan(&id).ok_or(PortalError::NotFound)?;
    Ok(html(
        StatusCode::OK,
        views::plan(&me.frame(Nav::Other, &path), &document, plan),
    ))
}

#[derive(Deserialize)]
struct GoalParams {
    sparat: Option<String>,
}

async fn goals(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<GoalParams>,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/mal").await?;
    me.patient_only()?;
    let document = portal.document(&me).await?;
    Ok(html(
        StatusCode::OK,
        views::goals(
            &me.frame(Nav::Goals, "/mal"),
            &document,
            "",
            &FieldErrors::new(),
            params.sparat.is_some(),
        ),
    ))
}

/// The goal text of a form, or the problem with it, for the field `field`.
fn goal_text(
    lang: Language,
    fields: &HashMap<String, String>,
    field: &str,
) -> Result<String, FieldErrors> {
    let text = fields
        .get("description")
        .map(|d| d.trim())
        .unwrap_or_default();
    let key = if text.is_empty() {
        "error-goal-empty"
    } else if text.chars().count() > MAX_TEXT_CHARS {
        "error-goal-long"
    } else {
        return Ok(text.to_owned());
    };
    Err(vec![(field.to_owned(), lang.t(key).to_owned())])
}

/// A new goal in the patient's own words, expressed by them.
async fn add_goal(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/mal").await?;
    me.patient_only()?;
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    portal.check_form(
        &headers,
        fields.get("csrf").map(String::as_str),
        Some(&me.session),
    )?;
    let text = match goal_text(me.lang, &fields, "new-goal") {
        Ok(text) => text,
        Err(errors) => {
            let typed = fields.get("description").cloned().unwrap_or_default();
            return portal.goals_again(&me, &typed, &errors).await;
        }
    };
    let patient = json!({"reference": format!("Patient/{}", me.patient)});
    let mut request = FhirRequest::new(Method::Post, "Goal");
    request.body = Some(json!({
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": text},
        "subject": patient,
        "expressedBy": patient,
        "startDate": OffsetDateTime::now_utc().date().to_string(),
    }));
    portal.call(&me, request).await?;
    Ok(redirect("/mal?sparat=1", None))
}

/// A change to one of the patient's own goals: new words, or reached. A JSON Patch, so
/// what the patient does not see (care's internal notes, I14) is kept as it is.
async fn change_goal(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/mal").await?;
    me.patient_only()?;
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    portal.check_form(
        &headers,
        fields.get("csrf").map(String::as_str),
        Some(&me.session),
    )?;
    let document = portal.document(&me).await?;
    let goal = document
        .get(&format!("Goal/{id}"))
        .filter(|goal| document.by_patient(goal))
        .ok_or(PortalError::NotFound)?;
    let version = goal
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok());
    let patch = match fields.get("action").map(String::as_str) {
        Some("reached") => json!([
            {"op": "replace", "path": "/lifecycleStatus", "value": "completed"},
            {"op": "add", "path": "/achievementStatus", "value": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                "code": "achieved", "display": "Achieved"}]}},
            {"op": "add", "path": "/statusDate", "value": OffsetDateTime::now_utc().date().to_string()},
        ]),
        _ => match goal_text(me.lang, &fields, &format!("goal-{id}")) {
            Ok(text) => json!([{"op": "add", "path": "/description", "value": {"text": text}}]),
            Err(errors) => return portal.goals_again(&me, "", &errors).await,
        },
    };
    let mut request = FhirRequest::new(Method::Patch, format!("Goal/{id}"));
    request.body = Some(patch);
    // The version the patient saw: a change made meanwhile by someone else is not overwritten.
    request.if_match = version.map(|v: u64| format!("W/\"{v}\""));
    portal.call(&me, request).await?;
    Ok(redirect("/mal?sparat=1", None))
}

impl Portal {
    /// The goals page again with the form's problems, status 422.
    async fn goals_again(
        &self,
        me: &Me,
        typed: &str,
        errors: &FieldErrors,
    ) -> Result<Response, PortalError> {
        let document = self.document(me).await?;
        Ok(html(
            StatusCode::UNPROCESSABLE_ENTITY,
            views::goals(
                &me.frame(Nav::Goals, "/mal"),
                &document,
                typed,
                errors,
                false,
            ),
        ))
    }
}

impl Portal {
    /// How many messages to the patient are unread: a count, no message read.
    async fn unread_messages(&self, me: &Me) -> Result<u64, PortalError> {
        let mut request = FhirRequest::new(Method::Get, "Communication");
        request.query = vec![
            ("recipient".into(), format!("Patient/{}", me.patient)),
            ("received:missing".into(), "true".into()),
            ("_summary".into(), "count".into()),
        ];
        match self.call(me, request).await? {
            Outcome::Searchset { page, .. } => Ok(page.total.unwrap_or_default()),
            _ => Err(PortalError::Unexpected("a count answered no searchset")),
        }
    }

    /// The patient's messages, newest first.
    async fn message_list(&self, me: &Me) -> Result<Vec<Value>, PortalError> {
        let mut request = FhirRequest::new(Method::Get, "Communication");
        request.query = vec![
            ("patient".into(), format!("Patient/{}", me.patient)),
            ("_sort".into(), "-sent".into()),
            ("_count".into(), MESSAGE_PAGE_SIZE.to_string()),
        ];
        let Outcome::Searchset { page, .. } = self.call(me, request).await? else {
            return Err(PortalError::Unexpected("a search answered no searchset"));
        };
        Ok(page
            .matches
            .iter()
            .filter_map(|m| m.resource.body.as_deref())
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect())
    }

    async fn messages_page(
        &self,
        me: &Me,
        form: &MessageForm<'_>,
        sent: bool,
    ) -> Result<Response, PortalError> {
        let document = self.document(me).await?;
        let messages = self.message_list(me).await?;
        let patient = format!("Patient/{}", me.patient);
        let unread: Vec<String> = messages
            .iter()
            .filter(|m| m.get("received").is_none())
            .filter(|m| {
                m.get("recipient")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|r| r.get("reference").and_then(Value::as_str) == Some(patient.as_str()))
            })
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        // Shown now, so read: `received` tells the clinician's system, as a FHIR element.
        let now = format_instant(OffsetDateTime::now_utc());
        for id in &unread {
            let mut request = FhirRequest::new(Method::Patch, format!("Communication/{id}"));
            request.body = Some(json!([{"op": "add", "path": "/received", "value": now}]));
            self.call(me, request).await?;
        }
        let status = if form.errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        Ok(html(
            status,
            views::messages(
                &me.frame(Nav::Messages, "/meddelanden"),
                &document,
                &messages,
                &unread,
                form,
                sent,
            ),
        ))
    }
}

#[derive(Deserialize)]
struct MessageParams {
    skickat: Option<String>,
}

async fn messages(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<MessageParams>,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/meddelanden").await?;
    me.patient_only()?;
    let form = MessageForm {
        to: "",
        text: "",
        errors: FieldErrors::new(),
    };
    portal
        .messages_page(&me, &form, params.skickat.is_some())
        .await
}

/// A message to one of the patient's fixed contacts: a FHIR `Communication`, which the
/// clinician's system finds with `Communication?recipient=…` and answers the same way.
async fn send_message(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/meddelanden").await?;
    me.patient_only()?;
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    portal.check_form(&headers, Some(field("csrf")), Some(&me.session))?;
    let document = portal.document(&me).await?;
    let mut errors = FieldErrors::new();
    if !document
        .contacts()
        .iter()
        .any(|(reference, _)| reference == field("to"))
    {
        errors.push(("to".into(), me.lang.t("error-recipient").to_owned()));
    }
    if field("text").is_empty() {
        errors.push(("text".into(), me.lang.t("error-message-empty").to_owned()));
    } else if field("text").chars().count() > MAX_TEXT_CHARS {
        errors.push(("text".into(), me.lang.t("error-message-long").to_owned()));
    }
    if !errors.is_empty() {
        let form = MessageForm {
            to: field("to"),
            text: field("text"),
            errors,
        };
        return portal.messages_page(&me, &form, false).await;
    }
    let patient = json!({"reference": format!("Patient/{}", me.patient)});
    let mut request = FhirRequest::new(Method::Post, "Communication");
    request.body = Some(json!({
        "resourceType": "Communication",
        "status": "completed",
        "subject": patient,
        "sender": patient,
        "recipient": [{"reference": field("to")}],
        "sent": format_instant(OffsetDateTime::now_utc()),
        "payload": [{"contentString": field("text")}],
    }));
    portal.call(&me, request).await?;
    Ok(redirect("/meddelanden?skickat=1", None))
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
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
    portal.check_form(&headers, Some(field("csrf")), Some(&me.session))?;
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
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    portal.check_form(
        &headers,
        fields.get("csrf").map(String::as_str),
        Some(&me.session),
    )?;
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
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    portal.check_form(
        &headers,
        fields.get("csrf").map(String::as_str),
        Some(&session),
    )?;
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

#[derive(Deserialize)]
struct LogParams {
    sida: Option<String>,
}

async fn access_log(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<LogParams>,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/logg").await?;
    me.patient_only()?;
    let mut request = FhirRequest::new(Method::Get, format!("Patient/{}/$access-log", me.patient));
    request.query = vec![("_count".into(), LOG_PAGE_SIZE.to_string())];
    if let Some(page) = params.sida {
        request.query.push(("_page".into(), page));
    }
    let Outcome::Built(bundle) = portal.call(&me, request).await? else {
        return Err(PortalError::Unexpected("$access-log answered no Bundle"));
    };
    let next = bundle
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|link| link.get("relation").and_then(Value::as_str) == Some("next"))
        .and_then(|link| link.get("url").and_then(Value::as_str))
        .and_then(|url| url.split_once('?'))
        .and_then(|(_, query)| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "_page")
                .map(|(_, value)| {
                    url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
                })
        });
    Ok(html(
        StatusCode::OK,
        views::access_log(&me.frame(Nav::Log, "/logg"), &bundle, next.as_deref()),
    ))
}

/// "Min plan" as an A4 PDF, from the same document as the start page.
async fn plan_pdf(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/plan.pdf").await?;
    let bundle = portal.plan_bundle(&me).await?;
    let language = match me.lang {
        Language::En => paraply_pdf::Language::En,
        Language::Sv | Language::Lattlast => paraply_pdf::Language::Sv,
    };
    // Laying out and compressing a PDF is CPU work: off the request threads.
    let pdf = tokio::task::spawn_blocking(move || paraply_pdf::plan_pdf(&bundle, language))
        .await
        .map_err(|_| PortalError::Unexpected("the PDF task stopped"))?
        .map_err(|error| {
            tracing::error!(%error, "the plan PDF could not be made");
            PortalError::Unexpected("the plan PDF could not be made")
        })?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"min-plan.pdf\"",
            ),
        ],
        pdf,
    )
        .into_response())
}

async fn accessibility(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let session = current_session(&headers, portal.sessions.as_ref()).await?;
    let frame = Frame {
        lang: language(&headers),
        csrf: session.as_ref().map(|s| s.csrf_token.as_str()),
        nav: Nav::Accessibility,
        path: "/tillganglighet",
        relative: false,
    };
    Ok(html(
        StatusCode::OK,
        views::accessibility(&frame, portal.accessibility_contact.as_deref()),
    ))
}

/// The language form: kept in a cookie for the browser session, then back to the page.
async fn choose_language(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PortalError> {
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let session = current_session(&headers, portal.sessions.as_ref()).await?;
    portal.check_form(
        &headers,
        fields.get("csrf").map(String::as_str),
        session.as_ref(),
    )?;
    let lang = fields
        .get("lang")
        .and_then(|code| Language::from_code(code))
        .ok_or_else(|| PortalError::BadRequest("unknown language".into()))?;
    let back = fields
        .get("return_to")
        .and_then(|path| safe_return_to(path))
        .unwrap_or("/");
    let secure = if portal.rp()?.config().secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LANGUAGE_COOKIE}={}; Path=/; SameSite=Lax{secure}",
        lang.code()
    );
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|_| PortalError::Unexpected("the language cookie"))?;
    Ok(redirect(back, Some(cookie)))
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/paraply.css"),
    )
        .into_response()
}

/// The friendly 404 page for every path nothing else serves.
pub async fn not_found(headers: HeaderMap) -> Response {
    let frame = Frame {
        lang: language(&headers),
        csrf: None,
        nav: Nav::Other,
        path: "/",
        relative: false,
    };
    with_security_headers(
        html(
            StatusCode::NOT_FOUND,
            views::error(&frame, "error-not-found-title", "error-not-found", false),
        ),
        &HeaderValue::from_static(BASE_POLICY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wished_dates_are_swedish_wall_clock_instants() {
        let date = |text| parse_date(text).unwrap().unwrap();
        assert_eq!(
            swedish_instant(date("2027-01-15"), Time::MIDNIGHT),
            "2027-01-15T00:00:00+01:00"
        );
        assert_eq!(
            swedish_instant(date("2027-07-15"), Time::MIDNIGHT),
            "2027-07-15T00:00:00+02:00"
        );
        assert_eq!(parse_date(""), Ok(None));
        assert!(parse_date("15/1/2027").is_err());
        assert!(parse_date("2027-02-30").is_err());
    }

    #[test]
    fn the_language_cookie_picks_the_language() {
        let mut headers = HeaderMap::new();
        assert_eq!(language(&headers), Language::Sv);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; paraply_lang=en"),
        );
        assert_eq!(language(&headers), Language::En);
        headers.insert(header::COOKIE, HeaderValue::from_static("paraply_lang=xx"));
        assert_eq!(language(&headers), Language::Sv);
    }
}
