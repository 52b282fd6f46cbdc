//! Chunking: splits page texts into overlapping pieces sized for the embedder.
//!
//! A chunk never crosses a page boundary, so each carries exactly one page number for
//! citations. Within a page, chunks end at a paragraph or sentence boundary when one lies in
//! the second half of the allowed length, else at the word limit; consecutive chunks of a page
//! overlap by up to `overlap_words` words, snapped to a sentence start when possible so the
//! overlap is whole sentences. Whitespace is normalised to single spaces. The output depends
//! only on the input: same pages and options, same chunks.

/// A piece of one page's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position of the chunk within its document, from 0, consecutive across pages.
    pub ordinal: u32,
    /// The page the chunk comes from, from 1.
    pub page: u32,
    /// The chunk's words joined by single spaces.
    pub text: String,
}

/// Chunk size and overlap, in whitespace-separated words.
#[derive(Debug, Clone)]
pub struct ChunkOptions {
    /// Most words in one chunk (at least 1 is used).
    pub max_words: usize,
    /// Words repeated from the end of a chunk at the start of the next one on the same page
    /// (capped at half the chunk so chunking always moves forward).
    pub overlap_words: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_words: 160,
            overlap_words: 32,
        }
    }
}

/// Abbreviations whose trailing period does not end a sentence (compared without the period,
/// case-insensitively). Legal text is full of them.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "nos", "vs", "v", "inc", "co", "corp",
    "ltd", "llc", "l.l.c", "etc", "e.g", "i.e", "cf", "art", "sec", "para", "fig", "approx",
    "dept", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "u.s", "u.s.c", "c.f.r", "et al", "al", "id", "ibid", "op", "cit", "cl", "ch", "vol", "pp",
    "p", "ex", "exh", "seq",
];

/// A paragraph of at most this many words just before a chunk break is taken for the heading
/// of what follows and moved to the next chunk.
const MAX_HEADING_WORDS: usize = 8;

/// Splits each page into chunks (see the module docs). Empty pages give no chunks.
pub fn chunk_pages(pages: &[String], options: &ChunkOptions) -> Vec<Chunk> {
    chunk_pages_by(pages, options, &|_: &[&str]| true)
}

/// Like [`chunk_pages`], but also keeps every chunk within `max_tokens` as counted by
/// `count_tokens` (the embedder's tokenizer, without special tokens): a chunk that would be
/// longer is cut earlier, at a boundary where possible. A single word longer than
/// `max_tokens` still becomes a chunk of its own (the embedder will truncate it).
pub fn chunk_pages_with(
    pages: &[String],
    options: &ChunkOptions,
    count_tokens: &dyn Fn(&str) -> usize,
    max_tokens: usize,
) -> Vec<Chunk> {
    chunk_pages_by(pages, options, &|words: &[&str]| {
        count_tokens(&words.join(" ")) <= max_tokens
    })
}

/// The words of one page and where its sentences and paragraphs start.
struct PageWords<'a> {
    words: Vec<&'a str>,
    /// `is_sentence_start[i]`: word `i` starts a sentence (paragraph starts included).
    is_sentence_start: Vec<bool>,
    /// `is_paragraph_start[i]`: word `i` starts a paragraph.
    is_paragraph_start: Vec<bool>,
}

impl<'a> PageWords<'a> {
    fn new(page: &'a str) -> Self {
        let mut words = Vec::new();
        let mut is_paragraph_start = Vec::new();
        let mut at_paragraph_start = true;
        for line in page.lines() {
            if line.trim().is_empty() {
                at_paragraph_start = true;
                continue;
            }
            for word in line.split_whitespace() {
                words.push(word);
                is_paragraph_start.push(at_paragraph_start);
                at_paragraph_start = false;
            }
        }
        let is_sentence_start = (0..words.len())
            .map(|idx| {
                let starts_paragraph = is_paragraph_start.get(idx).copied().unwrap_or(false);
                let after_sentence_end = idx > 0
                    && ends_sentence(
                        words.get(idx - 1).copied().unwrap_or(""),
                        words.get(idx).copied().unwrap_or(""),
                    );
                starts_paragraph || after_sentence_end
            })
            .collect();
        PageWords {
            words,
            is_sentence_start,
            is_paragraph_start,
        }
    }

