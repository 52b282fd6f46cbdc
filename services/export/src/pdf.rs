//! The PDF writer: A4 pages set in the standard Helvetica faces (not embedded; every PDF
//! reader has them), text wrapped by Helvetica's glyph widths, page breaks that keep a heading
//! with what follows it, and a footer with the closing line and "Page i of n" on every page.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::outline::{outline, Block, Style, CLOSING};
use crate::winansi::{encode, Encoded, Face};
use crate::ExportedConversation;

/// A4, in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN_X: f32 = 56.7;
const MARGIN_TOP: f32 = 56.7;
/// The text area ends here; the footer sits below it.
const MARGIN_BOTTOM: f32 = 70.0;
const FOOTER_BASELINE: f32 = 40.0;
const FOOTER_SIZE: f32 = 8.0;
const TEXT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;
/// Room a heading keeps below itself for the start of what it heads.
const KEEP_ROOM: f32 = 2.0 * 14.0;

/// What the PDF says when it had to replace characters.
pub(crate) const REPLACED_NOTE: &str = "Some characters in this conversation have no glyph in the \
standard PDF font used here and are shown as \"?\". The DOCX export keeps the original text.";

/// How a paragraph is set.
struct Spec {
    face: Face,
    size: f32,
    leading: f32,
    before: f32,
    after: f32,
    indent: f32,
    gray: f32,
    /// Start a new page rather than leave this paragraph last on one.
    keep_with_next: bool,
    /// A rule left of the text (quotes).
    bar: bool,
    /// A bullet before the first line, continuation lines aligned after it.
    bullet: bool,
}

fn spec(style: Style) -> Spec {
    let base = Spec {
        face: Face::Regular,
        size: 10.5,
        leading: 14.0,
        before: 0.0,
        after: 6.0,
        indent: 0.0,
        gray: 0.0,
        keep_with_next: false,
        bar: false,
        bullet: false,
    };
    match style {
        Style::Title => Spec {
            face: Face::Bold,
            size: 18.0,
            leading: 22.0,
            keep_with_next: true,
            ..base
        },
        Style::Meta => Spec {
            size: 9.0,
            leading: 12.0,
            after: 2.0,
            gray: 0.35,
            keep_with_next: true,
            ..base
        },
        Style::TurnHeading => Spec {
            face: Face::Bold,
            size: 14.0,
            leading: 18.0,
            before: 18.0,
            after: 4.0,
            keep_with_next: true,
            ..base
        },
        Style::Section => Spec {
            face: Face::Bold,
            size: 11.5,
            leading: 15.0,
            before: 8.0,
            after: 3.0,
            keep_with_next: true,
            ..base
        },
        Style::Question => Spec {
            face: Face::Bold,
            ..base
        },
        Style::Body => base,
        Style::SourceHeading => Spec {
            face: Face::Bold,
            size: 10.0,
            leading: 13.5,
            before: 6.0,
            after: 1.0,
            keep_with_next: true,
            ..base
        },
        Style::Quote => Spec {
            face: Face::Oblique,
            size: 10.0,
            leading: 13.5,
            indent: 16.0,
            gray: 0.2,
            bar: true,
            ..base
        },
        Style::Note => Spec {
            size: 9.5,
            leading: 12.5,
            after: 2.0,
            gray: 0.25,
            keep_with_next: true,
            ..base
        },
        Style::NoteItem => Spec {
            size: 9.5,
            leading: 12.5,
            after: 2.0,
            indent: 12.0,
            gray: 0.25,
            bullet: true,
            ..base
        },
        Style::Notice => Spec {
            face: Face::Oblique,
            size: 9.0,
            leading: 12.0,
            before: 4.0,
            after: 4.0,
            gray: 0.25,
            ..base
        },
        Style::Closing => Spec {
            face: Face::Oblique,
            size: 9.0,
            leading: 12.0,
            before: 18.0,
            gray: 0.35,
            ..base
        },
    }
}

/// A line of text placed on a page.
struct Line {
    face: Face,
    size: f32,
    gray: f32,
    x: f32,
    baseline: f32,
    text: Vec<u8>,
}

/// A rule left of a quote: x, bottom, top.
type Bar = (f32, f32, f32);

#[derive(Default)]
struct Page {
    lines: Vec<Line>,
    bars: Vec<Bar>,
}

