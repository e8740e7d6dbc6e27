//! Sentence splitting: Unicode UAX #29 sentence boundaries (unicode-segmentation), then the
//! usual repair of breaks after abbreviations and initials ("Mr. Knightley", "J. Smith").
//! A quoted question or exclamation followed by lower case is kept together too.
//! UAX #29 already keeps decimals ("3.14"), ellipses followed by lower case and
//! "?"/"!" inside quotes followed by lower case together.

use unicode_segmentation::UnicodeSegmentation;

/// Lower-cased abbreviations after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr.", "mrs.", "ms.", "dr.", "st.", "sr.", "jr.", "prof.", "rev.", "hon.", "capt.", "col.",
    "gen.", "lt.", "sgt.", "mt.", "vs.", "e.g.", "i.e.", "cf.", "no.", "nos.", "fig.", "vol.",
    "pp.", "ed.", "approx.", "dept.", "inc.", "ltd.", "co.", "jan.", "feb.", "mar.", "apr.",
    "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.", "a.m.", "p.m.", "u.s.",
    "sra.", "sr.", "dra.", "av.",
];

fn ends_with_abbreviation(s: &str) -> bool {
    let last = s.split_whitespace().last().unwrap_or("");
    // Strip opening punctuation such as '(' or '"'.
    let word = last.trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = word.to_lowercase();
    if ABBREVIATIONS.contains(&lower.as_str()) {
        return true;
    }
    // A single capital initial: "J." (but not a sentence ending in "I.").
    let mut chars = word.chars();
    matches!((chars.next(), chars.next(), chars.next()), (Some(c), Some('.'), None) if c.is_uppercase() && c != 'I')
}

/// `"Is it so?" said she.`: UAX #29 breaks after a quoted question or exclamation even when
/// the sentence goes on in lower case.
fn quoted_question_continues(prev: &str, next: &str) -> bool {
    let closes = [
        "?\"",
        "!\"",
        "?'",
        "!'",
        "?\u{201d}",
        "!\u{201d}",
        "?\u{2019}",
        "!\u{2019}",
    ];
    closes.iter().any(|c| prev.ends_with(c)) && next.chars().next().is_some_and(char::is_lowercase)
}

/// Splits `text` (one paragraph, lines already joined) into trimmed, non-empty sentences.
pub fn split(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut abbreviation = false;
    for piece in text.split_sentence_bounds() {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let glue = abbreviation
            || out
                .last()
                .is_some_and(|p| quoted_question_continues(p, piece));
        match out.last_mut() {
            Some(prev) if glue => {
                prev.push(' ');
                prev.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
        abbreviation = ends_with_abbreviation(out.last().expect("pushed above"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn tricky_cases() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Mr. Knightley called. Dr. Perry was out.",
                &["Mr. Knightley called.", "Dr. Perry was out."],
            ),
            (
                "It cost 3.50 pounds. Cheap!",
                &["It cost 3.50 pounds.", "Cheap!"],
            ),
            (
                "Well... perhaps not. We shall see.",
                &["Well... perhaps not.", "We shall see."],
            ),
            (
                "\"Is it so?\" said she. \"Yes.\" He left.",
                &["\"Is it so?\" said she.", "\"Yes.\"", "He left."],
            ),
            (
                "Pi is 3.14159 exactly. Or not.",
                &["Pi is 3.14159 exactly.", "Or not."],
            ),
            (
                "J. R. Smith wrote it. Then he slept.",
                &["J. R. Smith wrote it.", "Then he slept."],
            ),
            (
                "Meet at 10 a.m. tomorrow. Bring tea.",
                &["Meet at 10 a.m. tomorrow.", "Bring tea."],
            ),
            ("What? No! Yes.", &["What?", "No!", "Yes."]),
            ("No final stop", &["No final stop"]),
            ("", &[]),
            (
                "Ele saiu. A Sra. Silva ficou.",
                &["Ele saiu.", "A Sra. Silva ficou."],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "{text:?}");
        }
    }
}