    fn is_sentence_start(&self, idx: usize) -> bool {
        self.is_sentence_start.get(idx).copied().unwrap_or(false)
    }

    fn is_paragraph_start(&self, idx: usize) -> bool {
        self.is_paragraph_start.get(idx).copied().unwrap_or(false)
    }
}

/// Does `word` end a sentence, given the word after it?
fn ends_sentence(word: &str, next_word: &str) -> bool {
    let core = word.trim_end_matches(['"', '\'', ')', ']', '’', '”', '»']);
    let Some(last) = core.chars().last() else {
        return false;
    };
    if !matches!(last, '.' | '!' | '?' | '…') {
        return false;
    }
    let next_starts_sentence = next_word.chars().next().is_some_and(|first| {
        first.is_uppercase()
            || first.is_numeric()
            || matches!(
                first,
                '"' | '\'' | '(' | '[' | '“' | '‘' | '«' | '§' | '•' | '-'
            )
    });
    if !next_starts_sentence {
        return false;
    }
    if last == '.' {
        let stem = core
            .trim_end_matches('.')
            .trim_start_matches(['"', '\'', '(', '[', '“', '‘', '«']);
        let is_initial = stem.chars().count() == 1 && stem.chars().all(char::is_alphabetic);
        let is_abbreviation = ABBREVIATIONS
            .iter()
            .any(|abbreviation| stem.eq_ignore_ascii_case(abbreviation));
        // "2.1." style section numbers and initials ("J.") introduce rather than end.
        let is_section_number = stem.chars().all(|c| c.is_ascii_digit() || c == '.');
        if is_initial || is_abbreviation || is_section_number {
            return false;
        }
    }
    true
}

fn chunk_pages_by(
    pages: &[String],
    options: &ChunkOptions,
    fits: &dyn Fn(&[&str]) -> bool,
) -> Vec<Chunk> {
    let max_words = options.max_words.max(1);
    let mut chunks = Vec::new();
    for (page_idx, page) in pages.iter().enumerate() {
        let page_number = u32::try_from(page_idx + 1).unwrap_or(u32::MAX);
        let page_words = PageWords::new(page);
        for (start, end) in page_ranges(&page_words, max_words, options.overlap_words, fits) {
            let text = page_words
                .words
                .get(start..end)
                .map(|words| words.join(" "))
                .unwrap_or_default();
            chunks.push(Chunk {
                ordinal: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                page: page_number,
                text,
            });
        }
    }
    chunks
}

/// Computes the word ranges `[start, end)` of one page's chunks.
fn page_ranges(
    page: &PageWords<'_>,
    max_words: usize,
    overlap_words: usize,
    fits: &dyn Fn(&[&str]) -> bool,
) -> Vec<(usize, usize)> {
    let num_words = page.words.len();
    let mut ranges = Vec::new();
    let mut start = 0usize;
    while start < num_words {
        let limit_end = longest_fitting_end(page, start, (start + max_words).min(num_words), fits);
        let end = if limit_end == num_words {
            num_words
        } else {
            boundary_end(page, start, limit_end)
        };
        ranges.push((start, end));
        if end >= num_words {
            break;
        }
        start = next_start(page, start, end, overlap_words);
    }
    ranges
}

