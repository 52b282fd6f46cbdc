//! What an export says, in order, as styled paragraphs; the DOCX and the PDF writers lay out
//! the same outline, so the two files carry the same text.

use crate::{ExportedConversation, ExportedSource, ExportedTurn};

/// The closing line of every export (and the PDF's page footer).
pub(crate) const CLOSING: &str = "Exported from Vellum. Quotes are verbatim from the indexed text.";

/// A paragraph's role; each writer maps it to its own styling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// The conversation's title.
    Title,
    /// Who exported it, when, from which collections; a source's status and document id.
    Meta,
    /// "Question 1", one per turn.
    TurnHeading,
    /// "Answer", "Sources", "Notes".
    Section,
    /// The question as asked.
    Question,
    /// Answer text.
    Body,
    /// "[n] Document title, page P".
    SourceHeading,
    /// A source's quote, verbatim.
    Quote,
    /// A note's lead-in ("Sentences that cite no source:").
    Note,
    /// One item of a note, set with a bullet.
    NoteItem,
    /// The closing line.
    Closing,
    /// A note about the file itself (the PDF's replaced characters); not in the outline.
    Notice,
}

/// One paragraph. `text` may hold `\n` for a line break inside the paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub style: Style,
    pub text: String,
}

impl Block {
    fn new(style: Style, text: impl Into<String>) -> Self {
        Self {
            style,
            text: text.into(),
        }
    }
}

/// The paragraphs of an export of `conversation`.
pub(crate) fn outline(conversation: &ExportedConversation) -> Vec<Block> {
    let mut blocks = vec![
        Block::new(
            Style::Title,
            or_default(&conversation.title, "Conversation"),
        ),
        Block::new(
            Style::Meta,
            format!(
                "Exported by {} on {}",
                or_default(&conversation.user, "an unknown user"),
                or_default(&conversation.exported_at, "an unknown date")
            ),
        ),
    ];
    let collections: Vec<&str> = conversation
        .collections
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    blocks.push(Block::new(
        Style::Meta,
        if collections.is_empty() {
            "Collections: none recorded".to_string()
        } else {
            format!("Collections: {}", collections.join(", "))
        },
    ));
    if conversation.turns.is_empty() {
        blocks.push(Block::new(
            Style::Body,
            "This conversation has no questions.",
        ));
    }
    for (i, turn) in conversation.turns.iter().enumerate() {
        turn_blocks(&mut blocks, i + 1, turn);
    }
    blocks.push(Block::new(Style::Closing, CLOSING));
    blocks
}

fn turn_blocks(blocks: &mut Vec<Block>, number: usize, turn: &ExportedTurn) {
    blocks.push(Block::new(Style::TurnHeading, format!("Question {number}")));
    if !turn.asked_at.trim().is_empty() {
        blocks.push(Block::new(
            Style::Meta,
            format!("Asked {}", turn.asked_at.trim()),
        ));
    }
    blocks.push(Block::new(
        Style::Question,
        or_default(&turn.question, "(no question text)"),
    ));

    blocks.push(Block::new(Style::Section, "Answer"));
    let paragraphs = paragraphs(&turn.answer);
    if paragraphs.is_empty() {
        blocks.push(Block::new(Style::Body, "(no answer text)"));
    }
    blocks.extend(paragraphs.into_iter().map(|p| Block::new(Style::Body, p)));

    blocks.push(Block::new(Style::Section, "Sources"));
    if turn.sources.is_empty() {
        blocks.push(Block::new(
            Style::Body,
            "No sources were given to the model.",
        ));
    }
    // Cited sources first, each group in the order the model numbered them.
    let mut sources: Vec<&ExportedSource> = turn.sources.iter().collect();
    sources.sort_by_key(|s| (!s.cited, s.n));
    for source in sources {
        let title = or_default(&source.document_title, "Untitled document");
        blocks.push(Block::new(
            Style::SourceHeading,
            format!("[{}] {}, page {}", source.n, title, source.page),
        ));
        let status = if source.cited {
            "Cited in the answer"
        } else {
            "Given to the model but not cited"
        };
        let meta = if source.document_id.trim().is_empty() {
            status.to_string()
        } else {
            format!("{status} \u{b7} document {}", source.document_id.trim())
        };
        blocks.push(Block::new(Style::Meta, meta));
        let quote = source.quote.trim_matches(|c: char| c == '\n' || c == '\r');
        blocks.push(if quote.trim().is_empty() {
            Block::new(Style::Meta, "(no quote recorded)")
        } else {
            Block::new(Style::Quote, quote)
        });
    }

    let uncited: Vec<&str> = non_empty(&turn.uncited_sentences);
    let invalid: Vec<&str> = non_empty(&turn.invalid_citations);
    if !uncited.is_empty() || !invalid.is_empty() {
        blocks.push(Block::new(Style::Section, "Notes"));
    }
    if !uncited.is_empty() {
        blocks.push(Block::new(
            Style::Note,
            "Sentences of the answer that cite no source:",
        ));
        blocks.extend(uncited.into_iter().map(|s| Block::new(Style::NoteItem, s)));
    }
    if !invalid.is_empty() {
        blocks.push(Block::new(
            Style::Note,
            "Citation markers that pointed to no source (removed from the answer):",
        ));
        blocks.extend(invalid.into_iter().map(|s| Block::new(Style::NoteItem, s)));
    }
}

/// The paragraphs of a text: split at blank lines, each keeping its single line breaks.
fn paragraphs(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

fn or_default<'a>(text: &'a str, default: &'a str) -> &'a str {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        default
    } else {
        trimmed
    }
}

fn non_empty(items: &[String]) -> Vec<&str> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize, cited: bool) -> ExportedSource {
        ExportedSource {
            n,
            document_title: format!("Doc {n}"),
            document_id: format!("id-{n}"),
            page: u32::try_from(n).unwrap_or(0) + 1,
            quote: format!("quote {n}"),
            cited,
        }
    }

    #[test]
    fn cited_sources_come_first_in_number_order() {
        let conversation = ExportedConversation {
            title: "T".into(),
            user: "u".into(),
            exported_at: "now".into(),
            collections: vec![],
            turns: vec![ExportedTurn {
                question: "q".into(),
                asked_at: String::new(),
                answer: "a [3] [1]".into(),
                sources: vec![source(1, true), source(2, false), source(3, true)],
                uncited_sentences: vec![],
                invalid_citations: vec![],
            }],
        };
        let headings: Vec<String> = outline(&conversation)
            .into_iter()
            .filter(|b| b.style == Style::SourceHeading)
            .map(|b| b.text)
            .collect();
        assert_eq!(
            headings,
            [
                "[1] Doc 1, page 2",
                "[3] Doc 3, page 4",
                "[2] Doc 2, page 3"
            ]
        );
    }

    #[test]
    fn paragraphs_split_at_blank_lines_and_keep_line_breaks() {
        assert_eq!(
            paragraphs("one\r\ntwo\n\n \nthree\n"),
            vec!["one\ntwo".to_string(), "three".to_string()]
        );
        assert!(paragraphs(" \n\n").is_empty());
    }
}
