//! An agreed time: its page, and the patient's answer to it.

use super::*;

/// `/tider/{id}`: the time, and the answer to it.
pub(super) fn routes() -> Router<Arc<Portal>> {
    Router::new().route("/tider/{id}", get(appointment).post(answer))
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
    let fields = portal.posted_form(&headers, &body, Some(&me.session))?;
    let field = |name: &str| fields.get(name).map(|v| v.trim()).unwrap_or_default();
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
}
