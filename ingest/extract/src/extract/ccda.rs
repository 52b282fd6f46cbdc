//! C-CDA clinical documents (HL7 CDA R2 XML, `<ClinicalDocument xmlns="urn:hl7-org:v3">`):
//! the human-readable narrative of each section, headed by the section's title.
//!
//! A C-CDA carries each fact twice: coded entries for machines and a narrative block
//! (`section/text`) that is what the clinician signed and reads. Vellum indexes the narrative
//! only, so an answer cites what a person saw. Each top-level section becomes one "page"
//! (page N of a C-CDA is its Nth section: "Allergies", "Medications", ...); nested sections
//! stay inside their parent's page under their own title. Tables become one line per row with
//! cells separated by ` | `. The document title, its date and the patient's name go into the
//! title and metadata. DTD entities are never expanded (quick-xml does not read DTDs).

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};

use crate::error::{Error, Result};
use crate::extract::text::{decode_text, resolve_xml_reference};
use crate::extract::{too_many_pages, ExtractLimits, ExtractedDocument, Format};

/// Elements of the narrative block whose end is a line break.
const BLOCK_ELEMENTS: &[&[u8]] = &[b"paragraph", b"item", b"tr", b"caption", b"list", b"table"];
/// Deepest element nesting accepted (hostile files nest without end).
const MAX_DEPTH: usize = 256;

/// True if the text is a CDA document (its root element is `ClinicalDocument` in the HL7 v3
/// namespace), judged from the first few kilobytes.
pub(crate) fn looks_like_ccda(head: &str) -> bool {
    head.contains("<ClinicalDocument") && head.contains("urn:hl7-org:v3")
}

/// One section being read.
#[derive(Default)]
struct Section {
    title: String,
    body: String,
    /// Depth (in the element stack) of this section's `<text>` while inside it.
    text_depth: Option<usize>,
}