/// Places paragraphs on pages, top to bottom.
struct Layout {
    /// The pages before the current one.
    pages: Vec<Page>,
    current: Page,
    /// The top of the free space on the current page.
    y: f32,
    /// Nothing placed on the current page yet.
    at_top: bool,
}

impl Layout {
    fn new() -> Self {
        Self {
            pages: Vec::new(),
            current: Page::default(),
            y: PAGE_HEIGHT - MARGIN_TOP,
            at_top: true,
        }
    }

    fn new_page(&mut self) {
        self.pages.push(std::mem::take(&mut self.current));
        self.y = PAGE_HEIGHT - MARGIN_TOP;
        self.at_top = true;
    }

    /// All the pages, the current one last.
    fn finish(mut self) -> Vec<Page> {
        self.pages.push(self.current);
        self.pages
    }

    fn place(&mut self, spec: &Spec, text: &[u8]) {
        let bullet: &[u8] = if spec.bullet { b"\x95 " } else { b"" };
        let bullet_width = spec.face.width(bullet, spec.size);
        let width = TEXT_WIDTH - spec.indent - bullet_width;
        let lines = wrap(text, spec.face, spec.size, width);
        if !self.at_top {
            self.y -= spec.before;
        }
        if spec.keep_with_next && !self.at_top {
            #[allow(clippy::cast_precision_loss)]
            let height = lines.len() as f32 * spec.leading;
            if self.y - height - KEEP_ROOM < MARGIN_BOTTOM {
                self.new_page();
            }
        }
        for (i, line) in lines.into_iter().enumerate() {
            if self.y - spec.leading < MARGIN_BOTTOM && !self.at_top {
                self.new_page();
            }
            let top = self.y;
            let baseline = top - (spec.leading - spec.size) / 2.0 - spec.size * 0.78;
            let x = MARGIN_X + spec.indent;
            let (x, text) = if i == 0 && !bullet.is_empty() {
                let mut text = bullet.to_vec();
                text.extend_from_slice(&line);
                (x, text)
            } else {
                (x + bullet_width, line)
            };
            let page = &mut self.current;
            if spec.bar {
                page.bars.push((MARGIN_X + 4.0, top - spec.leading, top));
            }
            if !text.is_empty() {
                page.lines.push(Line {
                    face: spec.face,
                    size: spec.size,
                    gray: spec.gray,
                    x,
                    baseline,
                    text,
                });
            }
            self.y -= spec.leading;
            self.at_top = false;
        }
        self.y -= spec.after;
    }
}

/// Breaks `text` (WinAnsi, `\n` for forced breaks) into lines no wider than `width` points,
/// at spaces; a word wider than a whole line is broken between characters. Runs of spaces
/// collapse to one.
fn wrap(text: &[u8], face: Face, size: f32, width: f32) -> Vec<Vec<u8>> {
    let space = face.width(b" ", size);
    let mut lines = Vec::new();
    for hard_line in text.split(|&b| b == b'\n') {
        let mut line: Vec<u8> = Vec::new();
        let mut line_width = 0.0;
        for word in hard_line.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let word_width = face.width(word, size);
            if !line.is_empty() && line_width + space + word_width <= width {
                line.push(b' ');
                line.extend_from_slice(word);
                line_width += space + word_width;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            if word_width <= width {
                line.extend_from_slice(word);
                line_width = word_width;
            } else {
                // Too long for any line: as many characters as fit, at least one per line.
                line_width = 0.0;
                for &byte in word {
                    let w = face.width(&[byte], size);
                    if !line.is_empty() && line_width + w > width {
                        lines.push(std::mem::take(&mut line));
                        line_width = 0.0;
                    }
                    line.push(byte);
                    line_width += w;
                }
            }
        }
        lines.push(line);
    }
    lines
}

fn font_name(face: Face) -> Name<'static> {
    match face {
        Face::Regular => Name(b"F1"),
        Face::Bold => Name(b"F2"),
        Face::Oblique => Name(b"F3"),
    }
}

pub(crate) fn write(conversation: &ExportedConversation) -> Vec<u8> {
    render(conversation, &lay_out(&outline(conversation)))
}

