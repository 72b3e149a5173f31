//! Lines on A4 pages: glyphs from the embedded fonts, greedy word wrapping, page breaks
//! (a heading is kept with what follows), and the glyphs each font used, for the subset.

use std::collections::BTreeMap;

use ttf_parser::Face;

use crate::PdfError;
use crate::xhtml::{Block, BlockKind, Span};

/// A4 in PDF points.
pub(crate) const PAGE_WIDTH: f32 = 595.28;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;
pub(crate) const MARGIN: f32 = 56.7;
/// Where the body stops; the footer sits below.
const BODY_BOTTOM: f32 = 70.0;
pub(crate) const FOOTER_BASELINE: f32 = 36.0;

pub(crate) const BODY_SIZE: f32 = 10.5;
const LEADING: f32 = 1.4;
const BULLET_INDENT: f32 = 14.0;

pub(crate) static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
pub(crate) static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Weight {
    Regular,
    Bold,
}

impl Weight {
    pub(crate) fn index(self) -> usize {
        match self {
            Weight::Regular => 0,
            Weight::Bold => 1,
        }
    }
}

/// Text colours: body text, and the headings' dark blue (contrast > 7:1 on white).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Colour {
    Text,
    Heading,
    Quiet,
}

/// Glyphs placed on a page, with their baseline origin.
#[derive(Debug)]
pub(crate) struct Run {
    pub weight: Weight,
    pub size: f32,
    pub colour: Colour,
    pub x: f32,
    pub y: f32,
    pub glyphs: Vec<u16>,
}

#[derive(Debug, Default)]
pub(crate) struct Page {
    pub runs: Vec<Run>,
    /// Horizontal rules: (x from, x to, y).
    pub rules: Vec<(f32, f32, f32)>,
}

/// A word to wrap: parts in different weights with no break between them.
struct Word {
    parts: Vec<(Weight, String)>,
    space_before: bool,
}

pub(crate) struct Typesetter {
    faces: [Face<'static>; 2],
    /// Per font, the glyphs used and a character each stands for (ToUnicode).
    pub used: [BTreeMap<u16, char>; 2],
    pub pages: Vec<Page>,
    /// The top of the next line, in PDF coordinates (from the bottom).
    cursor: f32,
}

impl Typesetter {
    pub(crate) fn new() -> Result<Typesetter, PdfError> {
        let parse = |data: &'static [u8]| {
            Face::parse(data, 0).map_err(|_| PdfError::Font("the embedded font cannot be read"))
        };
        let mut used = [BTreeMap::new(), BTreeMap::new()];
        // Glyph 0 (.notdef) is always part of a font program.
        for map in &mut used {
            map.insert(0, '\u{fffd}');
        }
        Ok(Typesetter {
            faces: [parse(REGULAR)?, parse(BOLD)?],
            used,
            pages: vec![Page::default()],
            cursor: PAGE_HEIGHT - MARGIN,
        })
    }

