//! The PDF as a reader gets it: bytes that are a PDF, text that poppler's `pdftotext`
//! extracts (names, phone numbers, å ä ö), pages counted by `pdfinfo`. The fixture is a
//! `$patientkontrakt` document shaped like `paraply-patientkontrakt`'s output for
//! Tolvan Tolvansson (its `unified_plan/tests.rs`).
//!
//! Without poppler-utils (`apt-get install -y poppler-utils`) the extraction tests say so
//! loudly and pass: the byte-level checks still run.

use std::io::Write;
use std::process::{Command, Stdio};

use paraply_pdf::{Language, PdfError, plan_pdf};
use serde_json::{Value, json};

fn tolvan() -> Value {
    serde_json::from_str(include_str!("fixtures/tolvan.json")).expect("fixture is JSON")
}

/// Runs a poppler tool on the PDF (given on stdin); `None` when the tool is missing.
fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> Option<String> {
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            eprintln!(
                "!!!!! {tool} is not installed: SKIPPING the text checks of this test \
                 (apt-get install -y poppler-utils) !!!!!"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(pdf)
        .expect("write the PDF to the tool");
    let output = child.wait_with_output().expect("the tool runs");
    assert!(
        output.status.success(),
        "{tool} rejects the PDF: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Poppler reports damage it works around ("Syntax Error: ...") on stderr.
    assert!(
        output.stderr.is_empty(),
        "{tool} complains: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("the tool prints UTF-8"))
}

/// The text in reading order with white space collapsed, so wrapped lines read as one.
fn text_of(pdf: &[u8]) -> Option<String> {
    let text = poppler("pdftotext", &["-enc", "UTF-8", "-", "-"], pdf)?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The text as laid out, line by line.
fn lines_of(pdf: &[u8]) -> Option<String> {
    poppler("pdftotext", &["-layout", "-enc", "UTF-8", "-", "-"], pdf)
}

fn pages_of(pdf: &[u8]) -> Option<usize> {
    let info = poppler("pdfinfo", &["-"], pdf)?;
    let pages = info
        .lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .expect("pdfinfo prints Pages");
    Some(pages.trim().parse().expect("a page count"))
}

fn assert_is_pdf(pdf: &[u8]) {
    assert!(pdf.starts_with(b"%PDF-"), "starts with %PDF-");
    let end = pdf.trim_ascii_end();
    assert!(end.ends_with(b"%%EOF"), "ends with %%EOF");
}

/// A document with `goals` goals in the agreement section and nothing else.
fn with_goals(goals: usize) -> Value {
    let items: String = (1..=goals)
        .map(|n| {
            format!("<li>Mål nummer {n}: att kunna gå till affären och handla själv – pågår</li>")
        })
        .collect();
    let mut document = tolvan();
    document["entry"][0]["resource"]["section"][0]["text"]["div"] = json!(format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><h3>Mål</h3><ul>{items}</ul></div>"
    ));
    document
}

#[test]
fn the_plan_is_a_pdf_with_the_patients_contacts_in_swedish() {
    let pdf = plan_pdf(&tolvan(), Language::Sv).expect("a PDF");
    assert_is_pdf(&pdf);
    let Some(text) = text_of(&pdf) else { return };
    for expected in [
        "Min plan",
        "Tolvan Tolvansson",
        "10 april 2026",
        "Överenskommelse och mål",
        "Jag vill kunna gå till affären själv",
        "Fasta kontakter",
        "Karin Karlsson (Distriktssköterska), Vårdcentralen Älvängen",
        "Telefon 08-123 456 78",
        "Nås måndag–fredag 08:00–16:00",
        "Anna Andersson (Distriktsläkare)",
        "Telefon 08-123 450 00",
        "Kommande tider",
        "Samtal om <läkemedel> & biverkningar",
        "Hemtjänst morgon och kväll – ansvarig: Solna stad",
        "Nästa SIP-möte: måndag 4 maj kl. 13.00",
        "Det finns inga närstående registrerade.",
        "Vid frågor",
        "Skriven ut 10 april 2026",
        "Sida 1 av",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn swedish_letters_round_trip_through_text_extraction() {
    let mut document = tolvan();
    document["entry"][0]["resource"]["section"][0]["text"]["div"] = json!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>ÅÄÖ åäö Vårdcentralen Älvängen – Öckerö é ü ”citat” 1 € ≥ 2</p></div>"
    );
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = text_of(&pdf) else { return };
    assert!(
        text.contains("ÅÄÖ åäö Vårdcentralen Älvängen – Öckerö é ü ”citat” 1 € ≥ 2"),
        "{text}"
    );
}

#[test]
fn english_headings_when_asked() {
    let pdf = plan_pdf(&tolvan(), Language::En).expect("a PDF");
    assert_is_pdf(&pdf);
    let Some(text) = text_of(&pdf) else { return };
    for expected in [
        "My plan",
        "10 April 2026",
        "Agreement and goals",
        "Named contacts",
        "Coming appointments",
        "Where to turn with questions",
        "Printed 10 April 2026",
        "Page 1 of",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(!text.contains("Skriven ut"), "{text}");
}

#[test]
fn many_goals_flow_onto_more_pages_with_numbered_footers() {
    let pdf = plan_pdf(&with_goals(120), Language::Sv).expect("a PDF");
    assert_is_pdf(&pdf);
    let Some(pages) = pages_of(&pdf) else { return };
    assert!(pages > 1, "{pages} page(s)");
    let text = text_of(&pdf).expect("pdftotext is there");
    assert!(text.contains("Mål nummer 1:"), "{text}");
    assert!(text.contains("Mål nummer 120:"), "{text}");
    assert!(text.contains(&format!("Sida {pages} av {pages}")), "{text}");
    // Every page says whose plan it is.
    assert_eq!(text.matches("Min plan · Tolvan Tolvansson").count(), pages);
}

#[test]
fn long_words_and_lines_wrap_inside_the_page() {
    let long_word = "x".repeat(400);
    let long_line = "ord ".repeat(300);
    let document = json!({
        "resourceType": "Bundle", "type": "document",
        "entry": [{"resource": {"resourceType": "Composition", "section": [{
            "code": {"coding": [{"code": "planer"}]},
            "text": {"div": format!("<div><p>{long_word}</p><p>{long_line}</p></div>")}
        }]}}]
    });
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = lines_of(&pdf) else { return };
    let xs: usize = text.lines().map(|l| l.matches('x').count()).sum();
    assert_eq!(xs, 400, "every letter of the long word is printed");
    let longest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(
        longest < 140,
        "a line of {longest} characters runs off the page"
    );
}

#[test]
fn missing_parts_print_a_dash_and_do_not_fail() {
    let document = json!({
        "resourceType": "Bundle", "type": "document",
        "entry": [{"resource": {"resourceType": "Composition", "section": [
            {"code": {"coding": [{"code": "fasta-kontakter"}]}},
            {"title": "Egen rubrik", "text": {"div": "<div><p>Egen text</p></div>"}},
            {"text": {"div": 17}},
            "inte ett objekt"
        ]}}]
    });
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    assert_is_pdf(&pdf);
    let Some(text) = text_of(&pdf) else { return };
    assert!(text.contains("Fasta kontakter"), "{text}");
    assert!(text.contains("Egen rubrik"), "{text}");
    assert!(text.contains("Egen text"), "{text}");
    assert!(text.contains('—'), "{text}");
}

#[test]
fn a_document_without_sections_still_prints_its_title() {
    let document = json!({
        "resourceType": "Bundle", "type": "document",
        "entry": [{"resource": {"resourceType": "Composition"}}]
    });
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = text_of(&pdf) else { return };
    assert!(text.contains("Min plan"), "{text}");
    assert!(text.contains('—'), "{text}");
}

#[test]
fn what_is_not_a_unified_plan_document_is_an_error() {
    let cases = [
        json!(null),
        json!("Min plan"),
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": []}),
        json!({"resourceType": "Bundle", "type": "document"}),
        json!({"resourceType": "Bundle", "type": "document", "entry": [{"resource": {"resourceType": "Patient"}}]}),
        json!({"resourceType": "Bundle", "type": "document", "entry": "fel"}),
    ];
    for input in cases {
        assert!(
            matches!(
                plan_pdf(&input, Language::Sv),
                Err(PdfError::NotAPlanDocument(_))
            ),
            "{input}"
        );
    }
}

/// Also writes the example to `target/paraply-pdf/` and, with poppler, a PNG of each
/// page (`pdftoppm -png -r 50`), for looking at the layout by eye.
#[test]
fn the_example_is_written_to_target_for_a_look() {
    let pdf = plan_pdf(&tolvan(), Language::Sv).expect("a PDF");
    assert!(
        pdf.len() < 120_000,
        "the fonts are subset: {} bytes",
        pdf.len()
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("paraply-pdf");
    std::fs::create_dir_all(&dir).expect("create the directory");
    let file = dir.join("min-plan.pdf");
    std::fs::write(&file, &pdf).expect("write the PDF");
    let many = plan_pdf(&with_goals(120), Language::En).expect("a PDF");
    std::fs::write(dir.join("my-plan-many-goals.pdf"), &many).expect("write the PDF");
    match Command::new("pdftoppm")
        .args(["-png", "-r", "50"])
        .arg(&file)
        .arg(dir.join("min-plan"))
        .status()
    {
        Ok(status) => assert!(status.success(), "pdftoppm renders the PDF"),
        Err(_) => eprintln!("!!!!! pdftoppm is not installed: no PNG of the example !!!!!"),
    }
    eprintln!("example: {} ({} bytes)", file.display(), pdf.len());
}

#[test]
fn the_patient_is_named_by_the_compositions_subject_display_first() {
    let mut document = tolvan();
    document["entry"][0]["resource"]["subject"]["display"] = json!("Tolvan Ö. Tolvansson");
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = text_of(&pdf) else { return };
    assert!(text.contains("Min plan Tolvan Ö. Tolvansson"), "{text}");
}

#[test]
fn characters_the_font_lacks_print_as_question_marks() {
    let mut document = tolvan();
    document["entry"][0]["resource"]["section"][0]["text"]["div"] =
        json!("<div><p>Namn: 山田 slut\u{0007}</p></div>");
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = text_of(&pdf) else { return };
    assert!(text.contains("Namn: ?? slut "), "{text}");
}

#[test]
fn a_very_long_name_is_cut_in_the_footer_and_wrapped_under_the_title() {
    let mut document = tolvan();
    let name = "Tolvansdotter ".repeat(2_000);
    document["entry"][0]["resource"]["subject"]["display"] = json!(name.trim_end());
    let pdf = plan_pdf(&document, Language::Sv).expect("a PDF");
    let Some(text) = lines_of(&pdf) else { return };
    assert!(
        text.contains("Min plan · Tolvansdotter Tolvansdotter"),
        "{text}"
    );
    assert!(text.contains("… "), "the footer's name is cut: {text}");
    assert!(text.contains("Sida 1 av"), "{text}");
}
