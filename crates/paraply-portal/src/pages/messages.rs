//! Messages with the fixed contacts, as FHIR Communications.

use super::*;

/// `/meddelanden`: the conversation, and a new message.
pub(super) fn routes() -> Router<Arc<Portal>> {
    Router::new().route("/meddelanden", get(messages).post(send_message))
}

impl Portal {
    /// The start page's data in one call into the engine, a batch of two reads (each
    /// logged as any access): the unified plan, and for the patient the number of unread
    /// messages (a count; no message is read). A relative gets no count: the messages are
    /// the patient's own.
    pub(super) async fn start_page(&self, me: &Me) -> Result<(PlanDocument, u64), PortalError> {
        let mut entries = vec![json!({"request": {"method": "GET",
            "url": format!("Patient/{}/$patientkontrakt", me.patient)}})];
        if me.relative.is_none() {
            entries.push(json!({"request": {"method": "GET", "url": format!(
                "Communication?recipient=Patient/{}&received:missing=true&_summary=count",
                me.patient
            )}}));
        }
        let mut request = FhirRequest::new(Method::Post, "");
        request.body = Some(json!({"resourceType": "Bundle", "type": "batch", "entry": entries}));
        let Outcome::BundleResponse { entries, .. } = self.call(me, request).await? else {
            return Err(PortalError::Unexpected(
                "a batch answered no batch-response",
            ));
        };
        let mut answers = entries.into_iter();
        let document = match answers.next() {
            Some(Ok(Outcome::Built(bundle))) => PlanDocument::from_bundle(&bundle)
                .ok_or(PortalError::Unexpected("the plan has no Composition"))?,
            Some(Err(error)) => return Err(error.into()),
            _ => {
                return Err(PortalError::Unexpected(
                    "$patientkontrakt answered no Bundle",
                ));
            }
        };
        let unread = match answers.next() {
            Some(Ok(Outcome::Searchset { page, .. })) => page.total.unwrap_or_default(),
            Some(Err(error)) => return Err(error.into()),
            _ => 0,
        };
        Ok((document, unread))
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
    let fields = portal.posted_form(&headers, &body, Some(&me.session))?;
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
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
