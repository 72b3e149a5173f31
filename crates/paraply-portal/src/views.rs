//! The portal's HTML: one layout and one function per page, server-rendered with maud
//! (escaping by default), working without JavaScript. Words come from [`Language`].

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use time::OffsetDateTime;

use crate::i18n::Language;
use crate::plan::{
    AppointmentView, PlanDocument, concept_text, human_name, instant, list, self_reference, text,
};

/// Which menu entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Start,
    Goals,
    Messages,
    Relatives,
    Log,
    Accessibility,
    Other,
}

/// What the layout needs besides the page's own content.
pub(crate) struct Frame<'a> {
    pub lang: Language,
    /// The session's CSRF token, when someone is logged in.
    pub csrf: Option<&'a str>,
    pub nav: Nav,
    /// Where the language form returns to (this page's path).
    pub path: &'a str,
    /// A relative viewing someone's plan: only the plan's pages are theirs.
    pub relative: bool,
}

pub(crate) fn page(frame: &Frame, title: &str, content: Markup) -> Markup {
    let lang = frame.lang;
    let current = |nav: Nav| (frame.nav == nav).then_some("page");
    html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (lang.t("site-name")) }
                link rel="stylesheet" href="/static/paraply.css";
            }
            body {
                a.skip-link href="#main" { (lang.t("skip-link")) }
                header.site-header {
                    div.container {
                        a.brand href="/" { (lang.t("site-name")) }
                        @if let Some(csrf) = frame.csrf {
                            nav.site-nav aria-label=(lang.t("nav-label")) {
                                ul {
                                    li { a href="/" aria-current=[current(Nav::Start)] { (lang.t("nav-start")) } }
                                    @if frame.relative {
                                        li { a href="/valj" { (lang.t("nav-choose")) } }
                                    } @else {
                                        li { a href="/mal" aria-current=[current(Nav::Goals)] { (lang.t("nav-goals")) } }
                                        li { a href="/meddelanden" aria-current=[current(Nav::Messages)] { (lang.t("nav-messages")) } }
                                        li { a href="/narstaende" aria-current=[current(Nav::Relatives)] { (lang.t("nav-relatives")) } }
                                        li { a href="/logg" aria-current=[current(Nav::Log)] { (lang.t("nav-log")) } }
                                    }
                                    li { a href="/plan.pdf" { (lang.t("nav-pdf")) } }
                                }
                            }
                            form.logout method="post" action="/auth/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.link-button type="submit" { (lang.t("logout")) }
                            }
                        }
                    }
                }
                main.container id="main" tabindex="-1" { (content) }
                footer.site-footer {
                    div.container {
                        form method="post" action="/sprak" {
                            div {
                                label for="lang" { (lang.t("language-label")) }
                                select id="lang" name="lang" {
                                    @for option in Language::ALL {
                                        option value=(option.code()) lang=(option.html_lang())
                                            selected[option == lang] { (lang.t(&format!("lang-{}", option.code()))) }
                                    }
                                }
                            }
                            input type="hidden" name="return_to" value=(frame.path);
                            @if let Some(csrf) = frame.csrf {
                                input type="hidden" name="csrf" value=(csrf);
                            }
                            button.button.button-secondary type="submit" { (lang.t("language-submit")) }
                        }
                        p { (lang.t("footer-help")) }
                        p { a href="/tillganglighet" aria-current=[current(Nav::Accessibility)] { (lang.t("footer-accessibility")) } }
                    }
                }
            }
        }
    }
}

/// `tisdag 3 mars 2026 kl. 14.30`, in Swedish time, in the page's language.
pub(crate) fn date_time(lang: Language, at: OffsetDateTime) -> String {
    let local = paraply_patientkontrakt::unified_plan::swedish_time(at);
    lang.t_with(
        "date-time",
        &[
            (
                "weekday",
                lang.t(&format!("weekday-{}", local.weekday().number_from_monday())),
            ),
            ("day", &local.day().to_string()),
            (
                "month",
                lang.t(&format!("month-{}", u8::from(local.month()))),
            ),
            ("year", &local.year().to_string()),
            ("hour", &format!("{:02}", local.hour())),
            ("minute", &format!("{:02}", local.minute())),
        ],
    )
}

/// `3 mars 2026` from a FHIR date (or the date part of a dateTime), as written.
pub(crate) fn date(lang: Language, fhir_date: &str) -> String {
    let parts: Vec<&str> = fhir_date
        .get(..10)
        .unwrap_or(fhir_date)
        .split('-')
        .collect();
    match parts.as_slice() {
        [year, month, day] => lang.t_with(
            "date",
            &[
                ("day", day.trim_start_matches('0')),
                (
                    "month",
                    lang.t(&format!("month-{}", month.trim_start_matches('0'))),
                ),
                ("year", year),
            ],
        ),
        _ => fhir_date.to_owned(),
    }
}

