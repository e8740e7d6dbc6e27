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

/// `destila data preview`: the first `n` examples of a data section's training (or
/// validation) text, decoded, with the masked tokens as {shown/original}.
pub fn preview(
    cfg: &crate::data::DataConfig,
    tok: &BertTokenizer,
    seed: u64,
    n: usize,
    validation: bool,
) -> crate::Result<String> {
    let sets = crate::data::prepare(cfg, tok)?;
    let split = if validation {
        sets.validation.ok_or_else(|| {
            crate::Error::Invalid(
                "--validation: the recipe has no validation data (data.validation)".into(),
            )
        })?
    } else {
        sets.train
    };
    let opts = crate::data::loader_options(cfg, tok, 1, seed);
    let mut loader = crate::data::Loader::new(split.corpus, split.docs, opts, Default::default());
    let mut out = String::from("masked tokens are shown as {shown/original}\n");
    for i in 0..n {
        let Some(items) = loader.next_items() else {
            break;
        };
        out += &render(i + 1, &items[0], tok);
    }
    Ok(out)
}