/// Places the outline's paragraphs on pages. When characters had to be replaced, a note
/// saying so follows the heading, before any of them.
fn lay_out(blocks: &[Block]) -> Vec<Page> {
    let mut encoded: Vec<(Style, Encoded)> = blocks
        .iter()
        .map(|Block { style, text }| (*style, encode(text)))
        .collect();
    if encoded.iter().any(|(_, e)| e.replaced > 0) {
        let after_heading = encoded
            .iter()
            .position(|(style, _)| !matches!(style, Style::Title | Style::Meta))
            .unwrap_or(encoded.len());
        encoded.insert(after_heading, (Style::Notice, encode(REPLACED_NOTE)));
    }
    let mut layout = Layout::new();
    for (style, text) in &encoded {
        layout.place(&spec(*style), &text.bytes);
    }
    layout.finish()
}

fn render(conversation: &ExportedConversation, pages: &[Page]) -> Vec<u8> {
    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let info_id = Ref::new(3);
    let fonts = [
        (Face::Regular, Ref::new(4), "Helvetica"),
        (Face::Bold, Ref::new(5), "Helvetica-Bold"),
        (Face::Oblique, Ref::new(6), "Helvetica-Oblique"),
    ];
    let first_page = 7;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(ref_number(first_page + 2 * i)))
        .collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().copied())
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    {
        let mut info = pdf.document_info(info_id);
        let title = conversation.title.trim();
        info.title(TextStr(if title.is_empty() {
            "Conversation"
        } else {
            title
        }));
        info.creator(TextStr("Vellum"));
        info.producer(TextStr("Vellum"));
        info.finish();
    }
    for (_, id, base) in fonts {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    let total = pages.len();
    for (i, page) in pages.iter().enumerate() {
        let page_id = Ref::new(ref_number(first_page + 2 * i));
        let content_id = Ref::new(ref_number(first_page + 2 * i + 1));
        let content = page_content(page, i + 1, total);
        {
            let mut writer = pdf.page(page_id);
            writer
                .parent(tree_id)
                .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
                .contents(content_id);
            let mut resources = writer.resources();
            let mut font_dict = resources.fonts();
            for (face, id, _) in fonts {
                font_dict.pair(font_name(face), id);
            }
            font_dict.finish();
            resources.finish();
            writer.finish();
        }
        pdf.stream(content_id, &content);
    }
    pdf.finish()
}

