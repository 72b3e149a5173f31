//! "Min plan" as an A4 PDF: [`plan_pdf`] prints the unified plan, the `$patientkontrakt`
//! document (a FHIR `document` Bundle whose Composition holds the sections), for SIP
//! meetings and for patients without e-ID.
//!
//! What it prints: the title "Min plan" with the patient's name and the document's date,
//! then every section of the Composition in the document's order, each under a heading of
//! its own (Swedish or English, from the table in `words.rs`), with the section's
//! narrative as its content; a footer on every page with the patient's name, "Skriven ut
//! <date>" and "Sida n av m". The narratives *are* the document's human-readable content
//! (FHIR's rule for documents), so this crate does not reinterpret resources and cannot
//! disagree with the portal or the FHIR API about what the plan says; their text is
//! Swedish whatever the language of the headings.
//!
//! What it does not do: read the database, decide who may see what (the document handed in
//! is already narrowed for its reader), or know FHIR beyond the JSON paths it reads — it
//! depends on no other Paraply crate, so it compiles from cold in about a minute.
//!
//! Library choice, measured cold (debug, fresh target dir, this 2-core machine shared with
//! other builds, so the figures are rough):
//! - `pdf-writer` 0.15 + `subsetter` 0.1 + `ttf-parser` 0.25 + `miniz_oxide` 0.9:
//!   **49 s** for the crate with `serde_json` and `thiserror` (18 dependencies, 81 MB
//!   target, 260 MB peak RAM); 78 s (97 MB) once the workspace builds `subsetter`,
//!   `ttf-parser` and `miniz_oxide` optimized in dev (load average 13 at the time), which
//!   makes a plan PDF ~50 ms instead of ~150–400 ms in debug tests. Chosen: the few PDF
//!   objects written by hand (`pdf.rs`), wrapping and pages in `layout.rs`; the subset
//!   fonts keep a two-page plan at ~47 KB.
//! - the same with `subsetter` 0.2: 2 min 19 s (it pulls in `skrifa`, `read-fonts`,
//!   `write-fonts`, `kurbo`); 0.1 also keeps glyph ids, so nothing needs remapping.
//! - `printpdf` 0.8.2 alone: 13 min 21 s, 217 crates, 1.7 GB target, 1.1 GB peak RAM —
//!   for layout, images and SVG a one-column text document does not need.
//!
//! å ä ö: the text is written as glyph ids of the embedded DejaVu Sans (regular and
//! bold, `fonts/`, Bitstream Vera licence with DejaVu's public-domain changes) with a
//! ToUnicode map, so every character the font has prints and extracts correctly;
//! a character it lacks prints as `?`.

mod layout;
mod pdf;
mod words;
mod xhtml;

use serde_json::Value;

use layout::{BODY_SIZE, Colour, FOOTER_BASELINE, MARGIN, PAGE_WIDTH, Typesetter, Weight};
use words::Message;

/// The language of the PDF's own words (title, headings, footer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    Sv,
    En,
}

