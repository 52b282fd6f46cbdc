//! C-CDA: the facts come from the coded entries, the quotes from the narrative passages.
//!
//! Ingest makes each top-level section one page (its title, then the narrative; table rows
//! with ` | ` between cells). So for each coded entry we find its narrative line (the table row
//! or list item its `reference` points at, else the shortest line naming it), render that line
//! the way ingest does and find it in the passages of the section's page.

use std::collections::HashMap;

use super::xml::{self, squash, Child, Node};
use super::{dedup, find_ignore_case, sentence_around, Heading, HEADINGS};
use crate::{Document, Item, Passage};

/// Elements whose end is a line break in ingest's narrative reader.
const BLOCK_ELEMENTS: &[&str] = &["paragraph", "item", "tr", "caption", "list", "table"];
/// Most result and vital-sign items listed (the most recent first).
const MAX_RECENT: usize = 15;
/// Longest quote taken when no narrative line fits.
const MAX_QUOTE: usize = 240;

/// One coded fact: its name (as the record spells it), the plain reading, when it happened
/// (for "recent"), and the narrative IDs its entry references (the first is the best).
struct Fact {
    name: String,
    text: String,
    date: String,
    references: Vec<String>,
}

/// A line of a section's narrative as ingest renders it (whitespace squashed), with the IDs
/// of the elements inside it.
struct Line {
    text: String,
    ids: Vec<String>,
}

/// A coded section found in the record, with the page ingest gave it.
struct Section<'x> {
    heading: &'static Heading,
    node: &'x Node,
    page: u32,
    title: String,
}

/// The summary from the coded entries, or None when `original` is not a readable C-CDA.
pub(super) fn summary(document: &Document<'_>, original: &[u8]) -> Option<Vec<Item>> {
    let xml_text = std::str::from_utf8(original).ok()?;
    let root = xml::parse(xml_text.trim_start_matches('\u{feff}')).ok()?;
    if root.name != "ClinicalDocument" {
        return None;
    }
    let sections = coded_sections(&root, document.passages);
    let mut items = Vec::new();
    for heading in HEADINGS {
        let mine: Vec<&Section<'_>> = sections
            .iter()
            .filter(|section| std::ptr::eq(section.heading, heading))
            .collect();
        if mine.is_empty() {
            items.push(Item::not_found(
                heading.name,
                format!("No {} section in the record.", heading.name.to_lowercase()),
            ));
            continue;
        }
        let before = items.len();
        for section in mine {
            items.extend(section_items(section, document.passages));
        }
        if items.len() == before {
            items.push(Item::not_found(heading.name, heading.empty.to_string()));
        }
    }
    Some(dedup(items))
}

/// The record's coded sections we summarise, each with its page: page N is the Nth top-level
/// section that ingest rendered (one with a title or narrative text); a nested section is on
/// its top-level section's page.
fn coded_sections<'x>(root: &'x Node, passages: &[Passage<'_>]) -> Vec<Section<'x>> {
    let mut top_level = Vec::new();
    collect_top_sections(root, &mut top_level);
    let mut sections = Vec::new();
    let mut page = 0u32;
    for top in top_level {
        let title = top.child("title").map(Node::text).unwrap_or_default();
        let rendered = !title.is_empty()
            || top
                .child("text")
                .is_some_and(|text| !squash(&render(text)).is_empty());
        if !rendered {
            continue;
        }
        page += 1;
        let mut stack = vec![top];
        while let Some(section) = stack.pop() {
            if let Some(heading) = heading_of(section) {
                let title = section.child("title").map(Node::text).unwrap_or_default();
                let page = page_of(&title, page, passages);
                sections.push(Section {
                    heading,
                    node: section,
                    page,
                    title,
                });
            }
            for component in section.children_named("component") {
                stack.extend(component.children_named("section"));
            }
        }
    }
    sections
}

fn collect_top_sections<'x>(node: &'x Node, out: &mut Vec<&'x Node>) {
    for element in node.elements() {
        if element.name == "section" {
            out.push(element);
        } else {
            collect_top_sections(element, out);
        }
    }
}

