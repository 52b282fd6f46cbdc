//! E-mail, court-filing and general summaries and kind detection on real files: CUAD contracts
//! and C-CDAs read from shared/corpora, and excerpts of what ingest made of freelaw PDFs and
//! PACER e-mails (tests/fixtures/ingested_excerpts.json, from `vellum ingest` + dump_chunks.py;
//! PDFs and MIME e-mails cannot be extracted from this pure crate), checked against the
//! originals' presence.

use std::path::PathBuf;

use serde_json::Value;
use vellum_brief::{detect_kind, email, filing, general, Document, Item, Kind, Passage, Status};

mod common;
use common::shared;

/// (chunk id, page, text) of an ingested excerpt, its title and format.
fn excerpt(file: &str) -> (String, String, Vec<(String, u32, String)>) {
    let raw = include_str!("fixtures/ingested_excerpts.json");
    let all: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let doc = &all[file];
    let chunks = doc["chunks"]
        .as_array()
        .map(|chunks| {
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("{file}-{i}"),
                        c["page"].as_u64().unwrap_or(1) as u32,
                        c["text"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        doc["title"].as_str().unwrap_or_default().to_string(),
        doc["format"].as_str().unwrap_or_default().to_string(),
        chunks,
    )
}

fn to_passages(chunks: &[(String, u32, String)]) -> Vec<Passage<'_>> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, (id, page, text))| Passage {
            chunk_id: id,
            ordinal: i as u32,
            page: *page,
            text,
        })
        .collect()
}

fn assert_quotes_are_exact(items: &[Item], chunks: &[(String, u32, String)]) {
    for item in items.iter().filter(|item| item.status == Status::Found) {
        let chunk = chunks
            .iter()
            .find(|(id, ..)| Some(id) == item.chunk_id.as_ref())
            .unwrap_or_else(|| panic!("unknown chunk in {item:?}"));
        let quote = item.quote.as_deref().unwrap_or_default();
        assert!(!quote.is_empty() && chunk.2.contains(quote), "{item:?}");
        assert_eq!(item.page, Some(chunk.1), "{item:?}");
    }
}

fn find<'a>(items: &'a [Item], section: &str) -> Vec<&'a Item> {
    items
        .iter()
        .filter(|item| item.section == section)
        .collect()
}

#[test]
fn pacer_forwarded_notice_lists_each_message() {
    shared("email-court-notices-pacer/nef/ared_4.eml");
    let (title, format, chunks) = excerpt("ared_4.eml");
    let passages = to_passages(&chunks);
    let document = Document {
        title: &title,
        format: &format,
        passages: &passages,
        original: None,
    };
    assert_eq!(detect_kind(&document), Kind::Email);
    let items = email::summary(&document);
    assert_quotes_are_exact(&items, &chunks);
    let messages = find(&items, "Message");
    assert!(messages.iter().any(|m| m.text.starts_with(
        "From kiona@everettlawfirm.com <kiona@everettlawfirm.com> on Thursday, July 8, 2021 11:20 AM — subject: FW: Activity in Case 4:20-cv-01296-BRW"
    )), "{messages:#?}");
    assert!(messages
        .iter()
        .any(|m| m.text.starts_with("From ecf_support@ared.uscourts.gov")));
    assert!(messages
        .iter()
        .any(|m| m.text == "Court notice: transaction entered by Wiley, Joshua on 7/8/2021"));
    let docket = find(&items, "Docket Text");
    assert!(docket[0]
        .text
        .starts_with("MOTION for Recusal or Disqualification by Kristina Huffman"));
    let attachments = find(&items, "Attachments");
    assert!(
        attachments
            .iter()
            .any(|a| a.text.contains("Exhibit Anonymous Letter")),
        "{attachments:#?}"
    );
}

#[test]
fn appeals_order_has_court_parties_docket_and_deadline() {
    shared("legal-court-documents-freelaw/recap_documents");
    let (title, format, chunks) = excerpt("ca7_3.pdf");
    let passages = to_passages(&chunks);
    let document = Document {
        title: &title,
        format: &format,
        passages: &passages,
        original: None,
    };
    assert_eq!(detect_kind(&document), Kind::Filing);
    let items = filing::summary(&document);
    assert_quotes_are_exact(&items, &chunks);
    assert_eq!(
        find(&items, "Court")[0].text,
        "United States Court of Appeals For the Seventh Circuit"
    );
    assert!(find(&items, "Parties")
        .iter()
        .any(|p| p.text == "Plaintiffs-Appellants: MICHAEL TOFAUTE, et al."));
    let dockets: Vec<&str> = find(&items, "Docket Number")
        .iter()
        .map(|d| d.text.as_str())
        .collect();
    assert!(
        dockets.contains(&"17-2400") && dockets.contains(&"3:05-cv-00595-RLM-MGG"),
        "{dockets:?}"
    );
    let deadlines = find(&items, "Deadlines");
    assert_eq!(
        deadlines[0].text,
        "The parties’ Statements are due on or before July 21, 2017."
    );
}

