//! The narrative of a section (`section.text.div`, XHTML) as blocks to lay out.
//!
//! The FHIR rule for documents is that the narratives *are* the human-readable
//! document, so the PDF prints them rather than reinterpreting the resources. This is
//! a forgiving reader for the small XHTML subset narratives use (`p`, `ul`/`ol`, `li`,
//! `h1`–`h6`, `b`/`strong`, `br`, character references): unknown tags are ignored, and
//! broken markup yields text, never an error.

/// How a block is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Heading,
    Paragraph,
    /// A list item at a nesting depth (1 = top level); `bullet` is false for text that
    /// continues an item after a nested list.
    Item {
        depth: u8,
        bullet: bool,
    },
}

/// A run of text in one weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub text: String,
    pub bold: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub kind: BlockKind,
    pub spans: Vec<Span>,
}

/// The blocks of a narrative `div`, in reading order; empty blocks are dropped.
pub(crate) fn blocks(xhtml: &str) -> Vec<Block> {
    let mut reader = Reader::default();
    let mut rest = xhtml;
    while !rest.is_empty() {
        match rest.find('<') {
            Some(0) => match rest.find('>') {
                Some(end) => {
                    reader.tag(&rest[1..end]);
                    rest = &rest[end + 1..];
                }
                None => {
                    reader.text(rest);
                    rest = "";
                }
            },
            Some(start) => {
                reader.text(&rest[..start]);
                rest = &rest[start..];
            }
            None => {
                reader.text(rest);
                rest = "";
            }
        }
    }
    reader.flush();
    reader.done
}

#[derive(Default)]
struct Reader {
    done: Vec<Block>,
    current: Option<Block>,
    list_depth: u8,
    bold: u32,
    /// Text after a nested list inside an item continues that item.
    in_item: bool,
}

impl Reader {
    fn flush(&mut self) {
        if let Some(mut block) = self.current.take() {
            if let Some(first) = block.spans.first_mut() {
                first.text = first.text.trim_start().to_owned();
            }
            if let Some(last) = block.spans.last_mut() {
                last.text = last.text.trim_end().to_owned();
            }
            block.spans.retain(|span| !span.text.is_empty());
            if !block.spans.is_empty() {
                self.done.push(block);
            }
        }
    }

    fn start(&mut self, kind: BlockKind) {
        self.flush();
        self.current = Some(Block {
            kind,
            spans: Vec::new(),
        });
    }

    fn tag(&mut self, inside: &str) {
        let closing = inside.starts_with('/');
        let name: String = inside
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match (name.as_str(), closing) {
            ("p" | "div" | "table" | "tr", _) => self.flush(),
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", false) => self.start(BlockKind::Heading),
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => self.flush(),
            ("ul" | "ol", false) => {
                self.flush();
                self.list_depth = self.list_depth.saturating_add(1);
            }
            ("ul" | "ol", true) => {
                self.flush();
                self.list_depth = self.list_depth.saturating_sub(1);
                self.in_item = self.list_depth > 0;
            }
            ("li", false) => {
                self.start(BlockKind::Item {
                    depth: self.list_depth.max(1),
                    bullet: true,
                });
                self.in_item = true;
            }
            ("li", true) => {
                self.flush();
                self.in_item = false;
            }
            ("b" | "strong" | "th", false) => self.bold = self.bold.saturating_add(1),
            ("b" | "strong" | "th", true) => self.bold = self.bold.saturating_sub(1),
            ("br" | "td", _) => self.text(" "),
            _ => {}
        }
    }

    fn text(&mut self, raw: &str) {
        if self.current.is_none() {
            if raw.trim().is_empty() {
                return;
            }
            let kind = if self.in_item && self.list_depth > 0 {
                BlockKind::Item {
                    depth: self.list_depth,
                    bullet: false,
                }
            } else {
                BlockKind::Paragraph
            };
            self.current = Some(Block {
                kind,
                spans: Vec::new(),
            });
        }
        let Some(block) = self.current.as_mut() else {
            return;
        };
        let bold = self.bold > 0;
        let decoded = collapse(&decode(raw), block.spans.last().map(|s| s.text.as_str()));
        match block.spans.last_mut() {
            Some(last) if last.bold == bold => last.text.push_str(&decoded),
            _ => block.spans.push(Span {
                text: decoded,
                bold,
            }),
        }
    }
}

/// Runs of ASCII white space become one space (a no-break space stays), and a space
/// right after one that ends `before` is dropped.
fn collapse(text: &str, before: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = before.is_some_and(|b| b.ends_with(' '));
    for c in text.chars() {
        if c.is_ascii_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out
}

/// Character references: the five XML entities, `&nbsp;` and numeric ones.
fn decode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| Some((entity(&rest[1..end])?, end)));
        match reference {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Span {
        Span {
            text: text.to_owned(),
            bold: false,
        }
    }

    fn bold(text: &str) -> Span {
        Span {
            text: text.to_owned(),
            bold: true,
        }
    }

    #[test]
    fn a_narrative_becomes_headings_paragraphs_and_items() {
        let div = "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Tolvan &amp; vården är överens.</p>\
            <h3>Mål</h3><ul><li>Gå till affären &#8211; pågår</li></ul>\
            <ul><li><b>SIP</b> (Samordnad plan) – aktiv<ul><li>Hemtjänst – ansvarig: Solna stad</li></ul></li></ul></div>";
        let blocks = blocks(div);
        assert_eq!(
            blocks,
            [
                Block {
                    kind: BlockKind::Paragraph,
                    spans: vec![plain("Tolvan & vården är överens.")]
                },
                Block {
                    kind: BlockKind::Heading,
                    spans: vec![plain("Mål")]
                },
                Block {
                    kind: BlockKind::Item {
                        depth: 1,
                        bullet: true
                    },
                    spans: vec![plain("Gå till affären – pågår")]
                },
                Block {
                    kind: BlockKind::Item {
                        depth: 1,
                        bullet: true
                    },
                    spans: vec![bold("SIP"), plain(" (Samordnad plan) – aktiv")]
                },
                Block {
                    kind: BlockKind::Item {
                        depth: 2,
                        bullet: true
                    },
                    spans: vec![plain("Hemtjänst – ansvarig: Solna stad")]
                },
            ]
        );
    }

    #[test]
    fn white_space_collapses_and_broken_markup_stays_text() {
        let blocks = blocks("<p>  två\n   rader  </p><p>a &unknown; b &lt; c <i>kursiv</i> < slut");
        assert_eq!(blocks[0].spans, [plain("två rader")]);
        assert_eq!(blocks[1].spans, [plain("a &unknown; b < c kursiv < slut")]);
    }

    #[test]
    fn empty_narratives_give_no_blocks() {
        assert!(blocks("").is_empty());
        assert!(blocks("<div><p> </p><ul></ul></div>").is_empty());
    }
}