pub(crate) fn landing(frame: &Frame) -> Markup {
    let lang = frame.lang;
    page(
        frame,
        lang.t("landing-title"),
        html! {
            h1 { (lang.t("landing-title")) }
            p.lead { (lang.t("landing-intro")) }
            a.button href="/auth/login?return_to=/" { (lang.t("landing-login")) }
        },
    )
}

/// The start page: the whole patientkontrakt, section by section.
/// `may_answer`: the viewer may answer the plan's times (the patient, or a relative allowed
/// to); otherwise no time is offered as waiting for their answer.
pub(crate) fn start(
    frame: &Frame,
    document: &PlanDocument,
    unread: u64,
    may_answer: bool,
) -> Markup {
    let lang = frame.lang;
    let appointments = document.appointments();
    let waiting = appointments
        .iter()
        .filter(|a| may_answer && a.waiting_for_answer())
        .count();
    page(
        frame,
        lang.t("start-title"),
        html! {
            h1 { (lang.t("start-title")) }
            p.lead { (lang.t_with("start-for", &[("name", &document.patient_name())])) }
            @if frame.relative {
                div.notification role="region" aria-label=(lang.t("nav-relatives")) {
                    p { (lang.t_with("relative-viewing", &[("name", &document.patient_name())])) }
                }
            }
            @if unread > 0 {
                div.notification role="region" aria-labelledby="unread" {
                    p id="unread" { a href="/meddelanden" { (lang.t_with("messages-unread", &[("count", &unread.to_string())])) } }
                }
            }
            @if waiting > 0 {
                div.notification role="region" aria-labelledby="waiting" {
                    p id="waiting" { a href="#overenskomna-tider" { (lang.t_with("start-pending", &[("count", &waiting.to_string())])) } }
                }
            }
            @for section in document.sections() {
                section.section aria-labelledby=(section.code) {
                    h2 id=(section.code) { (lang.t(&format!("section-{}", section.code))) }
                    @match section.code {
                        "overenskomna-tider" => { (appointment_list(lang, &appointments, may_answer)) },
                        "planer" => {
                            (narrative(lang, section.narrative))
                            (plan_links(lang, document))
                        }
                        _ => { (narrative(lang, section.narrative)) },
                    }
                }
            }
            p { a.button.button-secondary href="/plan.pdf" { (lang.t("start-pdf")) } }
        },
    )
}

/// A section's narrative as the domain wrote it (Swedish, escaped there), marked as Swedish
/// when the page is not, so a screen reader reads it right (WCAG 3.1.2).
fn narrative(lang: Language, div: Option<&str>) -> Markup {
    let Some(div) = div else {
        return html! {};
    };
    html! {
        @if lang == Language::En {
            p.hint { (lang.t("narrative-language-note")) }
        }
        div.narrative lang="sv" { (PreEscaped(div)) }
    }
}

fn appointment_list(lang: Language, appointments: &[AppointmentView], may_answer: bool) -> Markup {
    html! {
        @if appointments.is_empty() {
            p { (lang.t("appointments-none")) }
        } @else {
            ul.list-plain {
                @for appointment in appointments {
                    @let when = appointment.start.map(|s| date_time(lang, s)).unwrap_or_default();
                    li {
                        strong { (when) } br;
                        (appointment_what(lang, appointment))
                        @if !appointment.with.is_empty() { ", " (appointment.with.join(", ")) }
                        br;
                        (status_tag(lang, appointment))
                        " "
                        @if may_answer && appointment.waiting_for_answer() {
                            a href={ "/tider/" (appointment.id) } { (lang.t_with("appointment-answer-link", &[("when", &when)])) }
                        } @else {
                            a href={ "/tider/" (appointment.id) } { (lang.t_with("appointment-show-link", &[("when", &when)])) }
                        }
                    }
                }
            }
        }
    }
}

fn appointment_what(lang: Language, appointment: &AppointmentView) -> String {
    appointment.what.clone().unwrap_or_else(|| {
        lang.t(if appointment.sip_meeting {
            "appointment-kind-sip"
        } else {
            "appointment-kind-visit"
        })
        .to_owned()
    })
}