/// Object numbers are small (two per page, and pages are bounded by the text), but saturate
/// rather than wrap.
fn ref_number(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn page_content(page: &Page, number: usize, total: usize) -> Vec<u8> {
    let mut content = Content::new();

    if !page.bars.is_empty() {
        content.set_fill_gray(0.75);
        for &(x, bottom, top) in &page.bars {
            content.rect(x, bottom, 1.5, top - bottom);
        }
        content.fill_nonzero();
    }

    content.begin_text();
    let mut current: Option<(Face, f32)> = None;
    let mut gray = None;
    for line in &page.lines {
        if current != Some((line.face, line.size)) {
            content.set_font(font_name(line.face), line.size);
            current = Some((line.face, line.size));
        }
        if gray != Some(line.gray) {
            content.set_fill_gray(line.gray);
            gray = Some(line.gray);
        }
        content.set_text_matrix([1.0, 0.0, 0.0, 1.0, line.x, line.baseline]);
        content.show(Str(&line.text));
    }
    content.end_text();

    // The footer: a rule, the closing line, the page number at the right.
    content.set_stroke_gray(0.8);
    content.set_line_width(0.5);
    content.move_to(MARGIN_X, FOOTER_BASELINE + 12.0);
    content.line_to(PAGE_WIDTH - MARGIN_X, FOOTER_BASELINE + 12.0);
    content.stroke();
    let closing = encode(CLOSING).bytes;
    let page_label = encode(&format!("Page {number} of {total}")).bytes;
    let label_width = Face::Regular.width(&page_label, FOOTER_SIZE);
    content.begin_text();
    content.set_font(font_name(Face::Regular), FOOTER_SIZE);
    content.set_fill_gray(0.45);
    content.set_text_matrix([1.0, 0.0, 0.0, 1.0, MARGIN_X, FOOTER_BASELINE]);
    content.show(Str(&closing));
    content.set_text_matrix([
        1.0,
        0.0,
        0.0,
        1.0,
        PAGE_WIDTH - MARGIN_X - label_width,
        FOOTER_BASELINE,
    ]);
    content.show(Str(&page_label));
    content.end_text();

    content.finish().into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_fits_lines_to_the_width_by_glyph_widths() {
        let text = b"The quick brown fox jumps over the lazy dog and keeps on running far away";
        let width = 120.0;
        let lines = wrap(text, Face::Regular, 10.0, width);
        assert!(lines.len() > 2, "{lines:?}");
        for line in &lines {
            assert!(Face::Regular.width(line, 10.0) <= width, "{line:?}");
        }
        // Nothing lost: the words come back in order.
        let joined: Vec<u8> = lines.join(&b' ');
        assert_eq!(joined, text.to_vec());
        // Greedy: each line's next word would not have fitted.
        for pair in lines.windows(2) {
            let next_word = pair[1].split(|&b| b == b' ').next().unwrap_or_default();
            let mut longer = pair[0].clone();
            longer.push(b' ');
            longer.extend_from_slice(next_word);
            assert!(Face::Regular.width(&longer, 10.0) > width);
        }
    }

    #[test]
    fn wrap_measures_narrow_and_wide_glyphs_differently() {
        // 40 'i's (222 units) fit in a line where 40 'W's (944 units) do not.
        let narrow = wrap(&[b'i'; 40], Face::Regular, 10.0, 100.0);
        let wide = wrap(&[b'W'; 40], Face::Regular, 10.0, 100.0);
        assert_eq!(narrow.len(), 1);
        assert_eq!(wide.len(), 4, "{wide:?}");
        assert!(wide.iter().all(|l| Face::Regular.width(l, 10.0) <= 100.0));
    }

    #[test]
    fn wrap_keeps_forced_and_blank_lines() {
        let lines = wrap(b"one\n\ntwo", Face::Bold, 10.0, 500.0);
        assert_eq!(lines, vec![b"one".to_vec(), Vec::new(), b"two".to_vec()]);
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::{ExportedSource, ExportedTurn};

    /// Every line of a long, mixed conversation lies inside the text area, no wider than it.
    #[test]
    fn every_line_stays_inside_the_text_area() {
        let words = "lorem ipsum dolor sit amet, consectetur adipiscing elit WWWWWW iiiiii";
        let long = |n: usize| -> String {
            (0..n)
                .map(|i| words.split(' ').nth(i % 10).unwrap_or("x"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let turn = ExportedTurn {
            question: long(40),
            asked_at: "now".into(),
            answer: (0..30).map(|_| long(90)).collect::<Vec<_>>().join("\n\n"),
            sources: (1..=8)
                .map(|n| ExportedSource {
                    n,
                    document_title: long(12),
                    document_id: "id".into(),
                    page: 1,
                    quote: long(70),
                    cited: n % 2 == 0,
                })
                .collect(),
            uncited_sentences: vec![long(50); 3],
            invalid_citations: vec!["[99]".into()],
        };
        let conversation = ExportedConversation {
            title: long(20),
            user: "u".into(),
            exported_at: "t".into(),
            collections: vec!["c".into()],
            turns: vec![turn; 3],
        };
        let pages = lay_out(&outline(&conversation));
        assert!(pages.len() > 5);
        for (i, page) in pages.iter().enumerate() {
            assert!(!page.lines.is_empty(), "page {i} is empty");
            for line in &page.lines {
                let right = line.x + line.face.width(&line.text, line.size);
                assert!(
                    right <= PAGE_WIDTH - MARGIN_X + 0.01,
                    "too wide on page {i}"
                );
                assert!(line.x >= MARGIN_X);
                assert!(
                    line.baseline >= MARGIN_BOTTOM,
                    "below the text area on page {i}"
                );
                // Helvetica's ascender is 718/1000 of the size.
                assert!(line.baseline + 0.718 * line.size <= PAGE_HEIGHT - MARGIN_TOP);
            }
            // Lines go down the page.
            for pair in page.lines.windows(2) {
                assert!(pair[1].baseline < pair[0].baseline);
            }
            // A page never ends with a heading.
            let last = page.lines.last().map(|l| l.face);
            if i + 1 < pages.len() {
                assert_ne!(last, Some(Face::Bold), "page {i} ends with a heading");
            }
        }
    }
}