/// Returns the largest `end` in `(start, upper]` whose words pass `fits` (at least
/// `start + 1`, so a single over-long word still makes progress). Token counts grow with the
/// number of words, so a binary search finds it in a few tokenizer calls.
fn longest_fitting_end(
    page: &PageWords<'_>,
    start: usize,
    upper: usize,
    fits: &dyn Fn(&[&str]) -> bool,
) -> usize {
    let window_fits = |end: usize| page.words.get(start..end).is_some_and(fits);
    if window_fits(upper) {
        return upper;
    }
    // Invariant: `low` fits (or is start + 1, the forced minimum), `high` does not.
    let (mut low, mut high) = (start + 1, upper);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if window_fits(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// Picks where a chunk that cannot reach the page end should stop: the last paragraph start in
/// the later part of `(start, limit_end]`, else the last sentence start in its second half,
/// else `limit_end` itself.
fn boundary_end(page: &PageWords<'_>, start: usize, limit_end: usize) -> usize {
    let length = limit_end - start;
    let paragraph_floor = start + (length * 3 / 5).max(1);
    let sentence_floor = start + (length / 2).max(1);
    let last_paragraph_start = (paragraph_floor..=limit_end)
        .rev()
        .find(|idx| page.is_paragraph_start(*idx));
    // A short paragraph right before the break is most likely the heading of the next
    // section ("18. GOVERNING LAWS"): it goes with the text it introduces.
    let before_heading = last_paragraph_start.map(|paragraph_start| {
        (paragraph_start.saturating_sub(MAX_HEADING_WORDS)..paragraph_start)
            .rev()
            .find(|idx| page.is_paragraph_start(*idx))
            .filter(|heading_start| *heading_start >= paragraph_floor)
            .unwrap_or(paragraph_start)
    });
    before_heading
        .or_else(|| {
            (sentence_floor..=limit_end)
                .rev()
                .find(|idx| page.is_sentence_start(*idx))
        })
        .unwrap_or(limit_end)
}

/// Where the chunk after `[start, end)` begins: `overlap_words` back from `end` (at most half
/// the chunk), moved forward to the first sentence start inside the overlap if there is one.
fn next_start(page: &PageWords<'_>, start: usize, end: usize, overlap_words: usize) -> usize {
    let overlap = overlap_words.min((end - start) / 2);
    let overlap_start = end - overlap;
    (overlap_start..end)
        .find(|idx| page.is_sentence_start(*idx))
        .unwrap_or(overlap_start)
        .max(start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_words: usize, overlap_words: usize) -> ChunkOptions {
        ChunkOptions {
            max_words,
            overlap_words,
        }
    }

    fn numbered_words(count: usize) -> String {
        (0..count)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn word_count(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[test]
    fn chunks_keep_page_numbers_and_skip_empty_pages() {
        let pages = vec![
            "Page one text.".to_string(),
            "  \n ".to_string(),
            "Page three text.".to_string(),
        ];
        let chunks = chunk_pages(&pages, &ChunkOptions::default());
        let summary: Vec<(u32, u32, &str)> = chunks
            .iter()
            .map(|chunk| (chunk.ordinal, chunk.page, chunk.text.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![(0, 1, "Page one text."), (1, 3, "Page three text.")]
        );
    }

    #[test]
    fn no_chunk_exceeds_max_words_and_ordinals_are_consecutive() {
        let pages = vec![
            numbered_words(1000),
            numbered_words(37),
            numbered_words(161),
        ];
        let chunks = chunk_pages(&pages, &options(50, 10));
        assert!(chunks.iter().all(|chunk| word_count(&chunk.text) <= 50));
        for (idx, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.ordinal as usize, idx);
        }
        let pages_seen: Vec<u32> = chunks.iter().map(|chunk| chunk.page).collect();
        assert!(pages_seen.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(chunks.last().map(|chunk| chunk.page), Some(3));
    }

    #[test]
    fn consecutive_chunks_overlap_and_cover_every_word() {
        let page = numbered_words(300);
        let chunks = chunk_pages(std::slice::from_ref(&page), &options(100, 20));
        for pair in chunks.windows(2) {
            let previous: Vec<&str> = pair[0].text.split_whitespace().collect();
            let next: Vec<&str> = pair[1].text.split_whitespace().collect();
            assert_eq!(previous[previous.len() - 20..], next[..20]);
        }
        let mut covered: Vec<&str> = Vec::new();
        for chunk in &chunks {
            for word in chunk.text.split_whitespace() {
                if !covered.contains(&word) {
                    covered.push(word);
                }
            }
        }
        assert_eq!(covered.join(" "), page);
    }

    #[test]
    fn chunks_prefer_sentence_ends() {
        let sentence = "This sentence has exactly eight words in it. ";
        let page = sentence.repeat(10);
        let chunks = chunk_pages(&[page], &options(20, 0));
        assert!(chunks.len() >= 4);
        for chunk in &chunks {
            assert!(chunk.text.starts_with("This"), "{:?}", chunk.text);
            assert!(chunk.text.ends_with("it."), "{:?}", chunk.text);
        }
    }

    #[test]
    fn overlap_snaps_to_a_sentence_start() {
        let page = "Alpha beta gamma delta epsilon zeta. Eta theta iota. Kappa lambda mu nu xi omicron pi rho.";
        let chunks = chunk_pages(&[page.to_string()], &options(9, 4));
        assert_eq!(
            chunks[0].text,
            "Alpha beta gamma delta epsilon zeta. Eta theta iota."
        );
        assert!(
            chunks[1].text.starts_with("Eta theta iota. Kappa"),
            "{:?}",
            chunks[1].text
        );
    }

    #[test]
    fn short_heading_before_a_break_moves_to_the_next_chunk() {
        let body = "Words of a clause that go on. ".repeat(4);
        let page =
            format!("{body}\n\n18. GOVERNING LAW\n\n18.1 This Agreement is governed by the laws.");
        let chunks = chunk_pages(&[page], &options(30, 0));
        assert!(
            chunks[1].text.starts_with("18. GOVERNING LAW 18.1"),
            "{chunks:?}"
        );
        assert!(chunks[0].text.ends_with("go on."), "{chunks:?}");
    }

    #[test]
    fn abbreviations_and_section_numbers_do_not_end_sentences() {
        assert!(!ends_sentence("Inc.", "The"));
        assert!(!ends_sentence("2.1.", "Term"));
        assert!(!ends_sentence("J.", "Smith"));
        assert!(!ends_sentence("end.", "lowercase"));
        assert!(ends_sentence("Agreement.", "The"));
        assert!(ends_sentence("done.”", "Next"));
    }

    #[test]
    fn whitespace_is_normalised() {
        let chunks = chunk_pages(&["  a\tb\n\n c \u{a0} d  ".to_string()], &options(10, 2));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "a b c d");
    }

    #[test]
    fn output_is_stable_for_same_input() {
        let pages = vec![
            "First sentence here. Second one follows! Third? ".repeat(40),
            "Another page. ".repeat(100),
        ];
        let first = chunk_pages(&pages, &ChunkOptions::default());
        let second = chunk_pages(&pages, &ChunkOptions::default());
        assert_eq!(first, second);
    }

    #[test]
    fn unicode_text_is_split_on_char_boundaries() {
        let page = "Ünïcödé 日本語の文章です。 emoji 👩‍⚖️ naïve façade. ".repeat(50);
        let chunks = chunk_pages(&[page], &options(7, 3));
        assert!(chunks.len() > 10);
        for chunk in &chunks {
            assert!(word_count(&chunk.text) <= 7);
            assert!(!chunk.text.contains('\u{fffd}'));
        }
    }

    #[test]
    fn token_limit_splits_chunks_further() {
        // Each "word" counts as 3 tokens: 160 words would be 480 tokens.
        let count_tokens = |text: &str| text.split_whitespace().count() * 3;
        let page = numbered_words(500);
        let chunks = chunk_pages_with(&[page], &ChunkOptions::default(), &count_tokens, 254);
        assert!(chunks.iter().all(|chunk| count_tokens(&chunk.text) <= 254));
        assert!(chunks.iter().any(|chunk| word_count(&chunk.text) == 84));
        let plain = chunk_pages(&[numbered_words(500)], &ChunkOptions::default());
        assert!(chunks.len() > plain.len());
    }

    #[test]
    fn over_long_single_word_still_makes_progress() {
        let count_tokens = |text: &str| text.len();
        let page = format!("short {} short", "x".repeat(500));
        let chunks = chunk_pages_with(&[page], &options(10, 2), &count_tokens, 100);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].text.len(), 500);
    }

    #[test]
    fn degenerate_options_terminate() {
        let page = numbered_words(50);
        let chunks = chunk_pages(&[page], &options(0, 10));
        assert_eq!(chunks.len(), 50);
        let chunks = chunk_pages(&[numbered_words(50)], &options(2, 5));
        assert!(chunks.len() >= 25 && chunks.len() <= 50);
    }
}