impl Language {
    fn tag(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::En => "en",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PdfError {
    /// The input is not a `$patientkontrakt` document; says what is missing.
    #[error("not a unified plan document: {0}")]
    NotAPlanDocument(&'static str),
    /// The embedded font could not be read or subset (a build defect, not bad input).
    #[error("{0}")]
    Font(&'static str),
}

/// The unified plan (`$patientkontrakt` output: a `document` Bundle opening with its
/// Composition) as the bytes of an A4 PDF. Missing parts are skipped or print "—";
/// an input that is not such a document is a [`PdfError::NotAPlanDocument`].
pub fn plan_pdf(document: &Value, language: Language) -> Result<Vec<u8>, PdfError> {
    let plan = Plan::read(document)?;
    let missing = Message::Missing.text(language);
    let patient = plan.patient_name.unwrap_or_else(|| missing.to_owned());
    let date = plan
        .date
        .and_then(|d| words::date(d, language))
        .unwrap_or_else(|| missing.to_owned());

    let mut typesetter = Typesetter::new()?;
    let title = Message::Title.text(language);
    typesetter.heading(title, 24.0, 0.0, 0.0);
    typesetter.lines(
        &[xhtml::Span {
            text: patient.clone(),
            bold: false,
        }],
        14.0,
        Colour::Text,
        MARGIN,
        None,
    );
    typesetter.lines(
        &[xhtml::Span {
            text: date.clone(),
            bold: false,
        }],
        BODY_SIZE,
        Colour::Quiet,
        MARGIN,
        None,
    );
    typesetter.rule();

    if plan.sections.is_empty() {
        typesetter.lines(&[plain(missing)], BODY_SIZE, Colour::Text, MARGIN, None);
    }
    for section in &plan.sections {
        let heading = Message::section(section.code)
            .map(|m| m.text(language))
            .or(section.title)
            .unwrap_or(missing);
        // Kept with room for a subheading and two lines, so it never ends a page alone.
        typesetter.heading(heading, 15.0, 14.0, BODY_SIZE * 6.0);
        typesetter.space(2.0);
        let blocks = section.div.map(xhtml::blocks).unwrap_or_default();
        if blocks.is_empty() {
            typesetter.lines(&[plain(missing)], BODY_SIZE, Colour::Text, MARGIN, None);
        }
        for block in &blocks {
            typesetter.block(block);
        }
    }

    footers(&mut typesetter, language, &patient, &date);
    let meta = pdf::Meta {
        title: &format!("{title} – {patient}"),
        language: language.tag(),
    };
    pdf::write(&typesetter, &meta)
}

fn plain(text: &str) -> xhtml::Span {
    xhtml::Span {
        text: text.to_owned(),
        bold: false,
    }
}

/// "Min plan · name · Skriven ut date" on the left, "Sida n av m" on the right: a
/// loose printed sheet still says whose plan it is and when it was printed.
fn footers(typesetter: &mut Typesetter, language: Language, patient: &str, date: &str) {
    let size = 8.5;
    let pages = typesetter.pages.len();
    let left = format!(
        "{} · {patient} · {} {date}",
        Message::Title.text(language),
        Message::Printed.text(language)
    );
    for page in 0..pages {
        let number = Message::Page
            .text(language)
            .replace("{page}", &(page + 1).to_string())
            .replace("{pages}", &pages.to_string());
        let width = typesetter.width(Weight::Regular, size, &number);
        let right_x = PAGE_WIDTH - MARGIN - width;
        let left_text = shorten(typesetter, &left, size, right_x - MARGIN - 12.0);
        typesetter.place(
            page,
            Weight::Regular,
            size,
            Colour::Quiet,
            (MARGIN, FOOTER_BASELINE),
            &left_text,
        );
        typesetter.place(
            page,
            Weight::Regular,
            size,
            Colour::Quiet,
            (right_x, FOOTER_BASELINE),
            &number,
        );
    }
}

/// `text`, cut with "…" so it fits `width`.
fn shorten(typesetter: &Typesetter, text: &str, size: f32, width: f32) -> String {
    if typesetter.width(Weight::Regular, size, text) <= width {
        return text.to_owned();
    }
    let room = width - typesetter.width(Weight::Regular, size, "…");
    let mut used = 0.0;
    let mut out = String::new();
    for c in text.chars() {
        used += typesetter.width(Weight::Regular, size, c.encode_utf8(&mut [0; 4]));
        if used > room {
            break;
        }
        out.push(c);
    }
    format!("{}…", out.trim_end())
}

/// What the PDF reads from the document.
struct Plan<'d> {
    patient_name: Option<String>,
    /// The document's timestamp (or the Composition's date).
    date: Option<&'d str>,
    sections: Vec<SectionText<'d>>,
}

struct SectionText<'d> {
    code: &'d str,
    title: Option<&'d str>,
    /// `section.text.div`, XHTML.
    div: Option<&'d str>,
}

impl<'d> Plan<'d> {
    fn read(document: &'d Value) -> Result<Plan<'d>, PdfError> {
        let str_at = |value: &'d Value, key: &str| value.get(key).and_then(Value::as_str);
        if str_at(document, "resourceType") != Some("Bundle") {
            return Err(PdfError::NotAPlanDocument("not a Bundle"));
        }
        if str_at(document, "type") != Some("document") {
            return Err(PdfError::NotAPlanDocument("the Bundle is not a document"));
        }
        let entries: &[Value] = document
            .get("entry")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);
        let composition = entries
            .first()
            .and_then(|entry| entry.get("resource"))
            .filter(|resource| str_at(resource, "resourceType") == Some("Composition"))
            .ok_or(PdfError::NotAPlanDocument(
                "the document does not open with a Composition",
            ))?;

        let subject = composition.get("subject");
        let patient_name = subject
            .and_then(|s| str_at(s, "display"))
            .map(str::to_owned)
            .or_else(|| {
                let reference = subject.and_then(|s| str_at(s, "reference"));
                entries
                    .iter()
                    .find(|entry| reference.is_some() && str_at(entry, "fullUrl") == reference)
                    .or_else(|| {
                        entries.iter().find(|entry| {
                            entry
                                .get("resource")
                                .is_some_and(|r| str_at(r, "resourceType") == Some("Patient"))
                        })
                    })
                    .and_then(|entry| entry.get("resource"))
                    .and_then(human_name)
            });

        let sections = composition
            .get("section")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|section| SectionText {
                code: section
                    .get("code")
                    .and_then(|code| code.get("coding"))
                    .and_then(Value::as_array)
                    .and_then(|codings| codings.iter().find_map(|c| str_at(c, "code")))
                    .unwrap_or_default(),
                title: str_at(section, "title"),
                div: section.get("text").and_then(|text| str_at(text, "div")),
            })
            .collect();

        Ok(Plan {
            patient_name,
            date: str_at(document, "timestamp").or_else(|| str_at(composition, "date")),
            sections,
        })
    }
}

/// A HumanName in reading order: `text`, else given names and family name.
fn human_name(resource: &Value) -> Option<String> {
    let name = resource.get("name")?.as_array()?.first()?;
    if let Some(text) = name.get("text").and_then(Value::as_str) {
        return Some(text.to_owned());
    }
    let mut parts: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .map(|given| given.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    parts.extend(name.get("family").and_then(Value::as_str));
    (!parts.is_empty()).then(|| parts.join(" "))
}