/// Which heading a section is, by its LOINC code, else its templateId.
fn heading_of(section: &Node) -> Option<&'static Heading> {
    let code = section.child("code").and_then(|code| code.value_of("code"));
    if let Some(code) = code {
        if let Some(heading) = HEADINGS.iter().find(|h| h.loinc.contains(&code)) {
            return Some(heading);
        }
    }
    HEADINGS.iter().find(|heading| {
        section
            .children_named("templateId")
            .filter_map(|template| template.attribute("root"))
            .any(|root| heading.templates.contains(&root))
    })
}

/// The computed page, checked against the passages: a section's page starts with its title.
/// If the count went wrong (ingest skipped or split something), the page that starts with the
/// title wins.
fn page_of(title: &str, computed: u32, passages: &[Passage<'_>]) -> u32 {
    if title.is_empty() {
        return computed;
    }
    let starts_page = |page: u32| {
        passages
            .iter()
            .find(|passage| passage.page == page)
            .is_some_and(|passage| passage.text.starts_with(title))
    };
    if starts_page(computed) {
        return computed;
    }
    let mut pages: Vec<u32> = passages.iter().map(|passage| passage.page).collect();
    pages.dedup();
    pages
        .into_iter()
        .find(|page| starts_page(*page))
        .unwrap_or(computed)
}

/// The items of one coded section: one per fact, quoting its narrative line.
fn section_items(section: &Section<'_>, passages: &[Passage<'_>]) -> Vec<Item> {
    let lines = section
        .node
        .child("text")
        .map(narrative_lines)
        .unwrap_or_default();
    let ids = narrative_ids(section.node);
    let facts = facts(section, &ids);
    let page: Vec<&Passage<'_>> = passages
        .iter()
        .filter(|passage| passage.page == section.page)
        .collect();
    let mut items = Vec::new();
    for fact in facts {
        if let Some((passage, range)) = quote_fact(&fact, &lines, &page, &section.title) {
            let quote = &passage.text[range];
            items.push(Item::found(section.heading.name, passage, quote, fact.text));
        }
    }
    items
}

/// Where to quote a fact: its referenced line, else the shortest line naming it, else the
/// line sharing most of its words, else the section's title.
fn quote_fact<'p>(
    fact: &Fact,
    lines: &[Line],
    page: &[&'p Passage<'p>],
    title: &str,
) -> Option<(&'p Passage<'p>, std::ops::Range<usize>)> {
    let referenced = fact
        .references
        .iter()
        .find_map(|id| lines.iter().find(|line| line.ids.contains(id)));
    let named = lines
        .iter()
        .filter(|line| find_ignore_case(&line.text, &fact.name).is_some())
        .min_by_key(|line| line.text.len());
    for line in [referenced, named].into_iter().flatten() {
        if let Some(found) = locate_line(&line.text, &fact.name, page) {
            return Some(found);
        }
    }
    // The name itself in the passages (a line split across chunks).
    for passage in page {
        if let Some(start) = find_ignore_case(passage.text, &fact.name) {
            let range = start..start + fact.name.len();
            return Some((passage, cell_or_sentence(passage, range)));
        }
    }
    // Not in the narrative by name: the line sharing most of its words.
    let words = significant_words(&fact.name);
    let best = lines
        .iter()
        .map(|line| {
            let shared = words
                .iter()
                .filter(|word| find_ignore_case(&line.text, word).is_some())
                .count();
            (shared, line)
        })
        .filter(|(shared, _)| *shared > 0)
        .max_by_key(|(shared, line)| (*shared, std::cmp::Reverse(line.text.len())));
    if let Some((_, line)) = best {
        if let Some(found) = locate_line(&line.text, "", page) {
            return Some(found);
        }
    }
    let first = *page.first()?;
    if !title.is_empty() && first.text.starts_with(title) {
        return Some((first, 0..title.len()));
    }
    // No title either: the page's opening words.
    let mut end = first.text.len().min(80);
    while !first.text.is_char_boundary(end) {
        end -= 1;
    }
    if end < first.text.len() {
        end = first.text[..end].rfind(' ').unwrap_or(end);
    }
    Some((first, 0..end)).filter(|(_, range)| !range.is_empty())
}

