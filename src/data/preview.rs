//! `destila data preview`: examples decoded, with segments, the NSP label and the masked
//! tokens marked as {shown/original}.

use super::batch::Masked;
use crate::tokenize::BertTokenizer;

fn join(tokens: &[String]) -> String {
    let mut s = String::new();
    for t in tokens {
        match t.strip_prefix("##") {
            Some(rest) => s.push_str(rest),
            None => {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(t);
            }
        }
    }
    s
}

/// Renders one example; `index` numbers it.
pub fn render(index: usize, m: &Masked, tok: &BertTokenizer) -> String {
    let shown = tok.tokens(&m.ids);
    let mut marked = shown.clone();
    for &(pos, orig) in &m.masked {
        let o = tok.tokens(&[orig]).remove(0);
        marked[pos] = format!("{{{}/{}}}", shown[pos], o);
    }
    // Split at the first [SEP]: [CLS] A [SEP] | B [SEP]. No segment B: a single sentence.
    let Some(sep) = m.type_ids.iter().position(|&t| t == 1) else {
        return format!(
            "example {index}: one sentence, {} tokens, {} masked\n  {}\n",
            m.ids.len(),
            m.masked.len(),
            join(&marked),
        );
    };
    let label = if m.is_random_next {
        "NotNext (B from another document)"
    } else {
        "IsNext (B continues A)"
    };
    format!(
        "example {index}: {label}, {} tokens, {} masked\n  A: {}\n  B: {}\n",
        m.ids.len(),
        m.masked.len(),
        join(&marked[..sep]),
        join(&marked[sep..]),
    )
}