/// The appointment's state in words: the patient's own answer while it is open, else the
/// appointment's status. Never colour alone: the words carry it.
fn status_tag(lang: Language, appointment: &AppointmentView) -> Markup {
    let (key, waiting) = match (appointment.status, appointment.patient_status) {
        ("proposed" | "pending" | "booked", Some(answer))
            if answer != "accepted" || appointment.status != "booked" =>
        {
            (
                format!("participant-status-{answer}"),
                answer == "needs-action",
            )
        }
        (status, _) => (format!("appointment-status-{status}"), false),
    };
    html! {
        strong.tag.tag-waiting[waiting] { (lang.t(&key)) }
    }
}

fn plan_links(lang: Language, document: &PlanDocument) -> Markup {
    html! {
        ul {
            @for plan in document.plans() {
                @if let Some(id) = text(plan, "id") {
                    @let title = text(plan, "title").unwrap_or(lang.t("plan-kind"));
                    li { a href={ "/planer/" (id) } { (lang.t_with("plan-show-link", &[("plan", title)])) } }
                }
            }
        }
    }
}

/// What the patient may answer; a field's error, if any, by field name.
pub(crate) struct AnswerForm<'a> {
    pub answer: Option<&'a str>,
    pub message: &'a str,
    pub wish_from: &'a str,
    pub wish_to: &'a str,
    pub errors: FieldErrors,
}

/// One appointment; the answer form when the time is open and the viewer may answer
/// (`may_answer`: the patient, or a relative allowed to answer times).
pub(crate) fn appointment(
    frame: &Frame,
    appointment: &AppointmentView,
    form: &AnswerForm,
    sent: bool,
    may_answer: bool,
) -> Markup {
    let lang = frame.lang;
    let error_of = |field: &str| {
        form.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
    };
    let title = lang.t("appointment-title");
    page(
        frame,
        &titled(lang, title, &form.errors),
        html! {
            (error_summary(lang, &form.errors))
            @if sent {
                div.notification.notification-success role="status" { p { (lang.t("answer-sent")) } }
            }
            h1 { (title) }
            dl.summary-list {
                div { dt { (lang.t("appointment-when")) } dd { (appointment.start.map(|s| date_time(lang, s)).unwrap_or_default()) } }
                div { dt { (lang.t("appointment-what")) } dd { (appointment_what(lang, appointment)) } }
                @if !appointment.with.is_empty() {
                    div { dt { (lang.t("appointment-with")) } dd { (appointment.with.join(", ")) } }
                }
                @if !appointment.places.is_empty() {
                    div { dt { (lang.t("appointment-where")) } dd { (appointment.places.join(", ")) } }
                }
                div { dt { (lang.t("appointment-status")) } dd { (status_tag(lang, appointment)) } }
            }
            @if appointment.answerable() && may_answer {
                form method="post" action={ "/tider/" (appointment.id) } novalidate {
                    input type="hidden" name="csrf" value=(frame.csrf.unwrap_or_default());
                    @let answer_error = error_of("answer");
                    div.field.field-error[answer_error.is_some()] {
                        fieldset aria-describedby=[answer_error.as_ref().map(|_| "answer-error")] {
                            legend { (lang.t("answer-legend")) }
                            @if let Some(message) = &answer_error {
                                p.error-message id="answer-error" { (message) }
                            }
                            @for (value, key) in [("accepted", "answer-accepted"), ("declined", "answer-declined"), ("tentative", "answer-tentative")] {
                                @let id = if value == "accepted" { "answer".to_owned() } else { format!("answer-{value}") };
                                div.radio {
                                    input type="radio" id=(id) name="answer" value=(value) checked[form.answer == Some(value)];
                                    label for=(id) { (lang.t(key)) }
                                }
                            }
                        }
                    }
                    @let message_error = error_of("message");
                    div.field.field-error[message_error.is_some()] {
                        label for="message" { (lang.t("answer-message")) }
                        p.hint id="message-hint" { (lang.t("answer-message-hint")) }
                        @if let Some(message) = &message_error {
                            p.error-message id="message-error" { (message) }
                        }
                        textarea id="message" name="message" rows="4" aria-describedby="message-hint" { (form.message) }
                    }
                    fieldset {
                        legend { (lang.t("answer-wish-legend")) }
                        @for (field, value, key) in [("wish_from", form.wish_from, "answer-wish-from"), ("wish_to", form.wish_to, "answer-wish-to")] {
                            @let field_error = error_of(field);
                            div.field.field-error[field_error.is_some()] {
                                label for=(field) { (lang.t(key)) }
                                p.hint id={ (field) "-hint" } { (lang.t("answer-date-hint")) }
                                @if let Some(message) = &field_error {
                                    p.error-message id={ (field) "-error" } { (message) }
                                }
                                input type="text" id=(field) name=(field) value=(value) inputmode="numeric"
                                    autocomplete="off" aria-describedby={ (field) "-hint" };
                            }
                        }
                    }
                    button.button type="submit" { (lang.t("answer-submit")) }
                }
            } @else {
                p { (lang.t("answer-closed")) }
            }
            p { a href="/" { (lang.t("appointment-back")) } }
        },
    )
}