/// Finds a rendered narrative line in the page's passages: whole, else the longest run of its
/// cells (preferring runs with the cell that names the fact), since a row can straddle chunks.
fn locate_line<'p>(
    line: &str,
    name: &str,
    page: &[&'p Passage<'p>],
) -> Option<(&'p Passage<'p>, std::ops::Range<usize>)> {
    if line.is_empty() {
        return None;
    }
    for passage in page {
        if let Some(start) = passage.text.find(line) {
            return Some((passage, start..start + line.len()));
        }
    }
    let cells: Vec<&str> = line.split(" | ").collect();
    if cells.len() < 2 || cells.len() > 40 {
        return None;
    }
    let name_cell = cells
        .iter()
        .position(|cell| !name.is_empty() && find_ignore_case(cell, name).is_some());
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for start in 0..cells.len() {
        for end in start + 1..=cells.len() {
            runs.push((start, end));
        }
    }
    runs.sort_by_key(|&(start, end)| {
        let has_name = name_cell.is_some_and(|cell| start <= cell && cell < end);
        (std::cmp::Reverse(has_name), std::cmp::Reverse(end - start))
    });
    for (start, end) in runs {
        let run = cells[start..end].join(" | ");
        // A lone short cell ("Active", "RxNorm") says nothing about which row it is.
        if end - start == 1 && name_cell != Some(start) {
            continue;
        }
        for passage in page {
            if let Some(at) = passage.text.find(&run) {
                return Some((passage, at..at + run.len()));
            }
        }
    }
    None
}

/// The ` | `-separated cell containing `range` (a table row split across chunks), else the
/// sentence.
fn cell_or_sentence(
    passage: &Passage<'_>,
    range: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let text = passage.text;
    let start = text[..range.start].rfind(" | ").map_or(0, |at| at + 3);
    let end = text[range.end..]
        .find(" | ")
        .map_or(text.len(), |at| range.end + at);
    if start <= range.start && end - start <= MAX_QUOTE && text.contains(" | ") {
        return start..end;
    }
    sentence_around(passage, range, MAX_QUOTE)
}

fn significant_words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.chars().count() >= 4)
        .map(str::to_string)
        .collect()
}

/// The narrative rendered as ingest does (see ingest/extract/src/extract/ccda.rs): text as
/// is, `<br/>` and block ends as line breaks, ` | ` before each table cell after the first.
fn render(node: &Node) -> String {
    let mut body = String::new();
    render_into(node, &mut body);
    body
}

fn render_into(node: &Node, body: &mut String) {
    for child in &node.children {
        match child {
            Child::Text(text) => {
                if text.trim().is_empty() {
                    if !body.is_empty() && !body.ends_with([' ', '\n']) {
                        body.push(' ');
                    }
                } else {
                    body.push_str(text);
                }
            }
            Child::Element(element) => {
                if element.self_closing {
                    if element.name == "br" {
                        body.push('\n');
                    }
                    continue;
                }
                if element.name == "td" || element.name == "th" {
                    let trimmed = body.trim_end_matches([' ', '\t']).len();
                    body.truncate(trimmed);
                    if !body.is_empty() && !body.ends_with('\n') {
                        body.push_str(" | ");
                    }
                }
                render_into(element, body);
                if BLOCK_ELEMENTS.contains(&element.name.as_str()) && !body.ends_with('\n') {
                    body.push('\n');
                }
            }
        }
    }
}

/// The narrative's lines: each table row, and each list item or paragraph outside a table
/// row; the whole narrative when it has none.
fn narrative_lines(text: &Node) -> Vec<Line> {
    let mut lines = Vec::new();
    collect_lines(text, false, &mut lines);
    if lines.is_empty() {
        let whole = squash(&render(text));
        if !whole.is_empty() {
            lines.push(Line {
                text: whole,
                ids: ids_in(text),
            });
        }
    }
    lines
}

fn collect_lines(node: &Node, in_row: bool, lines: &mut Vec<Line>) {
    for element in node.elements() {
        let is_row = element.name == "tr";
        let is_line = is_row || (!in_row && matches!(element.name.as_str(), "item" | "paragraph"));
        if is_line {
            let text = squash(&render(element));
            if !text.is_empty() {
                lines.push(Line {
                    text,
                    ids: ids_in(element),
                });
            }
        }
        collect_lines(element, in_row || is_row, lines);
    }
}

