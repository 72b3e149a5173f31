//! The portal's pages. Each handler makes the caller's request context from the session's
//! access token — the same validation, access rules and access log as the FHIR API — makes
//! one call into the engine, and renders the answer. No second path to the data.

mod appointments;
mod goals;
mod messages;
mod relatives;

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

use crate::cookie::{cookie, cross_site, csrf_matches, safe_return_to};
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
        .route("/planer/{id}", get(plan))
        .merge(appointments::routes())
        .merge(goals::routes())
        .merge(messages::routes())
        .merge(relatives::routes())
        .route("/logg", get(access_log))
        .route("/plan.pdf", get(plan_pdf))
        .route("/tillganglighet", get(accessibility))
        .route("/sprak", post(choose_language))
        .route("/static/paraply.css", get(stylesheet))
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

    /// A form post's fields, once it is checked: same site, and the session's CSRF token
    /// (field `csrf`) when someone is logged in.
    fn posted_form(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        session: Option<&Session>,
    ) -> Result<HashMap<String, String>, PortalError> {
        if cross_site(headers, &self.rp()?.config().origin) {
            return Err(PortalError::Forbidden(
                "cross-site form post refused".into(),
            ));
        }
        let fields: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        if let Some(session) = session
            && !csrf_matches(
                fields.get("csrf").map(String::as_str).unwrap_or_default(),
                &session.csrf_token,
            )
        {
            return Err(PortalError::Forbidden(
                "the form's CSRF token is missing or wrong".into(),
            ));
        }
        Ok(fields)
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
    let (document, unread) = portal.start_page(&me).await?;
    Ok(html(
        StatusCode::OK,
        views::start(
            &me.frame(Nav::Start, "/"),
            &document,
            unread,
            me.may_answer(&document),
        ),
    ))
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
    let session = current_session(&headers, portal.sessions.as_ref()).await?;
    let fields = portal.posted_form(&headers, &body, session.as_ref())?;
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
        include_str!("../../static/paraply.css"),
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
