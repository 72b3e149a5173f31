//! The PDF objects: pages with compressed content streams, and each font embedded as a
//! subset (only the glyphs used keep their outlines; glyph ids stay, so the text is
//! written as two-byte glyph ids with `Identity-H`) with a ToUnicode map, so the text
//! can be searched, copied and read aloud.

use miniz_oxide::deflate::compress_to_vec_zlib;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::PdfError;
use crate::layout::{BOLD, Colour, PAGE_HEIGHT, PAGE_WIDTH, REGULAR, Typesetter, Weight};

const COMPRESSION: u8 = 6;

/// What the document says about itself (the PDF's Info dictionary and language).
pub(crate) struct Meta<'a> {
    pub title: &'a str,
    pub language: &'a str,
}

pub(crate) fn write(typesetter: &Typesetter, meta: &Meta) -> Result<Vec<u8>, PdfError> {
    let mut next = 1;
    let mut new_ref = || {
        let id = Ref::new(next);
        next += 1;
        id
    };
    let catalog_id = new_ref();
    let tree_id = new_ref();
    let info_id = new_ref();
    let font_ids = [new_ref(), new_ref()];
    let font_names = [Name(b"F1"), Name(b"F2")];

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id)
        .pages(tree_id)
        .lang(TextStr(meta.language));
    pdf.document_info(info_id)
        .title(TextStr(meta.title))
        .producer(TextStr("Paraply"));

    let page_ids: Vec<(Ref, Ref)> = typesetter
        .pages
        .iter()
        .map(|_| (new_ref(), new_ref()))
        .collect();
    let count = i32::try_from(page_ids.len()).unwrap_or(i32::MAX);
    pdf.pages(tree_id)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(count);

    for (page, (page_id, content_id)) in typesetter.pages.iter().zip(&page_ids) {
        let mut writer = pdf.page(*page_id);
        writer
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .parent(tree_id)
            .contents(*content_id);
        writer
            .resources()
            .fonts()
            .pairs(font_names.iter().copied().zip(font_ids));
        writer.finish();

        let mut content = Content::new();
        if !page.rules.is_empty() {
            content.set_stroke_rgb(0.6, 0.6, 0.6).set_line_width(0.6);
            for (from, to, y) in &page.rules {
                content.move_to(*from, *y).line_to(*to, *y).stroke();
            }
        }
        for run in &page.runs {
            let (r, g, b) = match run.colour {
                Colour::Text => (0.1, 0.1, 0.1),
                Colour::Heading => (0.0, 0.22, 0.45),
                Colour::Quiet => (0.33, 0.33, 0.33),
            };
            let bytes: Vec<u8> = run.glyphs.iter().flat_map(|g| g.to_be_bytes()).collect();
            content
                .set_fill_rgb(r, g, b)
                .begin_text()
                .set_font(font_names[run.weight.index()], run.size)
                .next_line(run.x, run.y)
                .show(Str(&bytes))
                .end_text();
        }
        let compressed = compress_to_vec_zlib(&content.finish(), COMPRESSION);
        pdf.stream(*content_id, &compressed)
            .filter(Filter::FlateDecode);
    }

    for weight in [Weight::Regular, Weight::Bold] {
        let ids = FontIds {
            font: font_ids[weight.index()],
            cid: new_ref(),
            descriptor: new_ref(),
            file: new_ref(),
            unicode: new_ref(),
        };
        embed_font(&mut pdf, typesetter, weight, &ids)?;
    }
    Ok(pdf.finish())
}

struct FontIds {
    font: Ref,
    cid: Ref,
    descriptor: Ref,
    file: Ref,
    unicode: Ref,
}

fn embed_font(
    pdf: &mut Pdf,
    typesetter: &Typesetter,
    weight: Weight,
    ids: &FontIds,
) -> Result<(), PdfError> {
    let (data, base_name): (&[u8], &[u8]) = match weight {
        // A subset's name starts with six capital letters and `+` (PDF 32000-1 §9.6.4).
        Weight::Regular => (REGULAR, b"PARAPA+DejaVuSans"),
        Weight::Bold => (BOLD, b"PARAPB+DejaVuSans-Bold"),
    };
    let used = &typesetter.used[weight.index()];
    let glyphs: Vec<u16> = used.keys().copied().collect();
    let subset = subsetter::subset(data, 0, subsetter::Profile::pdf(&glyphs))
        .map_err(|_| PdfError::Font("the embedded font cannot be subset"))?;
    let face = typesetter.face(weight);
    let scale = 1000.0 / f32::from(face.units_per_em().max(1));
    let system_info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };

    pdf.type0_font(ids.font)
        .base_font(Name(base_name))
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(ids.cid)
        .to_unicode(ids.unicode);

    let mut cid = pdf.cid_font(ids.cid);
    cid.subtype(CidFontType::Type2)
        .base_font(Name(base_name))
        .system_info(system_info)
        .font_descriptor(ids.descriptor)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    let mut widths = cid.widths();
    for glyph in &glyphs {
        widths.consecutive(*glyph, [typesetter.advance(weight, *glyph)]);
    }
    widths.finish();
    cid.finish();

    let bbox = face.global_bounding_box();
    pdf.font_descriptor(ids.descriptor)
        .name(Name(base_name))
        .flags(FontFlags::NON_SYMBOLIC)
        .bbox(Rect::new(
            f32::from(bbox.x_min) * scale,
            f32::from(bbox.y_min) * scale,
            f32::from(bbox.x_max) * scale,
            f32::from(bbox.y_max) * scale,
        ))
        .italic_angle(0.0)
        .ascent(f32::from(face.ascender()) * scale)
        .descent(f32::from(face.descender()) * scale)
        .cap_height(f32::from(face.capital_height().unwrap_or(face.ascender())) * scale)
        .stem_v(match weight {
            Weight::Regular => 80.0,
            Weight::Bold => 140.0,
        })
        .font_file2(ids.file);

    let compressed = compress_to_vec_zlib(&subset, COMPRESSION);
    pdf.stream(ids.file, &compressed)
        .filter(Filter::FlateDecode)
        .pair(
            Name(b"Length1"),
            i32::try_from(subset.len()).unwrap_or(i32::MAX),
        );

    let mut cmap = UnicodeCmap::new(Name(b"Paraply-UCS"), system_info);
    for (glyph, c) in used {
        if *glyph != 0 {
            cmap.pair(*glyph, *c);
        }
    }
    let cmap = compress_to_vec_zlib(&cmap.finish(), COMPRESSION);
    pdf.cmap(ids.unicode, &cmap).filter(Filter::FlateDecode);
    Ok(())
}