/// One plan: what it is, who holds responsibility, goals, efforts per owner, participants.
pub(crate) fn plan(frame: &Frame, document: &PlanDocument, plan: &Value) -> Markup {
    let lang = frame.lang;
    let reference = self_reference(plan).unwrap_or_default();
    let title = text(plan, "title")
        .map(str::to_owned)
        .or_else(|| list(plan, "category").iter().find_map(concept_text))
        .unwrap_or_else(|| lang.t("plan-kind").to_owned());
    let status = text(plan, "status").unwrap_or("unknown");
    let goals: Vec<&Value> = list(plan, "goal")
        .iter()
        .filter_map(|g| text(g, "reference"))
        .filter_map(|r| document.get(r))
        .collect();
    let tasks = document.tasks_of(&reference);
    let owner_name = |task: &Value| -> String {
        match task.get("owner") {
            Some(owner) if text(owner, "reference") == Some(document.patient_reference()) => {
                lang.t("plan-you").to_owned()
            }
            Some(owner) => document
                .name_of(owner)
                .unwrap_or_else(|| lang.t("plan-unknown").to_owned()),
            None => lang.t("plan-unknown").to_owned(),
        }
    };
    let participants: Vec<String> = list(plan, "contributor")
        .iter()
        .filter_map(|c| document.name_of(c))
        .collect();
    page(
        frame,
        &title,
        html! {
            h1 { (title) }
            dl.summary-list {
                @if let Some(kind) = list(plan, "category").iter().find_map(concept_text) {
                    div { dt { (lang.t("plan-kind")) } dd { (kind) } }
                }
                div { dt { (lang.t("plan-status")) } dd { (lang.t(&format!("plan-status-{status}"))) } }
                @if let Some(author) = plan.get("author").and_then(|a| document.name_of(a)) {
                    div { dt { (lang.t("plan-responsible")) } dd { (author) } }
                }
                @if let Some(start) = plan.pointer("/period/start").and_then(Value::as_str) {
                    div { dt { (lang.t("plan-period")) } dd {
                        (date(lang, start))
                        @if let Some(end) = plan.pointer("/period/end").and_then(Value::as_str) { " – " (date(lang, end)) }
                    } }
                }
                @if let Some(description) = text(plan, "description") {
                    div { dt { (lang.t("plan-description")) } dd { (description) } }
                }
            }
            h2 { (lang.t("plan-goals")) }
            @if goals.is_empty() {
                p { (lang.t("plan-none-goals")) }
            } @else {
                ul {
                    @for goal in &goals {
                        li {
                            (goal.get("description").and_then(concept_text).unwrap_or_default())
                            " – "
                            (lang.t(&format!("goal-status-{}", text(goal, "lifecycleStatus").unwrap_or("proposed"))))
                        }
                    }
                }
            }
            h2 { (lang.t("plan-efforts")) }
            @if tasks.is_empty() {
                p { (lang.t("plan-none-efforts")) }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { (lang.t("plan-effort")) }
                        th scope="col" { (lang.t("plan-effort-owner")) }
                        th scope="col" { (lang.t("plan-effort-status")) }
                    } }
                    tbody {
                        @for task in &tasks {
                            tr {
                                td data-label=(lang.t("plan-effort")) {
                                    (text(task, "description").map(str::to_owned).or_else(|| task.get("code").and_then(concept_text)).unwrap_or_default())
                                }
                                td data-label=(lang.t("plan-effort-owner")) { (owner_name(task)) }
                                td data-label=(lang.t("plan-effort-status")) {
                                    (lang.t(&format!("task-status-{}", text(task, "status").unwrap_or("requested"))))
                                }
                            }
                        }
                    }
                }
            }
            @if !participants.is_empty() {
                h2 { (lang.t("plan-participants")) }
                ul { @for name in &participants { li { (name) } } }
            }
            p { a href="/" { (lang.t("appointment-back")) } }
        },
    )
}

/// A form's problems for the error summary: `(field id, message)`, in field order.
pub(crate) type FieldErrors = Vec<(String, String)>;

/// The error summary at the top of a page: each problem links to its field.
fn error_summary(lang: Language, errors: &FieldErrors) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 id="error-summary-title" { (lang.t("error-summary-title")) }
                ul {
                    @for (field, message) in errors {
                        li { a href={ "#" (field) } { (message) } }
                    }
                }
            }
        }
    }
}

