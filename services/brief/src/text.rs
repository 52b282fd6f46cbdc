//! Text helpers shared by the summarizers: sentences of a passage as byte ranges, so a quote
//! is always a slice of the passage.

/// Byte ranges of the sentences of `text` (a sentence ends at `.`, `;`, `?`, `!` or `:` followed
/// by a space and an upper-case letter, a digit or an opening bracket or quote; and at the end of
/// the text). Ranges are trimmed of surrounding spaces and never empty.
pub fn sentences(text: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b'.' | b'?' | b'!' | b';') && i + 2 < bytes.len() && bytes[i + 1] == b' ' {
            let next = bytes[i + 2];
            let starts_sentence =
                next.is_ascii_uppercase() || next.is_ascii_digit() || matches!(next, b'(' | b'"');
            if starts_sentence && !is_abbreviation(&text[start..=i]) {
                push_trimmed(text, start, i + 1, &mut ranges);
                start = i + 2;
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    push_trimmed(text, start, bytes.len(), &mut ranges);
    ranges
}

fn push_trimmed(text: &str, start: usize, end: usize, ranges: &mut Vec<std::ops::Range<usize>>) {
    let slice = &text[start..end];
    let leading = slice.len() - slice.trim_start().len();
    let trailing = slice.len() - slice.trim_end().len();
    if start + leading < end - trailing {
        ranges.push(start + leading..end - trailing);
    }
}

/// Abbreviations whose period does not end a sentence (legal text is full of them).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "no", "nos", "vs", "v", "inc", "co", "corp",
    "ltd", "llc", "l.l.c", "etc", "e.g", "i.e", "cf", "art", "sec", "para", "fig", "approx",
    "dept", "u.s", "u.s.c", "c.f.r", "al", "id", "ibid", "vol", "pp", "p", "ex", "exh", "seq",
];

fn is_abbreviation(sentence: &str) -> bool {
    let without_period = sentence.strip_suffix('.').unwrap_or(sentence);
    let word = without_period
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    // A single letter ("A.", "B.") is an initial or a list label.
    word.chars().count() == 1 || ABBREVIATIONS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_slices_and_skip_abbreviations() {
        let text = "Acme Inc. shall pay. The term is 5 years; Either party may terminate. End";
        let got: Vec<&str> = sentences(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(
            got,
            vec![
                "Acme Inc. shall pay.",
                "The term is 5 years;",
                "Either party may terminate.",
                "End"
            ]
        );
    }
}