/// The `ID` attributes inside `node`, itself included.
fn ids_in(node: &Node) -> Vec<String> {
    std::iter::once(node)
        .chain(node.descendants())
        .filter_map(|element| element.attribute("ID").or_else(|| element.attribute("id")))
        .map(str::to_string)
        .collect()
}

/// Narrative element ID → its text, for names given only as `originalText/reference`.
fn narrative_ids(section: &Node) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(text) = section.child("text") {
        for element in text.descendants() {
            if let Some(id) = element.attribute("ID") {
                let content = element.text();
                if !content.is_empty() {
                    map.insert(id.to_string(), content);
                }
            }
        }
    }
    map
}

/// The name of a coded concept (`code`, `value`): its displayName, else its originalText
/// (or the narrative text it references), else a translation's displayName.
fn concept_name(concept: &Node, ids: &HashMap<String, String>) -> Option<String> {
    // Placeholder entries ("No data") name nothing: the section is empty.
    const PLACEHOLDERS: &[&str] = &["no data", "none", "unknown", "no information", "n/a"];
    concept_name_any(concept, ids)
        .filter(|name| !PLACEHOLDERS.contains(&name.to_lowercase().as_str()))
}

fn concept_name_any(concept: &Node, ids: &HashMap<String, String>) -> Option<String> {
    // A null concept names nothing unless it still carries a display name or original text.
    let null = concept.attribute("nullFlavor").is_some();
    if null && concept.value_of("displayName").is_none() {
        concept.child("originalText")?;
    }
    if let Some(name) = concept.value_of("displayName") {
        return Some(squash(name));
    }
    if let Some(original) = concept.child("originalText") {
        let own: String = original
            .children
            .iter()
            .filter_map(|child| match child {
                Child::Text(text) => Some(text.as_str()),
                Child::Element(_) => None,
            })
            .collect();
        let own = squash(&own);
        if !own.is_empty() {
            return Some(own);
        }
        if let Some(text) = original
            .child("reference")
            .and_then(|reference| reference.attribute("value"))
            .and_then(|value| ids.get(value.trim_start_matches('#')))
        {
            return Some(text.clone());
        }
    }
    concept
        .children_named("translation")
        .find_map(|translation| translation.value_of("displayName"))
        .map(squash)
}

/// The `reference/@value` IDs under `node` (without `#`), those under `first` first.
fn references(first: Option<&Node>, node: &Node) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let from = |n: &Node, out: &mut Vec<String>| {
        for element in std::iter::once(n).chain(n.descendants()) {
            if element.name == "reference" {
                if let Some(value) = element.value_of("value") {
                    let id = value.trim_start_matches('#').to_string();
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
    };
    if let Some(first) = first {
        from(first, &mut out);
    }
    from(node, &mut out);
    out
}

/// A CDA timestamp (`20100509100000`) as a date (`2010-05-09`).
fn date(ts: &str) -> Option<String> {
    let digits: String = ts.chars().take_while(char::is_ascii_digit).collect();
    match digits.len() {
        0..=3 => None,
        4..=5 => Some(digits[..4].to_string()),
        6..=7 => Some(format!("{}-{}", &digits[..4], &digits[4..6])),
        _ => Some(format!(
            "{}-{}-{}",
            &digits[..4],
            &digits[4..6],
            &digits[6..8]
        )),
    }
}

/// An `effectiveTime`'s (low, high), or (value, none).
fn period(node: Option<&Node>) -> (Option<String>, Option<String>) {
    let Some(time) = node else {
        return (None, None);
    };
    if let Some(value) = time.value_of("value") {
        return (date(value), None);
    }
    let low = time
        .child("low")
        .and_then(|low| low.value_of("value"))
        .and_then(date);
    let high = time
        .child("high")
        .and_then(|high| high.value_of("value"))
        .and_then(date);
    (low, high)
}

/// The effectiveTime of an element that is a period or point (not a PIVL frequency).
fn effective(node: &Node) -> (Option<String>, Option<String>) {
    let time = node
        .children_named("effectiveTime")
        .find(|time| !matches!(time.attribute("type"), Some("PIVL_TS" | "EIVL_TS")));
    period(time)
}

fn status_of(node: &Node) -> Option<String> {
    node.child("statusCode")
        .and_then(|status| status.value_of("code"))
        .map(str::to_lowercase)
}

/// First descendant (or self) element named `name` having template `template`, else the
/// first named `name`.
fn find_template<'x>(node: &'x Node, name: &str, template: &str) -> Option<&'x Node> {
    let all: Vec<&Node> = std::iter::once(node).chain(node.descendants()).collect();
    all.iter()
        .find(|element| element.name == name && element.has_template(template))
        .or_else(|| all.iter().find(|element| element.name == name))
        .copied()
}