#[test]
fn district_complaint_caption() {
    shared("legal-court-documents-freelaw/x-ray/rectangles_no.pdf");
    let (title, format, chunks) = excerpt("rectangles_no.pdf");
    let passages = to_passages(&chunks);
    let document = Document {
        title: &title,
        format: &format,
        passages: &passages,
        original: None,
    };
    assert_eq!(detect_kind(&document), Kind::Filing);
    let items = filing::summary(&document);
    assert_quotes_are_exact(&items, &chunks);
    assert_eq!(
        find(&items, "Court")[0].text,
        "UNITED STATES DISTRICT COURT FOR THE DISTRICT OF COLORADO"
    );
    let parties: Vec<&str> = find(&items, "Parties")
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    assert!(
        parties.contains(&"Plaintiff: BERKSHIRE LIFE INSURANCE COMPANY OF AMERICA"),
        "{parties:?}"
    );
    assert!(parties.contains(&"Defendant: ANNA SCHUBERT"), "{parties:?}");
}

/// A CUAD contract as passages: pages at form feeds (or 400-word pages), 120-word chunks.
fn text_chunks(text: &str, name: &str) -> Vec<(String, u32, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .chunks(120)
        .enumerate()
        .map(|(i, chunk)| (format!("{name}-{i}"), (i / 3) as u32 + 1, chunk.join(" ")))
        .collect()
}

#[test]
fn detects_contracts_clinical_records_and_general_text() {
    let dir = shared("legal-cuad-contracts/txt");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let mut contracts = 0;
    for path in names.iter().take(10) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let chunks = text_chunks(&text, "cuad");
        let passages = to_passages(&chunks);
        let document = Document {
            title: "",
            format: "text",
            passages: &passages,
            original: None,
        };
        if detect_kind(&document) == Kind::Contract {
            contracts += 1;
        }
    }
    assert!(
        contracts >= 9,
        "only {contracts} of 10 CUAD contracts detected"
    );

    // A C-CDA's narrative as plain text (no ccda format) still reads as clinical.
    let xml = std::fs::read_to_string(shared("medical-ccda-smart-samples/EMERGE/Patient-9.xml"))
        .unwrap_or_default();
    let narrative: String = xml
        .split('<')
        .filter_map(|part| part.split_once('>').map(|(_, text)| text))
        .collect::<Vec<_>>()
        .join(" ");
    let chunks = text_chunks(&format!("Patient record. {narrative}"), "ccda");
    let passages = to_passages(&chunks);
    let document = Document {
        title: "",
        format: "text",
        passages: &passages,
        original: None,
    };
    assert_eq!(detect_kind(&document), Kind::Clinical);

    // A scientific abstract is none of them.
    let abstract_text = "Mitochondrial dysfunction is a hallmark of ageing. We measured oxygen consumption in fibroblasts from 40 donors and found a 30% decline with age. The decline was reversed by supplementation with nicotinamide riboside.";
    let chunks = text_chunks(abstract_text, "abstract");
    let passages = to_passages(&chunks);
    let document = Document {
        title: "",
        format: "text",
        passages: &passages,
        original: None,
    };
    assert_eq!(detect_kind(&document), Kind::General);
}

#[test]
fn general_key_points_are_spread_sentences_without_page_furniture() {
    let path = shared("legal-cuad-contracts/txt");
    let first = std::fs::read_dir(&path)
        .ok()
        .and_then(|mut entries| entries.find_map(|e| e.ok().map(|e| e.path())))
        .unwrap_or_default();
    let text = std::fs::read_to_string(first).unwrap_or_default();
    let chunks = text_chunks(&text, "doc");
    let passages = to_passages(&chunks);
    let document = Document {
        title: "",
        format: "text",
        passages: &passages,
        original: None,
    };
    let items = general::summary(&document);
    assert_quotes_are_exact(&items, &chunks);
    assert!(!items.is_empty() && items.len() <= 8, "{items:#?}");
    assert!(items.iter().all(|item| item.section == "Key Points"));
    assert!(!items
        .iter()
        .any(|item| item.text.to_lowercase().contains("page 1 of")));
    // Deterministic.
    assert_eq!(items, general::summary(&document));
}
