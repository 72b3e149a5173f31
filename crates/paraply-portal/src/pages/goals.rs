//! "Mina mål": the patient's goals in their own words.

use super::*;

/// `/mal`: the goals, a new one; `/mal/{id}`: a change to one.
pub(super) fn routes() -> Router<Arc<Portal>> {
    Router::new()
        .route("/mal", get(goals).post(add_goal))
        .route("/mal/{id}", post(change_goal))
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
    let fields = portal.posted_form(&headers, &body, Some(&me.session))?;
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
    let fields = portal.posted_form(&headers, &body, Some(&me.session))?;
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