/// The page title, prefixed when the form on it has problems (read first by screen readers).
fn titled(lang: Language, title: &str, errors: &FieldErrors) -> String {
    if errors.is_empty() {
        title.to_owned()
    } else {
        format!("{}: {title}", lang.t("error-summary-title"))
    }
}

/// "Mina mål": the patient's goals in their own words; their own can be changed and marked
/// as reached, new ones added.
pub(crate) fn goals(
    frame: &Frame,
    document: &PlanDocument,
    new_goal: &str,
    errors: &FieldErrors,
    saved: bool,
) -> Markup {
    let lang = frame.lang;
    let csrf = frame.csrf.unwrap_or_default();
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
    };
    let goals = document.goals();
    page(
        frame,
        &titled(lang, lang.t("goals-title"), errors),
        html! {
            (error_summary(lang, errors))
            @if saved {
                div.notification.notification-success role="status" { p { (lang.t("goals-saved")) } }
            }
            h1 { (lang.t("goals-title")) }
            p { (lang.t("goals-intro")) }
            @if goals.is_empty() {
                p { (lang.t("goals-none")) }
            }
            ol.list-plain {
                @for (index, goal) in goals.iter().enumerate() {
                    @let id = text(goal, "id").unwrap_or_default();
                    @let description = goal.get("description").and_then(concept_text).unwrap_or_default();
                    @let status = text(goal, "lifecycleStatus").unwrap_or("proposed");
                    li {
                        p {
                            strong { (description) } br;
                            (lang.t(&format!("goal-status-{status}"))) " · "
                            (lang.t(if document.by_patient(goal) { "goals-by-you" } else { "goals-by-care" }))
                        }
                        @if document.by_patient(goal) && status != "completed" {
                            @let field = format!("goal-{id}");
                            @let field_error = error_of(&field);
                            form method="post" action={ "/mal/" (id) } {
                                input type="hidden" name="csrf" value=(csrf);
                                div.field.field-error[field_error.is_some()] {
                                    label for=(field) { (lang.t_with("goals-edit-label", &[("number", &(index + 1).to_string())])) }
                                    @if let Some(message) = &field_error {
                                        p.error-message { (message) }
                                    }
                                    textarea id=(field) name="description" rows="2" { (description) }
                                }
                                button.button.button-secondary type="submit" name="action" value="save" { (lang.t("goals-save")) }
                                " "
                                button.button type="submit" name="action" value="reached" { (lang.t("goals-reached")) }
                            }
                        }
                    }
                }
            }
            h2 { (lang.t("goals-add-heading")) }
            @let add_error = error_of("new-goal");
            form method="post" action="/mal" {
                input type="hidden" name="csrf" value=(csrf);
                div.field.field-error[add_error.is_some()] {
                    label for="new-goal" { (lang.t("goals-add-label")) }
                    p.hint id="new-goal-hint" { (lang.t("goals-add-hint")) }
                    @if let Some(message) = &add_error {
                        p.error-message { (message) }
                    }
                    textarea id="new-goal" name="description" rows="3" aria-describedby="new-goal-hint" { (new_goal) }
                }
                button.button type="submit" { (lang.t("goals-add-submit")) }
            }
        },
    )
}

/// What the message form holds.
pub(crate) struct MessageForm<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub errors: FieldErrors,
}

