//! The PDF export read back with pdf-extract (the crate ingestion uses).

mod common;

use common::*;
use vellum_export::{to_pdf, ExportedConversation, PDF_CONTENT_TYPE};

const CLOSING: &str = "Exported from Vellum. Quotes are verbatim from the indexed text.";

fn pages_of(conversation: &ExportedConversation) -> Vec<String> {
    let bytes = to_pdf(conversation).expect("export");
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF header");
    pdf_extract::extract_text_from_mem_by_pages(&bytes).expect("pdf-extract reads the export")
}

/// The pages' text with each page's footer (closing line, "Page i of n") taken out, squashed.
fn body_text(pages: &[String]) -> String {
    let total = pages.len();
    let mut text = String::new();
    for (i, page) in pages.iter().enumerate() {
        let page = squash(page);
        let label = format!("Page {} of {total}", i + 1);
        assert!(
            page.contains(&label),
            "page {} has no {label:?}: {page}",
            i + 1
        );
        assert!(page.contains(CLOSING), "page {} has no footer", i + 1);
        text.push_str(&page.replace(&label, " ").replace(CLOSING, " "));
        text.push(' ');
    }
    squash(&text)
}

fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing from the PDF text:\n{haystack}"))
}

#[test]
fn the_pdf_carries_the_conversation_and_its_citations() {
    assert_eq!(PDF_CONTENT_TYPE, "application/pdf");
    let pages = pages_of(&conversation());
    let all = squash(&pages.join(" "));
    let text = body_text(&pages);

    for expected in [
        TITLE,
        "Exported by alice@firm.example on 2026-12-05 09:30 UTC",
        "Collections: contracts, hr-policies",
        "Question 1",
        "Asked 2026-12-05 09:12 UTC",
        QUESTION,
        ANSWER_1,
        ANSWER_2,
        "[1] Employment contract, page 3",
        "[2] Employee handbook, page 12",
        "[3] Board minutes 2024, page 7",
        "Cited in the answer \u{b7} document doc-0001",
        "Given to the model but not cited \u{b7} document doc-0003",
        QUOTE_1,
        QUOTE_2,
        QUOTE_MARKUP,
        "Sentences of the answer that cite no source:",
        "Citation markers that pointed to no source (removed from the answer):",
        INVALID,
        // Latin-1 and WinAnsi's extras survive.
        "[1] Vertrag Müller, page 5",
        QUOTE_LATIN1,
        "Wie lange ist die Kündigungsfrist?",
    ] {
        position(&text, expected);
    }
    // Every page's footer has the closing line (checked in body_text), and the body ends with
    // it too.
    let last_page = squash(&pages[pages.len() - 1]);
    assert_eq!(last_page.matches(CLOSING).count(), 2, "{last_page}");
    assert!(all.starts_with(TITLE));

    // Cited sources first, in number order; then the uncited one; then the notes.
    let one = position(&text, "[1] Employment contract");
    let two = position(&text, "[2] Employee handbook");
    let three = position(&text, "[3] Board minutes 2024");
    let notes = position(&text, "Sentences of the answer that cite no source:");
    assert!(one < two && two < three && three < notes, "{text}");
    // Each quote comes right after its source's heading.
    assert!(position(&text, QUOTE_1) > one && position(&text, QUOTE_1) < two);
}

#[test]
fn characters_beyond_winansi_show_as_a_visible_replacement_with_a_note() {
    let pages = pages_of(&conversation());
    let text = body_text(&pages);
    // Cyrillic, Japanese and Greek have no Helvetica glyph: each character is a "?".
    position(
        &text,
        "Какой срок уведомления?"
            .replace(|c: char| !c.is_ascii(), "?")
            .as_str(),
    );
    position(&text, "Der Vertrag verlangt 30 Tage Frist [1]. ????????: ?");
    assert!(!text.contains("Какой") && !text.contains("Ελληνικά"));
    // The note saying so comes right after the heading, before the first replaced character.
    let note = position(
        &text,
        "Some characters in this conversation have no glyph in the standard PDF font",
    );
    assert!(note > position(&text, "Collections: contracts, hr-policies"));
    assert!(note < position(&text, "Question 1"));

    // A conversation that is all Latin-1 gets no such note.
    let mut latin = conversation();
    latin.turns.truncate(1);
    let text = body_text(&pages_of(&latin));
    assert!(!text.contains("have no glyph"), "{text}");
}

#[test]
fn a_long_answer_runs_over_several_pages_with_nothing_lost() {
    let paragraphs = 160;
    let pages = pages_of(&long_conversation(paragraphs));
    assert!(pages.len() >= 4, "only {} pages", pages.len());
    let text = body_text(&pages);
    let mut last = 0;
    for i in 1..=paragraphs {
        let at = position(&text, &long_sentence(i));
        assert!(at > last, "paragraph {i} out of order");
        last = at;
    }
    // The sources follow the whole answer.
    let source = position(&text, "[1] Master services agreement, page 41");
    assert!(source > last);
    position(&text, QUOTE_1);
    // Pages are numbered against the total.
    let total = pages.len();
    assert!(squash(&pages[total - 1]).contains(&format!("Page {total} of {total}")));
    // The first page starts with the title, a later page with answer text.
    assert!(squash(&pages[0]).starts_with("A long answer"));
    assert!(squash(&pages[1]).starts_with("Paragraph"), "{}", pages[1]);
}

#[test]
fn unbreakable_words_empty_fields_and_control_characters_do_not_break_the_export() {
    let url = format!("https://records.example/{}", "segment-".repeat(60));
    let mut conversation = conversation();
    conversation.title = String::new();
    conversation.collections.clear();
    conversation.turns[0].answer = format!("See {url} for the record [1].\u{7}\u{0}\ttabbed");
    conversation.turns[0].sources[1].document_title = String::new();
    conversation.turns[0].sources[1].quote = String::new();
    conversation.turns[1].question = String::new();
    let pages = pages_of(&conversation);
    let text = body_text(&pages);
    for expected in [
        "Conversation",
        "Collections: none recorded",
        "[1] Untitled document, page 3",
        "(no quote recorded)",
        "(no question text)",
        "tabbed",
    ] {
        position(&text, expected);
    }
    // The long word is cut across lines but every character is there.
    let no_space: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(no_space.contains(&url), "{text}");

    let empty = ExportedConversation {
        title: "Nothing asked".into(),
        user: String::new(),
        exported_at: String::new(),
        collections: vec![],
        turns: vec![],
    };
    let text = body_text(&pages_of(&empty));
    position(&text, "This conversation has no questions.");
    position(&text, "Exported by an unknown user on an unknown date");
}

#[test]
fn the_same_conversation_gives_the_same_bytes() {
    let conversation = conversation();
    assert_eq!(to_pdf(&conversation).ok(), to_pdf(&conversation).ok());
}

#[test]
#[ignore = "writes sample files for a person to look at: VELLUM_EXPORT_SAMPLES=dir"]
fn write_samples() {
    let dir = std::env::var("VELLUM_EXPORT_SAMPLES").expect("VELLUM_EXPORT_SAMPLES");
    let write =
        |name: &str, bytes: Vec<u8>| std::fs::write(format!("{dir}/{name}"), bytes).expect("write");
    write("conversation.pdf", to_pdf(&conversation()).expect("pdf"));
    write("long.pdf", to_pdf(&long_conversation(160)).expect("pdf"));
    write(
        "conversation.docx",
        vellum_export::to_docx(&conversation()).expect("docx"),
    );
    write(
        "long.docx",
        vellum_export::to_docx(&long_conversation(160)).expect("docx"),
    );
}