fn templated<'x>(node: &'x Node, template: &str) -> Vec<&'x Node> {
    node.descendants()
        .into_iter()
        .filter(|element| element.has_template(template))
        .collect()
}

const T: &str = "2.16.840.1.113883.10.20.22.4.";

/// The facts of a section's entries, by section kind.
fn facts(section: &Section<'_>, ids: &HashMap<String, String>) -> Vec<Fact> {
    let entries: Vec<&Node> = section.node.children_named("entry").collect();
    let mut facts: Vec<Fact> = match section.heading.name {
        "Problems" => entries.iter().filter_map(|e| problem(e, ids)).collect(),
        "Medications" => entries.iter().filter_map(|e| medication(e, ids)).collect(),
        "Allergies" => entries.iter().filter_map(|e| allergy(e, ids)).collect(),
        "Results" => recent(
            entries
                .iter()
                .flat_map(|e| observations(e, "2", ids))
                .collect(),
        ),
        "Vital Signs" => recent(
            entries
                .iter()
                .flat_map(|e| observations(e, "27", ids))
                .collect(),
        ),
        "Procedures" => entries.iter().filter_map(|e| procedure(e, ids)).collect(),
        "Immunizations" => entries
            .iter()
            .filter_map(|e| immunization(e, ids))
            .collect(),
        "Encounters" => entries.iter().filter_map(|e| encounter(e, ids)).collect(),
        _ => Vec::new(),
    };
    facts.retain(|fact| !fact.name.is_empty());
    facts
}

fn dates_text(low: Option<String>, high: Option<String>, since: &str) -> String {
    match (low, high) {
        (Some(low), Some(high)) => format!("{low} to {high}"),
        (Some(low), None) => format!("{since} {low}"),
        (None, Some(high)) => format!("until {high}"),
        (None, None) => String::new(),
    }
}

fn join_parts(name: &str, parts: &[String]) -> String {
    let parts: Vec<&str> = parts
        .iter()
        .map(|part| part.trim())
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        name.to_string()
    } else {
        format!("{name} — {}", parts.join("; "))
    }
}

fn problem(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let observation = find_template(entry, "observation", &format!("{T}4"))?;
    let value = observation.child("value")?;
    let name = concept_name(value, ids)?;
    let act = entry.child("act");
    // Status: the problem status observation, else the concern's status.
    let status = templated(entry, &format!("{T}6"))
        .first()
        .and_then(|status| status.child("value"))
        .and_then(|value| concept_name(value, ids))
        .map(|status| status.to_lowercase())
        .or_else(|| {
            act.and_then(status_of).map(|status| match status.as_str() {
                "completed" => "resolved".to_string(),
                other => other.to_string(),
            })
        });
    let (mut low, mut high) = effective(observation);
    if low.is_none() && high.is_none() {
        (low, high) = act.map(effective).unwrap_or_default();
    }
    let status = match (status, &high) {
        (Some(status), _) => status,
        (None, Some(_)) => "resolved".to_string(),
        (None, None) => String::new(),
    };
    let negated = observation.attribute("negationInd") == Some("true");
    let mut parts = vec![status, dates_text(low.clone(), None, "onset")];
    if let Some(high) = high {
        parts.push(format!("resolved {high}"));
    }
    let text = join_parts(&name, &parts);
    Some(Fact {
        text: if negated {
            format!("Not present: {text}")
        } else {
            text
        },
        date: low.unwrap_or_default(),
        references: references(value.child("originalText"), entry),
        name,
    })
}

