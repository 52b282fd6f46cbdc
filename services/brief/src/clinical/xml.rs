//! A small element tree for a C-CDA (about 100 KB each): the coded entries are easier to read as
//! a tree than as a stream. DTDs are never read, entities are only the five predefined ones and
//! character references, and depth and size are capped (hostile files nest without end).

use quick_xml::events::{BytesStart, Event};

/// Deepest element nesting accepted (as ingest's C-CDA reader).
const MAX_DEPTH: usize = 256;
/// Most elements accepted (a real C-CDA has a few thousand).
const MAX_NODES: usize = 500_000;

/// An element: local name (no prefix), attributes (local names), children in order.
#[derive(Debug, Default)]
pub(crate) struct Node {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Child>,
    /// Written `<x/>`: ingest's narrative reader sees no start for it (an empty `<td/>` adds
    /// no cell separator).
    pub self_closing: bool,
}

#[derive(Debug)]
pub(crate) enum Child {
    Element(Node),
    Text(String),
}

impl Node {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A non-empty attribute value, trimmed.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.attribute(name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter_map(|child| match child {
            Child::Element(node) => Some(node),
            Child::Text(_) => None,
        })
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.elements().find(|node| node.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> {
        self.elements().filter(move |node| node.name == name)
    }

    /// Follows a path of child names (`["consumable", "manufacturedProduct", ...]`).
    pub fn path(&self, names: &[&str]) -> Option<&Node> {
        names.iter().try_fold(self, |node, name| node.child(name))
    }

    /// All descendants (not self) in document order.
    pub fn descendants(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut stack: Vec<&Node> = self.elements().collect();
        stack.reverse();
        while let Some(node) = stack.pop() {
            out.push(node);
            let before = stack.len();
            stack.extend(node.elements());
            stack[before..].reverse();
        }
        out
    }

    pub fn has_template(&self, root: &str) -> bool {
        self.children_named("templateId")
            .any(|template| template.attribute("root") == Some(root))
    }

    /// The text content, whitespace squashed.
    pub fn text(&self) -> String {
        let mut raw = String::new();
        collect_text(self, &mut raw);
        squash(&raw)
    }
}

fn collect_text(node: &Node, out: &mut String) {
    for child in &node.children {
        match child {
            Child::Text(text) => out.push_str(text),
            Child::Element(element) => {
                out.push(' ');
                collect_text(element, out);
            }
        }
    }
}

pub(crate) fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `xml` into its root element, or says why not.
pub(crate) fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|error| format!("XML error: {error}"))?;
        match event {
            Event::Start(element) => {
                if stack.len() > MAX_DEPTH {
                    return Err(format!("elements nested more than {MAX_DEPTH} deep"));
                }
                count += 1;
                if count > MAX_NODES {
                    return Err("too many elements".to_string());
                }
                stack.push(element_node(&element, false));
            }
            Event::Empty(element) => {
                count += 1;
                if count > MAX_NODES {
                    return Err("too many elements".to_string());
                }
                let node = element_node(&element, true);
                if let Some(parent) = stack.last_mut() {
                    parent.children.push(Child::Element(node));
                }
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err("unbalanced end tag".to_string());
                }
                if let Some(done) = stack.pop() {
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(Child::Element(done));
                    }
                }
            }
            Event::Text(content) => {
                let text = content
                    .decode()
                    .map_err(|error| format!("bad text: {error}"))?;
                push_text(&mut stack, &text);
            }
            Event::CData(content) => {
                let text = content
                    .decode()
                    .map_err(|error| format!("bad CDATA: {error}"))?;
                push_text(&mut stack, &text);
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => reference.decode().ok().and_then(|name| {
                        quick_xml::escape::resolve_predefined_entity(&name).map(str::to_string)
                    }),
                };
                if let Some(resolved) = resolved {
                    push_text(&mut stack, &resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let document = stack.into_iter().next().unwrap_or_default();
    document
        .children
        .into_iter()
        .find_map(|child| match child {
            Child::Element(node) => Some(node),
            Child::Text(_) => None,
        })
        .ok_or_else(|| "no root element".to_string())
}

fn push_text(stack: &mut [Node], text: &str) {
    if let Some(node) = stack.last_mut() {
        // Adjacent text and references are one text run (as ingest concatenates them).
        if let Some(Child::Text(previous)) = node.children.last_mut() {
            previous.push_str(text);
        } else {
            node.children.push(Child::Text(text.to_string()));
        }
    }
}

fn element_node(element: &BytesStart<'_>, self_closing: bool) -> Node {
    let attributes = element
        .attributes()
        .flatten()
        .filter_map(|attribute| {
            let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
            let value = attribute.unescape_value().ok()?.into_owned();
            Some((key, value))
        })
        .collect();
    Node {
        name: String::from_utf8_lossy(element.local_name().as_ref()).into_owned(),
        attributes,
        children: Vec::new(),
        self_closing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_and_refuses_deep_nesting() {
        let root = parse(r#"<a x="1"><b>t &amp; u</b><c/></a>"#).unwrap_or_default();
        assert_eq!(root.name, "a");
        assert_eq!(root.attribute("x"), Some("1"));
        assert_eq!(root.child("b").map(Node::text).as_deref(), Some("t & u"));
        assert!(root.child("c").is_some_and(|c| c.self_closing));
        let deep = "<a>".repeat(300) + &"</a>".repeat(300);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn never_expands_dtd_entities() {
        let xml = r#"<!DOCTYPE a [<!ENTITY e "BOOM">]><a>&e;x</a>"#;
        let root = parse(xml).unwrap_or_default();
        assert_eq!(root.text(), "x");
    }
}
