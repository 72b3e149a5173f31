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
use paraply_core::{
    CoreError, FhirRequest, Method, Outcome, Purpose, RequestContext, format_instant,
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
use crate::views::{self, AnswerForm, FieldErrors, Frame, MessageForm, Nav};
use crate::{BASE_POLICY, Portal, current_session, redirect, with_security_headers};

/// The cookie that keeps the chosen language for the browser session.
const LANGUAGE_COOKIE: &str = "paraply_lang";
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
        .route("/logg", get(access_log))
        .route("/plan.pdf", get(plan_pdf))
        .route("/tillganglighet", get(accessibility))
        .route("/sprak", post(choose_language))
        .route("/static/paraply.css", get(stylesheet))
}

/// The language the browser chose, Swedish unless it chose another.
pub(crate) fn language(headers: &HeaderMap) -> Language {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LANGUAGE_COOKIE)
        .and_then(|(_, value)| Language::from_code(value))
        .unwrap_or(Language::Sv)
}

/// A logged-in patient: their session, the context their requests run in, their Patient.
struct Me {
    session: Session,
    context: RequestContext,
    patient: ResourceId,
    lang: Language,
}

impl Me {
    fn frame<'a>(&'a self, nav: Nav, path: &'a str) -> Frame<'a> {
        Frame {
            lang: self.lang,
            csrf: Some(&self.session.csrf_token),
            nav,
            path,
        }
    }
}

impl Portal {
    /// The logged-in patient, or a redirect to the login that returns to `path`.
    async fn me(&self, headers: &HeaderMap, path: &str) -> Result<Me, PortalError> {
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
        let patient = self
            .fhir
            .own_patient(&context)
            .await?
            .ok_or(PortalError::NoPatient)?;
        Ok(Me {
            session,
            context,
            patient,
            lang: language(headers),
        })
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
        views::appointment(&me.frame(Nav::Other, &path), &appointment, &form, false),
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
struct LogParams {
    sida: Option<String>,
}

async fn access_log(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Query(params): Query<LogParams>,
) -> Result<Response, PortalError> {
    let me = portal.me(&headers, "/logg").await?;
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