fn medication(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let administration = find_template(entry, "substanceAdministration", &format!("{T}16"))?;
    let material =
        administration.path(&["consumable", "manufacturedProduct", "manufacturedMaterial"])?;
    let code = material.child("code");
    let name = code.and_then(|code| concept_name(code, ids)).or_else(|| {
        material
            .child("name")
            .map(Node::text)
            .filter(|n| !n.is_empty())
    })?;
    let mut parts = Vec::new();
    if let Some(dose) = administration.child("doseQuantity") {
        if let Some(value) = dose.value_of("value") {
            let unit = dose
                .value_of("unit")
                .filter(|unit| *unit != "1")
                .unwrap_or("");
            parts.push(format!("dose {value} {unit}").trim().to_string());
        }
    }
    if let Some(route) = administration
        .child("routeCode")
        .and_then(|r| r.value_of("displayName"))
    {
        parts.push(route.to_lowercase());
    }
    let frequency = administration
        .children_named("effectiveTime")
        .find(|time| time.attribute("type") == Some("PIVL_TS"))
        .and_then(|time| time.child("period"))
        .and_then(|period| {
            let value = period.value_of("value")?;
            Some(format!(
                "every {value} {}",
                period.value_of("unit").unwrap_or("")
            ))
        });
    parts.extend(frequency.map(|f| f.trim().to_string()));
    let (low, high) = effective(administration);
    let status = status_of(administration).unwrap_or_default();
    let planned = administration.attribute("moodCode") == Some("INT");
    parts.push(dates_text(low.clone(), high, "since"));
    if !status.is_empty() {
        parts.push(format!("status {status}"));
    }
    if planned {
        parts.push("planned".to_string());
    }
    Some(Fact {
        text: join_parts(&name, &parts),
        date: low.unwrap_or_default(),
        references: references(code.and_then(|code| code.child("originalText")), entry),
        name,
    })
}

fn allergy(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let observation = find_template(entry, "observation", &format!("{T}7"))?;
    let substance_code =
        observation.path(&["participant", "participantRole", "playingEntity", "code"]);
    let substance = substance_code
        .and_then(|code| concept_name(code, ids))
        .or_else(|| {
            observation
                .path(&["participant", "participantRole", "playingEntity", "name"])
                .map(Node::text)
                .filter(|name| !name.is_empty())
        });
    let negated = observation.attribute("negationInd") == Some("true");
    let kind = observation
        .child("value")
        .and_then(|value| concept_name(value, ids));
    if negated {
        // "No known allergies" is a fact the record states; name what it denies.
        let denied = substance
            .or(kind)
            .unwrap_or_else(|| "allergies".to_string());
        return Some(Fact {
            text: format!("No known {denied}"),
            name: "no known".to_string(),
            date: String::new(),
            references: references(None, entry),
        });
    }
    let name = substance.or(kind)?;
    let mut parts = Vec::new();
    let reactions: Vec<String> = templated(observation, &format!("{T}9"))
        .into_iter()
        .filter_map(|reaction| {
            reaction
                .child("value")
                .and_then(|value| concept_name(value, ids))
        })
        .collect();
    if !reactions.is_empty() {
        parts.push(format!("reaction: {}", reactions.join(", ")));
    }
    if let Some(severity) = templated(observation, &format!("{T}8"))
        .first()
        .and_then(|severity| severity.child("value"))
        .and_then(|value| concept_name(value, ids))
    {
        parts.push(format!("severity: {severity}"));
    }
    let act = entry.child("act");
    let status = templated(entry, &format!("{T}28"))
        .first()
        .and_then(|status| status.child("value"))
        .and_then(|value| concept_name(value, ids))
        .or_else(|| act.and_then(status_of))
        .unwrap_or_default()
        .to_lowercase();
    let (low, high) = act.map(effective).unwrap_or_default();
    let (low, high) = if low.is_none() && high.is_none() {
        effective(observation)
    } else {
        (low, high)
    };
    let status_dates = format!("{status} {}", dates_text(low.clone(), high, "since"));
    parts.push(status_dates.trim().to_string());
    Some(Fact {
        text: join_parts(&format!("Allergy to {name}"), &parts),
        date: low.unwrap_or_default(),
        references: references(
            substance_code.and_then(|code| code.child("originalText")),
            entry,
        ),
        name,
    })
}