/// Messages with the fixed contacts: write one, read the conversation, newest first.
/// `unread` are the ids of messages to the patient not read before this view.
pub(crate) fn messages(
    frame: &Frame,
    document: &PlanDocument,
    messages: &[Value],
    unread: &[String],
    form: &MessageForm,
    sent: bool,
) -> Markup {
    let lang = frame.lang;
    let contacts = document.contacts();
    let me = document.patient_reference();
    let error_of = |field: &str| {
        form.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
    };
    let name = |reference: Option<&Value>| {
        reference
            .and_then(|r| document.name_of(r))
            .unwrap_or_else(|| lang.t("log-unknown").to_owned())
    };
    page(
        frame,
        &titled(lang, lang.t("messages-title"), &form.errors),
        html! {
            (error_summary(lang, &form.errors))
            @if sent {
                div.notification.notification-success role="status" { p { (lang.t("messages-sent")) } }
            }
            h1 { (lang.t("messages-title")) }
            p { (lang.t("messages-intro")) }
            h2 { (lang.t("messages-write-heading")) }
            @if contacts.is_empty() {
                p { (lang.t("messages-no-contact")) }
            } @else {
                form method="post" action="/meddelanden" {
                    input type="hidden" name="csrf" value=(frame.csrf.unwrap_or_default());
                    @let to_error = error_of("to");
                    div.field.field-error[to_error.is_some()] {
                        label for="to" { (lang.t("messages-to")) }
                        @if let Some(message) = &to_error { p.error-message { (message) } }
                        select id="to" name="to" {
                            @for (reference, label) in &contacts {
                                option value=(reference) selected[form.to == reference] { (label) }
                            }
                        }
                    }
                    @let text_error = error_of("text");
                    div.field.field-error[text_error.is_some()] {
                        label for="text" { (lang.t("messages-text")) }
                        @if let Some(message) = &text_error { p.error-message { (message) } }
                        textarea id="text" name="text" rows="5" { (form.text) }
                    }
                    button.button type="submit" { (lang.t("messages-send")) }
                }
            }
            h2 { (lang.t("messages-list-heading")) }
            @if messages.is_empty() {
                p { (lang.t("messages-none")) }
            } @else {
                ul.list-plain {
                    @for message in messages {
                        @let from_me = message.pointer("/sender/reference").and_then(Value::as_str) == Some(me);
                        li {
                            p {
                                @if unread.iter().any(|id| Some(id.as_str()) == text(message, "id")) {
                                    strong.tag.tag-waiting { (lang.t("messages-new")) } " "
                                }
                                strong {
                                    @if from_me {
                                        (lang.t_with("messages-from-you", &[("to", &name(list(message, "recipient").first()))]))
                                    } @else {
                                        (lang.t_with("messages-from", &[("from", &name(message.get("sender")))]))
                                    }
                                }
                                br;
                                (text(message, "sent").and_then(instant).map(|at| date_time(lang, at)).unwrap_or_default())
                            }
                            @for part in list(message, "payload") {
                                @if let Some(content) = text(part, "contentString") {
                                    p { (content) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The relations a patient can choose for a relative (HL7 v3 RoleCode).
pub(crate) const RELATIONS: [&str; 9] = [
    "DAU",
    "SON",
    "SPS",
    "MTH",
    "FTH",
    "SIB",
    "GRNDCHILD",
    "FRND",
    "FAMMEMB",
];

/// What the relative form holds.
pub(crate) struct RelativeForm<'a> {
    pub personnummer: &'a str,
    pub given: &'a str,
    pub family: &'a str,
    pub relation: &'a str,
    pub access: &'a str,
    pub errors: FieldErrors,
}

/// The patient's relatives: who may see the plan and answer times, since when; take a
/// permission back; give a new one.
pub(crate) fn relatives(
    frame: &Frame,
    document: &PlanDocument,
    form: &RelativeForm,
    notice: Option<&str>,
) -> Markup {
    let lang = frame.lang;
    let csrf = frame.csrf.unwrap_or_default();
    let error_of = |field: &str| {
        form.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
    };
    let granted: Vec<(&Value, Vec<&Value>)> = document
        .relatives()
        .into_iter()
        .filter(|(_, consents)| !consents.is_empty())
        .collect();
    page(
        frame,
        &titled(lang, lang.t("relatives-title"), &form.errors),
        html! {
            (error_summary(lang, &form.errors))
            @if let Some(key) = notice {
                div.notification.notification-success role="status" { p { (lang.t(key)) } }
            }
            h1 { (lang.t("relatives-title")) }
            p { (lang.t("relatives-intro")) }
            @if granted.is_empty() {
                p { (lang.t("relatives-none")) }
            }
            ul.list-plain {
                @for (person, consents) in &granted {
                    @let name = human_name(person).unwrap_or_default();
                    li {
                        p {
                            strong { (name) }
                            @if let Some(relation) = list(person, "relationship").iter().find_map(concept_text) {
                                " (" (relation) ")"
                            }
                        }
                        @for consent in consents {
                            @let books = list(consent.get("provision").unwrap_or(&Value::Null), "action")
                                .iter().flat_map(|a| list(a, "coding")).any(|c| text(c, "code") == Some("book"));
                            p {
                                (lang.t(if books { "relatives-book" } else { "relatives-read" }))
                                @if let Some(start) = consent.pointer("/provision/period/start").and_then(Value::as_str) {
                                    ", " (lang.t_with("relatives-since", &[("date", &date(lang, start))]))
                                }
                            }
                            form method="post" action={ "/narstaende/" (text(consent, "id").unwrap_or_default()) } {
                                input type="hidden" name="csrf" value=(csrf);
                                button.button.button-secondary type="submit" { (lang.t_with("relatives-revoke", &[("name", &name)])) }
                            }
                        }
                    }
                }
            }
            h2 { (lang.t("relatives-add-heading")) }
            form method="post" action="/narstaende" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                @for (field, key, value, hint) in [
                    ("personnummer", "relatives-pnr", form.personnummer, Some("relatives-pnr-hint")),
                    ("given", "relatives-given", form.given, None),
                    ("family", "relatives-family", form.family, None),
                ] {
                    @let field_error = error_of(field);
                    div.field.field-error[field_error.is_some()] {
                        label for=(field) { (lang.t(key)) }
                        @if let Some(hint) = hint {
                            p.hint id={ (field) "-hint" } { (lang.t(hint)) }
                        }
                        @if let Some(message) = &field_error { p.error-message { (message) } }
                        input type="text" id=(field) name=(field) value=(value)
                            autocomplete="off" aria-describedby=[hint.map(|_| format!("{field}-hint"))];
                    }
                }
                @let relation_error = error_of("relation");
                div.field.field-error[relation_error.is_some()] {
                    label for="relation" { (lang.t("relatives-relation")) }
                    @if let Some(message) = &relation_error { p.error-message { (message) } }
                    select id="relation" name="relation" {
                        @for code in RELATIONS {
                            option value=(code) selected[form.relation == code] { (lang.t(&format!("relation-{code}"))) }
                        }
                    }
                }
                @let access_error = error_of("access");
                div.field.field-error[access_error.is_some()] {
                    fieldset {
                        legend { (lang.t("relatives-access-legend")) }
                        @if let Some(message) = &access_error { p.error-message { (message) } }
                        @for (value, key) in [("read", "relatives-access-read"), ("book", "relatives-access-book")] {
                            @let id = if value == "read" { "access".to_owned() } else { format!("access-{value}") };
                            div.radio {
                                input type="radio" id=(id) name="access" value=(value) checked[form.access == value];
                                label for=(id) { (lang.t(key)) }
                            }
                        }
                    }
                }
                button.button type="submit" { (lang.t("relatives-add-submit")) }
            }
        },
    )
}

/// A relative's choice: whose plan to view, among the patients who allowed it.
pub(crate) fn choose(frame: &Frame, patients: &[(String, String)]) -> Markup {
    let lang = frame.lang;
    page(
        frame,
        lang.t("choose-title"),
        html! {
            h1 { (lang.t("choose-title")) }
            @if patients.is_empty() {
                p { (lang.t("choose-none")) }
            } @else {
                p { (lang.t("choose-intro")) }
                ul.list-plain {
                    @for (id, name) in patients {
                        li {
                            form method="post" action="/valj" {
                                input type="hidden" name="csrf" value=(frame.csrf.unwrap_or_default());
                                input type="hidden" name="patient" value=(id);
                                button.button type="submit" { (lang.t_with("choose-submit", &[("name", name)])) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// "Vem har läst min plan": the patient's view of the access log, newest first.
pub(crate) fn access_log(frame: &Frame, bundle: &Value, next: Option<&str>) -> Markup {
    let lang = frame.lang;
    let events: Vec<&Value> = list(bundle, "entry")
        .iter()
        .filter_map(|e| e.get("resource"))
        .collect();
    page(
        frame,
        lang.t("log-title"),
        html! {
            h1 { (lang.t("log-title")) }
            p { (lang.t("log-intro")) }
            @if events.is_empty() {
                p { (lang.t("log-none")) }
            } @else {
                table {
                    caption { (lang.t("log-caption")) }
                    thead { tr {
                        th scope="col" { (lang.t("log-when")) }
                        th scope="col" { (lang.t("log-who")) }
                        th scope="col" { (lang.t("log-what")) }
                        th scope="col" { (lang.t("log-why")) }
                        th scope="col" { (lang.t("log-result")) }
                    } }
                    tbody {
                        @for event in &events {
                            tr {
                                td data-label=(lang.t("log-when")) {
                                    (text(event, "recorded").and_then(instant).map(|at| date_time(lang, at)).unwrap_or_default())
                                }
                                td data-label=(lang.t("log-who")) { (log_who(lang, event)) }
                                td data-label=(lang.t("log-what")) {
                                    (lang.t(&format!("log-action-{}", text(event, "action").unwrap_or("E"))))
                                }
                                td data-label=(lang.t("log-why")) { (log_why(lang, event)) }
                                td data-label=(lang.t("log-result")) {
                                    (lang.t(if text(event, "outcome") == Some("0") { "log-outcome-allowed" } else { "log-outcome-refused" }))
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a href={ "/logg?sida=" (next) } { (lang.t("log-more")) } }
            }
        },
    )
}

/// Who accessed: the units and care providers the event names (never the person).
fn log_who(lang: Language, event: &Value) -> String {
    let names: Vec<String> = list(event, "agent")
        .iter()
        .filter_map(|agent| {
            agent
                .pointer("/who/display")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| agent.get("who").and_then(human_name))
                .or_else(|| {
                    agent
                        .pointer("/who/reference")
                        .and_then(Value::as_str)
                        .filter(|r| r.starts_with("Patient/"))
                        .map(|_| lang.t("log-you").to_owned())
                })
        })
        .collect();
    if names.is_empty() {
        lang.t("log-unknown").to_owned()
    } else {
        names.join(", ")
    }
}

fn log_why(lang: Language, event: &Value) -> &'static str {
    let emergency = list(event, "purposeOfEvent")
        .iter()
        .flat_map(|p| list(p, "coding"))
        .any(|c| text(c, "code") == Some("ETREAT"));
    let treatment = list(event, "purposeOfEvent")
        .iter()
        .flat_map(|p| list(p, "coding"))
        .any(|c| text(c, "code") == Some("TREAT"));
    lang.t(if emergency {
        "log-purpose-ETREAT"
    } else if treatment {
        "log-purpose-TREAT"
    } else {
        "log-purpose-other"
    })
}

pub(crate) fn accessibility(frame: &Frame, contact: Option<&str>) -> Markup {
    let lang = frame.lang;
    let contact = contact.unwrap_or(lang.t("a11y-report-default"));
    page(
        frame,
        lang.t("a11y-title"),
        html! {
            h1 { (lang.t("a11y-title")) }
            p { (lang.t("a11y-intro")) }
            h2 { (lang.t("a11y-status-heading")) }
            p { (lang.t("a11y-status")) }
            h2 { (lang.t("a11y-known-heading")) }
            p { (lang.t("a11y-known")) }
            h2 { (lang.t("a11y-report-heading")) }
            p { (lang.t_with("a11y-report", &[("contact", contact)])) }
            h2 { (lang.t("a11y-supervision-heading")) }
            p { (lang.t("a11y-supervision")) }
        },
    )
}

/// A friendly error page: a title, a sentence, a way back. Never a detail of the failure.
pub(crate) fn error(frame: &Frame, title_key: &str, body_key: &str, login: bool) -> Markup {
    let lang = frame.lang;
    page(
        frame,
        lang.t(title_key),
        html! {
            h1 { (lang.t(title_key)) }
            p { (lang.t(body_key)) }
            @if login {
                p { a.button href="/auth/login?return_to=/" { (lang.t("login")) } }
            } @else {
                p { a href="/" { (lang.t("error-back")) } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_read_as_the_swedish_clock_in_each_language() {
        // 13:30 UTC in March is 14:30 in Stockholm (winter time).
        let at = datetime!(2026-03-03 13:30 UTC);
        assert_eq!(date_time(Language::Sv, at), "tisdag 3 mars 2026 kl. 14.30");
        assert_eq!(date_time(Language::En, at), "Tuesday 3 March 2026 at 14:30");
        // Summer time: 07:05 UTC in July is 09:05.
        assert_eq!(
            date_time(Language::Sv, datetime!(2026-07-01 07:05 UTC)),
            "onsdag 1 juli 2026 kl. 09.05"
        );
        assert_eq!(date(Language::Sv, "2027-01-09"), "9 januari 2027");
    }

    #[test]
    fn a_relative_chooses_among_the_patients_who_allowed_it() {
        let frame = Frame {
            lang: Language::Sv,
            csrf: Some("t"),
            nav: Nav::Other,
            path: "/valj",
            relative: true,
        };
        let patients = [
            ("p1".to_owned(), "Tolvan Tolvansson".to_owned()),
            ("p2".to_owned(), "Karin Svensson".to_owned()),
        ];
        let html = choose(&frame, &patients).into_string();
        assert!(html.contains("Visa planen för Tolvan Tolvansson"), "{html}");
        assert!(html.contains("name=\"patient\" value=\"p2\""), "{html}");
        assert!(!html.contains("href=\"/mal\""), "{html}");
        assert!(
            choose(&frame, &[])
                .into_string()
                .contains("Ingen har gett dig")
        );
    }

    #[test]
    fn text_is_escaped() {
        let frame = Frame {
            lang: Language::Sv,
            csrf: Some("t"),
            nav: Nav::Other,
            path: "/",
            relative: false,
        };
        let html = page(&frame, "<script>", html! { p { "<b>" } }).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"sv\">"),
            "{html}"
        );
    }
}