    pub(crate) fn face(&self, weight: Weight) -> &Face<'static> {
        &self.faces[weight.index()]
    }

    /// The glyphs of `text` (a missing character shows as `?`), recorded as used.
    fn shape(&mut self, weight: Weight, text: &str) -> Vec<u16> {
        let face = &self.faces[weight.index()];
        let used = &mut self.used[weight.index()];
        let fallback = face.glyph_index('?').map_or(0, |g| g.0);
        text.chars()
            .filter(|c| !c.is_control())
            .map(|c| {
                let glyph = face.glyph_index(c).map_or(fallback, |g| g.0);
                used.entry(glyph)
                    .or_insert(if glyph == fallback { '?' } else { c });
                glyph
            })
            .collect()
    }

    /// The advance of a glyph in thousandths of the font size.
    pub(crate) fn advance(&self, weight: Weight, glyph: u16) -> f32 {
        let face = self.face(weight);
        let per_em = f32::from(face.units_per_em().max(1));
        face.glyph_hor_advance(ttf_parser::GlyphId(glyph))
            .map_or(0.0, |a| f32::from(a) * 1000.0 / per_em)
    }

    pub(crate) fn width(&self, weight: Weight, size: f32, text: &str) -> f32 {
        let face = self.face(weight);
        let fallback = face.glyph_index('?').map_or(0, |g| g.0);
        text.chars()
            .filter(|c| !c.is_control())
            .map(|c| self.advance(weight, face.glyph_index(c).map_or(fallback, |g| g.0)))
            .sum::<f32>()
            * size
            / 1000.0
    }

    fn page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.cursor = PAGE_HEIGHT - MARGIN;
    }

    /// Starts a new page unless `height` still fits above the footer.
    fn room_for(&mut self, height: f32) {
        if self.cursor - height < BODY_BOTTOM && self.cursor < PAGE_HEIGHT - MARGIN {
            self.new_page();
        }
    }

    pub(crate) fn space(&mut self, height: f32) {
        // Space at the top of a page is dropped.
        if self.cursor < PAGE_HEIGHT - MARGIN {
            self.cursor = (self.cursor - height).max(BODY_BOTTOM);
        }
    }

    /// Places text at an exact position, outside the flow (the footer).
    pub(crate) fn place(
        &mut self,
        page: usize,
        weight: Weight,
        size: f32,
        colour: Colour,
        (x, y): (f32, f32),
        text: &str,
    ) {
        let glyphs = self.shape(weight, text);
        if let Some(page) = self.pages.get_mut(page) {
            page.runs.push(Run {
                weight,
                size,
                colour,
                x,
                y,
                glyphs,
            });
        }
    }

    pub(crate) fn rule(&mut self) {
        let y = self.cursor - 4.0;
        self.page().rules.push((MARGIN, PAGE_WIDTH - MARGIN, y));
        self.cursor = y - 8.0;
    }

    /// A heading kept together with at least `keep` of what follows it.
    pub(crate) fn heading(&mut self, text: &str, size: f32, space_before: f32, keep: f32) {
        self.space(space_before);
        self.room_for(size * LEADING + keep);
        let spans = [Span {
            text: text.to_owned(),
            bold: true,
        }];
        self.lines(&spans, size, Colour::Heading, MARGIN, None);
    }

    /// A block of a section's narrative.
    pub(crate) fn block(&mut self, block: &Block) {
        match block.kind {
            BlockKind::Heading => {
                self.space(4.0);
                self.room_for(BODY_SIZE * LEADING * 3.0);
                let bold: Vec<Span> = block
                    .spans
                    .iter()
                    .map(|span| Span {
                        text: span.text.clone(),
                        bold: true,
                    })
                    .collect();
                self.lines(&bold, BODY_SIZE + 1.0, Colour::Text, MARGIN, None);
                self.space(1.0);
            }
            BlockKind::Paragraph => {
                self.lines(&block.spans, BODY_SIZE, Colour::Text, MARGIN, None);
                self.space(4.0);
            }
            BlockKind::Item { depth, bullet } => {
                let indent = MARGIN + BULLET_INDENT * f32::from(depth.min(4));
                let mark = match (bullet, depth) {
                    (false, _) => None,
                    (true, 1) => Some("•"),
                    (true, _) => Some("–"),
                };
                self.lines(&block.spans, BODY_SIZE, Colour::Text, indent, mark);
                self.space(2.5);
            }
        }
    }

    /// Wraps spans into lines from `left` to the right margin, breaking pages as needed;
    /// `bullet` hangs left of the first line.
    pub(crate) fn lines(
        &mut self,
        spans: &[Span],
        size: f32,
        colour: Colour,
        left: f32,
        bullet: Option<&str>,
    ) {
        let available = (PAGE_WIDTH - MARGIN - left).max(size * 4.0);
        let mut first = true;
        for line in self.wrap(spans, size, available) {
            self.room_for(size * LEADING);
            let baseline = self.cursor - size;
            if first && let Some(mark) = bullet {
                let page = self.pages.len().saturating_sub(1);
                self.place(
                    page,
                    Weight::Regular,
                    size,
                    colour,
                    (left - BULLET_INDENT * 0.8, baseline),
                    mark,
                );
            }
            first = false;
            // Parts of this line in one weight share a run; the bullet is a run of its own.
            let line_start = self.page().runs.len();
            let mut x = left;
            for (weight, text, space_before) in line {
                let run_text = if space_before {
                    format!(" {text}")
                } else {
                    text
                };
                let glyphs = self.shape(weight, &run_text);
                let advance: f32 = glyphs.iter().map(|g| self.advance(weight, *g)).sum();
                let page = self.page();
                let joins = page.runs.len() > line_start;
                match page.runs.last_mut() {
                    Some(last) if joins && last.weight == weight => {
                        last.glyphs.extend(glyphs);
                    }
                    _ => page.runs.push(Run {
                        weight,
                        size,
                        colour,
                        x,
                        y: baseline,
                        glyphs,
                    }),
                }
                x += advance * size / 1000.0;
            }
            self.cursor -= size * LEADING;
        }
    }

    /// Greedy wrapping: each line is its parts as (weight, text, space before).
    fn wrap(&self, spans: &[Span], size: f32, available: f32) -> Vec<Vec<(Weight, String, bool)>> {
        let mut lines = Vec::new();
        let mut line: Vec<(Weight, String, bool)> = Vec::new();
        let mut used = 0.0;
        for word in words(spans) {
            let space = if word.space_before && !line.is_empty() {
                let weight = word.parts.first().map_or(Weight::Regular, |p| p.0);
                self.width(weight, size, " ")
            } else {
                0.0
            };
            let width: f32 = word
                .parts
                .iter()
                .map(|(weight, text)| self.width(*weight, size, text))
                .sum();
            if !line.is_empty() && used + space + width > available {
                lines.push(std::mem::take(&mut line));
                used = 0.0;
            }
            if line.is_empty() && width > available {
                // A word longer than the line (a URL, a long code) is cut where it must.
                for (weight, text) in word.parts {
                    for c in text.chars() {
                        let w = self.width(weight, size, &c.to_string());
                        if used + w > available && !line.is_empty() {
                            lines.push(std::mem::take(&mut line));
                            used = 0.0;
                        }
                        line.push((weight, c.to_string(), false));
                        used += w;
                    }
                }
                continue;
            }
            let mut space_before = word.space_before && !line.is_empty();
            used += if space_before { space } else { 0.0 };
            for (weight, text) in word.parts {
                line.push((weight, text, space_before));
                space_before = false;
            }
            used += width;
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }
}

/// The words of spans: split at ASCII spaces; a word may change weight inside.
fn words(spans: &[Span]) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut space_pending = false;
    let mut open = false;
    for span in spans {
        let weight = if span.bold {
            Weight::Bold
        } else {
            Weight::Regular
        };
        let mut rest = span.text.as_str();
        while !rest.is_empty() {
            if rest.starts_with(|c: char| c.is_ascii_whitespace()) {
                rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
                space_pending = true;
                open = false;
                continue;
            }
            let end = rest
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            let piece = rest[..end].to_owned();
            rest = &rest[end..];
            match words.last_mut() {
                Some(word) if open => word.parts.push((weight, piece)),
                _ => words.push(Word {
                    parts: vec![(weight, piece)],
                    space_before: space_pending,
                }),
            }
            space_pending = false;
            open = true;
        }
    }
    words
}
