//! Loads a BEIR folder. Ids are strings; relevance is an integer grade (0 = not relevant).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// One corpus document.
#[derive(Debug, Clone, Deserialize)]
pub struct BeirDocument {
    /// The document id (`_id`).
    #[serde(rename = "_id")]
    pub id: String,
    /// Its title, possibly empty.
    #[serde(default)]
    pub title: String,
    /// Its text.
    #[serde(default)]
    pub text: String,
}

impl BeirDocument {
    /// The text to index: the title, then the text. BEIR convention: the title is part of the
    /// indexed text, once; also giving it as the document's title would count its words twice
    /// in BM25 (title and text fields).
    pub fn indexed_text(&self) -> String {
        format!("{}\n{}", self.title, self.text)
    }
}

#[derive(Deserialize)]
struct BeirQuery {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

/// A BEIR set: corpus, queries, and judgments of one split.
#[derive(Debug, Clone, Default)]
pub struct BeirSet {
    /// The corpus documents in file order.
    pub corpus: Vec<BeirDocument>,
    /// Query id → text.
    pub queries: BTreeMap<String, String>,
    /// Query id → (document id → relevance grade > 0).
    pub qrels: BTreeMap<String, BTreeMap<String, u32>>,
}

/// Loads `dir/corpus.jsonl`, `dir/queries.jsonl` and `dir/qrels/{split}.tsv`. A set without
/// `corpus.jsonl` has an empty corpus: its documents are files, ingested like any others (the
/// CUAD clause queries over the contract PDFs).
pub fn load_beir(dir: &Path, split: &str) -> Result<BeirSet> {
    let corpus_path = dir.join("corpus.jsonl");
    let corpus = if corpus_path.exists() {
        read_jsonl::<BeirDocument>(&corpus_path)?
    } else {
        Vec::new()
    };
    let queries = read_jsonl::<BeirQuery>(&dir.join("queries.jsonl"))?
        .into_iter()
        .map(|q| (q.id, q.text))
        .collect();
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let qrels_file = open(&qrels_path)?;
    let mut qrels: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (line_idx, line) in BufReader::new(qrels_file).lines().enumerate() {
        let line = line.map_err(|e| eval_error(&qrels_path, e))?;
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() < 3 || (line_idx == 0 && fields[0] == "query-id") {
            continue;
        }
        let Ok(grade) = fields[2].parse::<i64>() else {
            return Err(Error::EvalFile {
                path: qrels_path.clone(),
                reason: format!(
                    "line {}: score {:?} is not an integer",
                    line_idx + 1,
                    fields[2]
                ),
            });
        };
        if grade > 0 {
            qrels
                .entry(fields[0].to_string())
                .or_default()
                .insert(fields[1].to_string(), grade as u32);
        }
    }
    Ok(BeirSet {
        corpus,
        queries,
        qrels,
    })
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| eval_error(path, e))
}

fn eval_error(path: &Path, err: impl std::fmt::Display) -> Error {
    Error::EvalFile {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let reader = BufReader::new(open(path)?);
    let mut items = Vec::new();
    for (line_idx, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| eval_error(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line)
            .map_err(|e| eval_error(path, format!("line {}: {e}", line_idx + 1)))?;
        items.push(item);
    }
    Ok(items)
}
