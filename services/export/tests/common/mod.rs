//! Conversations shared by the DOCX and PDF tests.
#![allow(dead_code)]

use vellum_export::{ExportedConversation, ExportedSource, ExportedTurn};

pub const TITLE: &str = "Smith v. Acme: termination clause";
pub const QUESTION: &str = "What notice period applies to termination of the contract?";
pub const ANSWER_1: &str =
    "The contract requires thirty days' written notice [1]. A termination for cause takes effect immediately [2].";
pub const ANSWER_2: &str = "The handbook repeats this for all staff.";
pub const QUOTE_1: &str =
    "Either party may terminate this Agreement upon thirty (30) days' written notice to the other party.";
pub const QUOTE_2: &str =
    "Termination for cause takes effect immediately upon delivery of the notice.";
/// Markup in a quote must come out as text.
pub const QUOTE_MARKUP: &str = "<script>alert('x')</script> & \"other\" markup <b>bold</b>";
pub const INVALID: &str = "[9]";

pub const QUESTION_2: &str =
    "Wie lange ist die Kündigungsfrist? Какой срок уведомления? 通知期間は？";
pub const ANSWER_2_TEXT: &str =
    "Der Vertrag verlangt 30 Tage Frist [1]. Ελληνικά: η προθεσμία είναι 30 ημέρες.";
pub const QUOTE_LATIN1: &str =
    "Kündigungsfrist: 30 Tage \u{2014} gemäß § 5 (Zürich), « Préavis » inclus.";

pub fn source(n: usize, title: &str, page: u32, quote: &str, cited: bool) -> ExportedSource {
    ExportedSource {
        n,
        document_title: title.to_string(),
        document_id: format!("doc-{n:04}"),
        page,
        quote: quote.to_string(),
        cited,
    }
}

/// Two turns: an English one with cited and uncited sources, notes and a quote full of markup;
/// one in German, Russian, Japanese and Greek.
pub fn conversation() -> ExportedConversation {
    ExportedConversation {
        title: TITLE.to_string(),
        user: "alice@firm.example".to_string(),
        exported_at: "2026-12-05 09:30 UTC".to_string(),
        collections: vec!["contracts".to_string(), "hr-policies".to_string()],
        turns: vec![
            ExportedTurn {
                question: QUESTION.to_string(),
                asked_at: "2026-12-05 09:12 UTC".to_string(),
                answer: format!("{ANSWER_1}\n\n{ANSWER_2}"),
                // Listed out of order on purpose: the export puts cited sources first.
                sources: vec![
                    source(3, "Board minutes 2024", 7, QUOTE_MARKUP, false),
                    source(1, "Employment contract", 3, QUOTE_1, true),
                    source(2, "Employee handbook", 12, QUOTE_2, true),
                ],
                uncited_sentences: vec![ANSWER_2.to_string()],
                invalid_citations: vec![INVALID.to_string()],
            },
            ExportedTurn {
                question: QUESTION_2.to_string(),
                asked_at: "2026-12-05 09:20 UTC".to_string(),
                answer: ANSWER_2_TEXT.to_string(),
                sources: vec![source(1, "Vertrag Müller", 5, QUOTE_LATIN1, true)],
                uncited_sentences: vec![],
                invalid_citations: vec![],
            },
        ],
    }
}

/// The sentence of paragraph `i` of [`long_conversation`]'s answer.
pub fn long_sentence(i: usize) -> String {
    format!(
        "Paragraph {i} explains that clause {i} of the agreement applies only to the services listed in schedule {i} [1]."
    )
}

/// One turn whose answer runs over several pages.
pub fn long_conversation(paragraphs: usize) -> ExportedConversation {
    let answer: Vec<String> = (1..=paragraphs).map(long_sentence).collect();
    ExportedConversation {
        title: "A long answer".to_string(),
        user: "bob".to_string(),
        exported_at: "2026-12-05".to_string(),
        collections: vec!["contracts".to_string()],
        turns: vec![ExportedTurn {
            question: "Which clauses apply to which services?".to_string(),
            asked_at: String::new(),
            answer: answer.join("\n\n"),
            sources: vec![source(1, "Master services agreement", 41, QUOTE_1, true)],
            uncited_sentences: vec![],
            invalid_citations: vec![],
        }],
    }
}

/// Runs of whitespace as one space, trimmed.
pub fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
