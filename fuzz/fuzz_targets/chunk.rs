//! Fuzzes the chunker and checks the invariants its docs promise (`vellum_extract::chunk`):
//! - every chunk comes from one page, numbered from 1 (`Chunk::page`);
//! - ordinals count from 0, consecutive across pages (`Chunk::ordinal`);
//! - a chunk's text is its words joined by single spaces (`Chunk::text`; "whitespace is
//!   normalised to single spaces"), so it is never empty and has no leading or trailing
//!   whitespace, and empty pages give no chunks;
//! - at most `max_words` words per chunk (`ChunkOptions::max_words`);
//! - "same pages and options, same chunks".
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_extract::chunk::{chunk_pages, ChunkOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pages: Vec<String> = text.split('\x0c').map(str::to_string).collect();
    let options = ChunkOptions::default();
    let chunks = chunk_pages(&pages, &options);

    for (idx, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.ordinal as usize, idx, "ordinals are 0..n consecutive");
        assert!(
            chunk.page >= 1 && chunk.page as usize <= pages.len(),
            "chunk {idx} has page {} of {}",
            chunk.page,
            pages.len()
        );
        assert!(!chunk.text.is_empty(), "chunk {idx} is empty");
        assert_eq!(
            chunk.text.trim(),
            chunk.text,
            "chunk {idx} has leading/trailing whitespace"
        );
        assert!(
            chunk
                .text
                .split(' ')
                .all(|word| !word.is_empty() && !word.chars().any(char::is_whitespace)),
            "chunk {idx} text is not words joined by single spaces: {:?}",
            chunk.text
        );
        assert!(
            chunk.text.split(' ').count() <= options.max_words.max(1),
            "chunk {idx} has more than max_words words"
        );
        let page_text = &pages[chunk.page as usize - 1];
        assert!(
            page_text.split_whitespace().next().is_some(),
            "chunk {idx} comes from an empty page"
        );
    }
    let pages_seen: Vec<u32> = chunks.iter().map(|chunk| chunk.page).collect();
    assert!(
        pages_seen.windows(2).all(|pair| pair[0] <= pair[1]),
        "chunks follow page order"
    );
    assert_eq!(
        chunks,
        chunk_pages(&pages, &options),
        "output is deterministic"
    );
});