pub(crate) fn extract_ccda(bytes: &[u8], limits: &ExtractLimits) -> Result<ExtractedDocument> {
    let decoded = decode_text(bytes)?;
    let xml = decoded.trim_start_matches('\u{feff}');
    let malformed = |reason: String| Error::Malformed {
        format: Format::Ccda,
        reason,
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut pages: Vec<String> = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut title: Option<String> = None;
    // What a text event belongs to, outside sections.
    let mut capture: Option<(&'static str, String)> = None;
    // The patient's name parts, and whether the name is complete.
    let mut patient_name: (Vec<String>, bool) = (Vec::new(), false);

    loop {
        let event = reader
            .read_event()
            .map_err(|error| malformed(format!("XML error: {error}")))?;
        match event {
            Event::Start(element) => {
                let name = element.local_name().as_ref().to_vec();
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(format!(
                        "elements nested more than {MAX_DEPTH} deep"
                    )));
                }
                stack.push(name.clone());
                on_start(&name, &stack, &mut sections, &mut capture);
                if let Some(section) = sections.last_mut() {
                    let is_cell = matches!(name.as_slice(), b"td" | b"th");
                    if section.text_depth.is_some() && is_cell {
                        // Cells after the first of a row are separated by " | ".
                        let trimmed = section.body.trim_end_matches([' ', '\t']).len();
                        section.body.truncate(trimmed);
                        if !section.body.is_empty() && !section.body.ends_with('\n') {
                            section.body.push_str(" | ");
                        }
                    }
                }
            }
            Event::Empty(element) => {
                let name = element.local_name();
                if let Some(section) = sections.last_mut() {
                    if section.text_depth.is_some() && name.as_ref() == b"br" {
                        section.body.push('\n');
                    }
                }
                if sections.is_empty() && name.as_ref() == b"effectiveTime" && stack.len() == 1 {
                    if let Some(value) = attribute(&element, b"value") {
                        metadata.insert("date".to_string(), value);
                    }
                }
            }
            Event::End(element) => {
                let name = element.local_name().as_ref().to_vec();
                on_end(
                    &name,
                    &stack,
                    &mut sections,
                    &mut pages,
                    &mut capture,
                    &mut title,
                    &mut patient_name,
                );
                stack.pop();
                if pages.len() > limits.max_pages {
                    return Err(too_many_pages(Format::Ccda, pages.len(), limits));
                }
            }
            Event::Text(content) => {
                let text = content
                    .decode()
                    .map_err(|error| malformed(format!("bad text: {error}")))?;
                push_text(&text, &mut sections, &mut capture);
            }
            Event::CData(content) => {
                let text = content
                    .decode()
                    .map_err(|error| malformed(format!("bad CDATA: {error}")))?;
                push_text(&text, &mut sections, &mut capture);
            }
            Event::GeneralRef(reference) => {
                if let Some(resolved) = resolve_xml_reference(&reference) {
                    push_text(&resolved, &mut sections, &mut capture);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !patient_name.0.is_empty() {
        metadata.insert("patient".to_string(), patient_name.0.join(" "));
    }
    metadata.insert(
        "content_type".to_string(),
        "application/cda+xml".to_string(),
    );
    Ok(ExtractedDocument {
        format: Format::Ccda,
        title,
        pages,
        metadata,
    })
}

fn on_start(
    name: &[u8],
    stack: &[Vec<u8>],
    sections: &mut Vec<Section>,
    capture: &mut Option<(&'static str, String)>,
) {
    let parent = stack
        .len()
        .checked_sub(2)
        .and_then(|index| stack.get(index));
    match name {
        b"section" => sections.push(Section::default()),
        b"title" if parent.is_some_and(|p| p.as_slice() == b"section") => {
            *capture = Some(("section_title", String::new()));
        }
        b"title" if stack.len() == 2 => *capture = Some(("title", String::new())),
        b"text" if parent.is_some_and(|p| p.as_slice() == b"section") => {
            if let Some(section) = sections.last_mut() {
                section.text_depth = Some(stack.len());
            }
        }
        b"given" | b"family"
            if sections.is_empty()
                && stack.iter().any(|element| element.as_slice() == b"patient")
                && !stack
                    .iter()
                    .any(|element| element.as_slice() == b"guardian") =>
        {
            *capture = Some(("patient_name", String::new()));
        }
        _ => {}
    }
}

fn on_end(
    name: &[u8],
    stack: &[Vec<u8>],
    sections: &mut Vec<Section>,
    pages: &mut Vec<String>,
    capture: &mut Option<(&'static str, String)>,
    title: &mut Option<String>,
    patient_name: &mut (Vec<String>, bool),
) {
    match (name, capture.take()) {
        (b"title", Some(("section_title", text))) => {
            if let Some(section) = sections.last_mut() {
                section.title = squash(&text);
            }
            return;
        }
        (b"title", Some(("title", text))) => {
            *title = Some(squash(&text)).filter(|text| !text.is_empty());
            return;
        }
        (b"given" | b"family", Some(("patient_name", text))) => {
            if !patient_name.1 {
                patient_name.0.push(squash(&text));
            }
            return;
        }
        (_, other) => *capture = other,
    }
    // Only the patient's first name element (not a guardian's or an alias).
    if name == b"name" && !patient_name.0.is_empty() {
        patient_name.1 = true;
    }
    let Some(section) = sections.last_mut() else {
        return;
    };
    if let Some(depth) = section.text_depth {
        if stack.len() == depth && name == b"text" {
            section.text_depth = None;
            if !section.body.ends_with('\n') {
                section.body.push('\n');
            }
        } else if BLOCK_ELEMENTS.contains(&name) && !section.body.ends_with('\n') {
            section.body.push('\n');
        }
        return;
    }
    if name == b"section" {
        let Some(done) = sections.pop() else { return };
        let mut rendered = String::new();
        if !done.title.is_empty() {
            rendered.push_str(&done.title);
            rendered.push_str("\n\n");
        }
        rendered.push_str(done.body.trim());
        let rendered = rendered.trim().to_string();
        match sections.last_mut() {
            // A nested section stays in its parent's page.
            Some(parent) => {
                if !rendered.is_empty() {
                    parent.body.push_str("\n\n");
                    parent.body.push_str(&rendered);
                    parent.body.push('\n');
                }
            }
            None => {
                if !rendered.is_empty() {
                    pages.push(rendered);
                }
            }
        }
    }
}

fn push_text(text: &str, sections: &mut [Section], capture: &mut Option<(&'static str, String)>) {
    if let Some((_, buffer)) = capture.as_mut() {
        buffer.push_str(text);
        return;
    }
    if let Some(section) = sections.last_mut() {
        if section.text_depth.is_some() {
            if text.trim().is_empty() {
                // Indentation between elements: at most one space, none after a line break.
                if !section.body.is_empty() && !section.body.ends_with([' ', '\n']) {
                    section.body.push(' ');
                }
            } else {
                section.body.push_str(text);
            }
        }
    }
}

fn attribute(element: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == name)
        .and_then(|attribute| {
            attribute
                .unescape_value()
                .ok()
                .map(|value| value.into_owned())
        })
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <title>Discharge Summary</title>
  <effectiveTime value="20240102"/>
  <recordTarget><patientRole><patient><name><given>Ada</given><family>Lovelace</family></name></patient></patientRole></recordTarget>
  <component><structuredBody>
    <component><section>
      <title>Allergies</title>
      <text><table><thead><tr><th>Substance</th><th>Reaction</th></tr></thead>
        <tbody><tr><td>Penicillin</td><td>Hives</td></tr></tbody></table></text>
      <entry><observation><value code="X"/></observation></entry>
    </section></component>
    <component><section>
      <title>Plan</title>
      <text><paragraph>Follow up in <content>two weeks</content>.</paragraph><br/>Call if fever.</text>
      <component><section><title>Diet</title><text>Low salt.</text></section></component>
    </section></component>
  </structuredBody></component>
</ClinicalDocument>"#;

    #[test]
    fn sections_become_pages_with_their_titles() {
        let mut document = extract_ccda(SAMPLE.as_bytes(), &ExtractLimits::default())
            .unwrap_or_else(|error| panic!("{error}"));
        for page in &mut document.pages {
            *page = crate::extract::normalize_page_text(page);
        }
        assert_eq!(document.title.as_deref(), Some("Discharge Summary"));
        assert_eq!(
            document.metadata.get("patient").map(String::as_str),
            Some("Ada Lovelace")
        );
        assert_eq!(
            document.metadata.get("date").map(String::as_str),
            Some("20240102")
        );
        assert_eq!(document.pages.len(), 2, "{:?}", document.pages);
        assert_eq!(
            document.pages[0],
            "Allergies\n\nSubstance | Reaction\nPenicillin | Hives"
        );
        assert!(document.pages[1].starts_with("Plan\n\nFollow up in two weeks.\n"));
        assert!(document.pages[1].contains("Call if fever."));
        assert!(document.pages[1].contains("Diet\n\nLow salt."));
    }

    #[test]
    fn detection_needs_the_hl7_namespace() {
        assert!(looks_like_ccda(SAMPLE));
        assert!(!looks_like_ccda(
            "<ClinicalDocument><title>x</title></ClinicalDocument>"
        ));
    }
}
