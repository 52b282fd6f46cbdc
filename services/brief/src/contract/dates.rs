//! Dates as contracts write them ("July 6, 2020", "the 5th day of February, 2020",
//! "16th June 2004", "04/25/2018"), found as byte ranges and normalised to `M/D/YYYY`.

use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimpleDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl fmt::Display for SimpleDate {
    /// `M/D/YYYY`, the form CUAD's answers use (with a four-digit year).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.month, self.day, self.year)
    }
}

impl SimpleDate {
    fn new(year: i32, month: u32, day: u32) -> Option<SimpleDate> {
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && (1900..=2100).contains(&year);
        valid.then_some(SimpleDate { year, month, day })
    }

    /// The same day `months` later (clamped to the month's last day): a term of "five (5)
    /// years from the Effective Date" ends on its fifth anniversary.
    pub fn plus_months(self, months: u32) -> SimpleDate {
        let total = self.year * 12 + (self.month as i32 - 1) + months as i32;
        let year = total.div_euclid(12);
        let month = total.rem_euclid(12) as u32 + 1;
        SimpleDate {
            year,
            month,
            day: self.day.min(days_in_month(year, month)),
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

const MONTHS: &str = r"(January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)";

fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let prefix = lower.get(..3)?;
    let index = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| *m == prefix)?;
    Some(index as u32 + 1)
}

/// "July 6, 2020", "December 1st, 2015".
static MONTH_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b{MONTHS}\.?\s+(\d{{1,2}})\s*(?:st|nd|rd|th)?\s*,?\s+(\d{{4}})\b"
    ))
    .expect("static regex")
});

/// "the 5th day of February, 2020", "16th June 2004", "1 August 2019".
static DAY_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(\d{{1,2}})\s*(?:st|nd|rd|th)?\s+(?:day\s+of\s+|of\s+)?{MONTHS}\.?\s*,?\s+(?:in\s+the\s+year\s+)?(\d{{4}})\b"
    ))
    .expect("static regex")
});

/// "04/25/2018" (month first, as in US contracts; day first when the first number exceeds 12).
static NUMERIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b").expect("static regex"));

/// "3-14-18", "4/6/07": a two-digit year (20xx below 50, else 19xx).
static NUMERIC_SHORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{1,2})([/-])(\d{1,2})([/-])(\d{2})\b").expect("static regex")
});

/// Every date in `text`, in order, as (byte range, date).
pub fn find_dates(text: &str) -> Vec<(Range<usize>, SimpleDate)> {
    let mut found: Vec<(Range<usize>, SimpleDate)> = Vec::new();
    let number = |s: &str| s.parse::<u32>().ok();
    // Dates with the month's name, month first then day first: group indexes of (month, day).
    for (pattern, month_group, day_group) in [(&*MONTH_FIRST, 1, 2), (&*DAY_FIRST, 2, 1)] {
        for caps in pattern.captures_iter(text) {
            let (Some(whole), Some(m), Some(d), Some(y)) = (
                caps.get(0),
                caps.get(month_group),
                caps.get(day_group),
                caps.get(3),
            ) else {
                continue;
            };
            if let (Some(month), Some(day), Some(year)) = (
                month_number(m.as_str()),
                number(d.as_str()),
                number(y.as_str()),
            ) {
                if let Some(date) = SimpleDate::new(year as i32, month, day) {
                    found.push((whole.range(), date));
                }
            }
        }
    }
    for caps in NUMERIC.captures_iter(text) {
        let (Some(whole), Some(a), Some(b), Some(y)) =
            (caps.get(0), caps.get(1), caps.get(2), caps.get(3))
        else {
            continue;
        };
        if let (Some(a), Some(b), Some(year)) =
            (number(a.as_str()), number(b.as_str()), number(y.as_str()))
        {
            let (month, day) = if a > 12 { (b, a) } else { (a, b) };
            if let Some(date) = SimpleDate::new(year as i32, month, day) {
                found.push((whole.range(), date));
            }
        }
    }
    for caps in NUMERIC_SHORT.captures_iter(text) {
        let (Some(whole), Some(a), Some(s1), Some(b), Some(s2), Some(y)) = (
            caps.get(0),
            caps.get(1),
            caps.get(2),
            caps.get(3),
            caps.get(4),
            caps.get(5),
        ) else {
            continue;
        };
        // The same separator twice, as dates are written ("3-14-18", not "10-1/2").
        if s1.as_str() != s2.as_str() {
            continue;
        }
        if let (Some(a), Some(b), Some(y)) =
            (number(a.as_str()), number(b.as_str()), number(y.as_str()))
        {
            let year = if y < 50 { 2000 + y } else { 1900 + y };
            let (month, day) = if a > 12 { (b, a) } else { (a, b) };
            if let Some(date) = SimpleDate::new(year as i32, month, day) {
                found.push((whole.range(), date));
            }
        }
    }
    // Overlapping matches ("1 August 2019" inside nothing else) are rare; keep the earliest.
    found.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<(Range<usize>, SimpleDate)> = Vec::new();
    for (range, date) in found {
        if out.last().is_some_and(|(r, _)| range.start < r.end) {
            continue;
        }
        out.push((range, date));
    }
    out
}

/// The first date written in `text`, if any.
pub fn normalise_date(text: &str) -> Option<SimpleDate> {
    find_dates(text).into_iter().next().map(|(_, d)| d)
}

/// Number words and figures for durations: "five (5)", "twelve (12)", "3", "one".
pub fn number_value(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse::<u32>() {
        return Some(n);
    }
    let n = match word.to_ascii_lowercase().as_str() {
        "one" | "a" | "an" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "fifteen" => 15,
        "eighteen" => 18,
        "twenty" => 20,
        "twenty-four" => 24,
        "twenty-five" => 25,
        "thirty" => 30,
        "thirty-six" => 36,
        "forty-five" => 45,
        "sixty" => 60,
        "ninety" => 90,
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        _ => return None,
    };
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_usual_forms() {
        let d = |y, m, day| SimpleDate {
            year: y,
            month: m,
            day,
        };
        assert_eq!(normalise_date("dated July 6, 2020"), Some(d(2020, 7, 6)));
        assert_eq!(
            normalise_date("this 5th day of February, 2020"),
            Some(d(2020, 2, 5))
        );
        assert_eq!(normalise_date("16th June 2004."), Some(d(2004, 6, 16)));
        assert_eq!(normalise_date("December 1st, 2015"), Some(d(2015, 12, 1)));
        assert_eq!(normalise_date("04/25/2018"), Some(d(2018, 4, 25)));
        assert_eq!(normalise_date("31/01/2025"), Some(d(2025, 1, 31)));
        assert_eq!(normalise_date("February 30, 2020"), None);
        assert_eq!(normalise_date("dated 3-14-18"), Some(d(2018, 3, 14)));
        assert_eq!(
            normalise_date("on the 1st of March, 2003"),
            Some(d(2003, 3, 1))
        );
        assert_eq!(d(2020, 7, 6).to_string(), "7/6/2020");
        assert_eq!(d(2020, 2, 29).plus_months(12), d(2021, 2, 28));
        assert_eq!(d(2011, 1, 11).plus_months(60), d(2016, 1, 11));
    }
}
