//! Token ids against HF `BertTokenizerFast` (fixtures/tokens.json).

mod common;

use destila::tokenize::{BertTokenizer, Text};
use serde_json::Value;

fn check(tok_for: impl Fn(usize) -> BertTokenizer, reference: &Value) {
    let max_single = reference["max_single"].as_u64().unwrap() as usize;
    let max_pair = reference["max_pair"].as_u64().unwrap() as usize;
    let single = tok_for(max_single);
    let singles = reference["single"].as_array().unwrap();
    assert!(singles.len() >= 20);
    for case in singles {
        let text = case["text"].as_str().unwrap();
        let enc = single.encode(Text::Single(text)).unwrap();
        let ids: Vec<u64> = enc.get_ids().iter().map(|&i| i as u64).collect();
        let want: Vec<u64> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(ids, want, "ids for {text:?}");
        let types: Vec<u64> = enc.get_type_ids().iter().map(|&i| i as u64).collect();
        let want: Vec<u64> = serde_json::from_value(case["type_ids"].clone()).unwrap();
        assert_eq!(types, want, "type ids for {text:?}");
    }
    let pair = tok_for(max_pair);
    for case in reference["pairs"].as_array().unwrap() {
        let (a, b) = (case["a"].as_str().unwrap(), case["b"].as_str().unwrap());
        let enc = pair.encode(Text::Pair(a, b)).unwrap();
        let ids: Vec<u64> = enc.get_ids().iter().map(|&i| i as u64).collect();
        let want: Vec<u64> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(ids, want, "ids for ({a:?}, {b:?})");
        let types: Vec<u64> = enc.get_type_ids().iter().map(|&i| i as u64).collect();
        let want: Vec<u64> = serde_json::from_value(case["type_ids"].clone()).unwrap();
        assert_eq!(types, want, "type ids for ({a:?}, {b:?})");
    }
}

fn reference() -> Value {
    let text = std::fs::read_to_string(common::fixtures().join("tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn tokenizer_json_matches_bert_tokenizer_fast() {
    let r = reference();
    let dir = common::teacher();
    check(
        |n| {
            BertTokenizer::from_dir(&dir)
                .unwrap()
                .with_max_len(n)
                .unwrap()
        },
        &r["tokenizer_json"],
    );
}

#[test]
fn vocab_txt_matches_bert_tokenizer_fast_uncased() {
    let r = reference();
    let vocab = common::teacher().join("vocab.txt");
    check(
        |n| {
            BertTokenizer::from_vocab(&vocab, true, None, true)
                .unwrap()
                .with_max_len(n)
                .unwrap()
        },
        &r["vocab_uncased"],
    );
}

#[test]
fn vocab_txt_folder_follows_tokenizer_config_cased() {
    let r = reference();
    let dir = common::fixtures().join("vocab-cased");
    check(
        |n| {
            BertTokenizer::from_dir(&dir)
                .unwrap()
                .with_max_len(n)
                .unwrap()
        },
        &r["vocab_cased"],
    );
    // Cased and uncased must really differ on mixed-case text, or the test proves nothing.
    assert_ne!(
        r["vocab_cased"]["single"][14]["ids"],
        r["vocab_uncased"]["single"][14]["ids"]
    );
}

#[test]
fn truncation_and_padding_of_the_shipped_tokenizer_json_are_off() {
    let tok = BertTokenizer::from_dir(common::teacher()).unwrap();
    let long = vec!["word"; 300].join(" ");
    let enc = tok.encode(Text::Single(&long)).unwrap();
    // 300 words + [CLS] + [SEP]: neither cut at 128 nor padded.
    assert_eq!(enc.len(), 302);
    let enc = tok.encode(Text::Single("short")).unwrap();
    assert_eq!(enc.len(), 3);
}

#[test]
fn batch_pads_dynamically() {
    let tok = BertTokenizer::from_dir(common::teacher()).unwrap();
    let (inputs, _) = tok
        .batch(&[Text::Single("a b c d e"), Text::Pair("x", "y")])
        .unwrap();
    assert_eq!(inputs.input_ids.size(), vec![2, 7]);
    let mask: Vec<i64> = Vec::try_from(inputs.attention_mask.get(1)).unwrap();
    assert_eq!(mask, vec![1, 1, 1, 1, 1, 0, 0]);
    let types: Vec<i64> = Vec::try_from(inputs.token_type_ids.get(1)).unwrap();
    assert_eq!(types, vec![0, 0, 0, 1, 1, 0, 0]);
    let ids: Vec<i64> = Vec::try_from(inputs.input_ids.get(1)).unwrap();
    assert_eq!(ids[5..], [tok.pad_id as i64, tok.pad_id as i64]);
}