/// Result (template 4.2) or vital sign (4.27) observations of an entry.
fn observations(entry: &Node, template: &str, ids: &HashMap<String, String>) -> Vec<Fact> {
    let mut found = templated(entry, &format!("{T}{template}"));
    if found.is_empty() {
        found = entry
            .descendants()
            .into_iter()
            .filter(|element| element.name == "observation" && element.child("value").is_some())
            .collect();
    }
    let organizer_date = entry
        .child("organizer")
        .map(effective)
        .and_then(|(low, _)| low);
    found
        .into_iter()
        .filter_map(|observation| {
            let code = observation.child("code")?;
            let name = concept_name(code, ids)?;
            let value = observation.child("value").and_then(|value| {
                if let Some(number) = value.value_of("value") {
                    let unit = value
                        .value_of("unit")
                        .filter(|unit| *unit != "1")
                        .unwrap_or("");
                    return Some(format!("{number} {unit}").trim().to_string());
                }
                concept_name(value, ids).or_else(|| Some(value.text()).filter(|t| !t.is_empty()))
            });
            let value = value?;
            let interpretation = observation
                .child("interpretationCode")
                .and_then(|code| {
                    code.value_of("displayName")
                        .or_else(|| code.value_of("code"))
                })
                .map(|text| format!(" ({text})"))
                .unwrap_or_default();
            let when = effective(observation).0.or_else(|| organizer_date.clone());
            let mut text = format!("{name}: {value}{interpretation}");
            if let Some(when) = &when {
                text.push_str(&format!(" on {when}"));
            }
            Some(Fact {
                text,
                date: when.unwrap_or_default(),
                references: references(code.child("originalText"), observation),
                name,
            })
        })
        .collect()
}

/// The most recent observation of each test, newest first, at most [`MAX_RECENT`].
fn recent(mut facts: Vec<Fact>) -> Vec<Fact> {
    facts.sort_by(|a, b| b.date.cmp(&a.date));
    let mut seen = std::collections::HashSet::new();
    facts.retain(|fact| seen.insert(fact.name.to_lowercase()));
    facts.truncate(MAX_RECENT);
    facts
}

fn procedure(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let element = entry
        .elements()
        .find(|e| matches!(e.name.as_str(), "procedure" | "observation" | "act"))?;
    let code = element.child("code")?;
    let name = concept_name(code, ids)?;
    let (low, high) = effective(element);
    let status = status_of(element).unwrap_or_default();
    let parts = vec![dates_text(low.clone(), high, "on"), status];
    Some(Fact {
        text: join_parts(&name, &parts),
        date: low.unwrap_or_default(),
        references: references(code.child("originalText"), entry),
        name,
    })
}

fn immunization(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let administration = find_template(entry, "substanceAdministration", &format!("{T}52"))?;
    let code = administration.path(&[
        "consumable",
        "manufacturedProduct",
        "manufacturedMaterial",
        "code",
    ])?;
    let name = concept_name(code, ids)?;
    let (low, _) = effective(administration);
    let mut parts = vec![dates_text(low.clone(), None, "on")];
    if administration.attribute("negationInd") == Some("true") {
        parts.push("not given".to_string());
    } else if let Some(status) = status_of(administration) {
        parts.push(status);
    }
    Some(Fact {
        text: join_parts(&name, &parts),
        date: low.unwrap_or_default(),
        references: references(code.child("originalText"), entry),
        name,
    })
}

fn encounter(entry: &Node, ids: &HashMap<String, String>) -> Option<Fact> {
    let encounter = find_template(entry, "encounter", &format!("{T}49"))?;
    let code = encounter.child("code")?;
    let name = concept_name(code, ids)?;
    let (low, _) = effective(encounter);
    let mut parts = vec![dates_text(low.clone(), None, "on")];
    let diagnoses: Vec<String> = encounter
        .descendants()
        .into_iter()
        .filter(|element| element.name == "observation")
        .filter_map(|observation| observation.child("value"))
        .filter_map(|value| concept_name(value, ids))
        .collect();
    if !diagnoses.is_empty() {
        parts.push(format!("diagnosis: {}", diagnoses.join(", ")));
    }
    Some(Fact {
        text: join_parts(&name, &parts),
        date: low.unwrap_or_default(),
        references: references(code.child("originalText"), entry),
        name,
    })
}
