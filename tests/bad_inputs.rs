//! Bad input, as a hostile new user types it, across every command: each case must exit
//! non-zero within a time limit (no hang), print no panic, and name what was wrong (the
//! field, file, flag or variable). The data-loss cases also check that every file the
//! user had is still there, unchanged.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::{BertConfig, Heads};

/// One bad input: the arguments (`{T}`, `{D}`, ... are filled in by `expand`), extra environment,
/// what the message must contain, and files (relative to the scratch folder) that must
/// survive with their contents.
struct Case {
    args: Vec<String>,
    env: Vec<(String, String)>,
    expect: String,
    keep: Vec<&'static str>,
}

fn case(args: &str, expect: &str) -> Case {
    Case {
        args: split(args),
        env: Vec::new(),
        expect: expect.into(),
        keep: Vec::new(),
    }
}

/// Splits on spaces; `''` stands for an empty argument.
fn split(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|a| !a.is_empty())
        .map(|a| if a == "''" { String::new() } else { a.into() })
        .collect()
}

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn tiny_config(vocab: i64) -> BertConfig {
    BertConfig {
        vocab_size: vocab,
        num_hidden_layers: 2,
        hidden_size: 32,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Default::default()
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let tiny = root.join("tiny");
    common::random_checkpoint(&tiny, &tiny_config(30522), Heads::ALL, 1, false, true);
    common::random_checkpoint(
        &root.join("small-vocab"),
        &tiny_config(1000),
        Heads::ALL,
        2,
        false,
        false,
    );
    for (name, edit) in [
        (
            "absurd-vocab",
            Box::new(|v: &mut serde_json::Value| v["vocab_size"] = 40_000_000_000i64.into())
                as Box<dyn FnOnce(&mut serde_json::Value)>,
        ),
        (
            "wrong-vocab",
            Box::new(|v: &mut serde_json::Value| v["vocab_size"] = 30000.into()),
        ),
        (
            "eps-zero",
            Box::new(|v: &mut serde_json::Value| v["layer_norm_eps"] = 0.0.into()),
        ),
        (
            "eps-negative",
            Box::new(|v: &mut serde_json::Value| v["layer_norm_eps"] = (-1e-12).into()),
        ),
        (
            "layers-mismatch",
            Box::new(|v: &mut serde_json::Value| v["num_hidden_layers"] = 5.into()),
        ),
        (
            "bad-heads",
            Box::new(|v: &mut serde_json::Value| v["num_attention_heads"] = 5.into()),
        ),
        (
            "bad-act",
            Box::new(|v: &mut serde_json::Value| v["hidden_act"] = "swish9".into()),
        ),
        // Another architecture's config (same keys as a BERT's): refused by its name.
        (
            "roberta",
            Box::new(|v: &mut serde_json::Value| v["model_type"] = "roberta".into()),
        ),
    ] {
        copy_dir(&tiny, &root.join(name));
        edit_config(&root.join(name), edit);
    }
    copy_dir(&tiny, &root.join("corrupt-tokenizer"));
    std::fs::write(
        root.join("corrupt-tokenizer/tokenizer.json"),
        "{\"not\": \"a tokenizer\"",
    )
    .unwrap();
    copy_dir(&tiny, &root.join("no-config"));
    std::fs::remove_file(root.join("no-config/config.json")).unwrap();
    copy_dir(&tiny, &root.join("bad-json"));
    std::fs::write(root.join("bad-json/config.json"), "{ vocab_size: ").unwrap();
    // NaN in one weight.
    {
        tch::manual_seed(4);
        let m = destila::bert::Model::random(&tiny_config(30522), Heads::ALL, tch::Device::Cpu);
        tch::no_grad(|| {
            for (name, mut v) in m.vs.variables() {
                if name.ends_with("layer.1.output.dense.weight") {
                    let _ = v.fill_(f64::NAN);
                }
            }
        });
        destila::bert::save(&m, root.join("nan")).unwrap();
        destila::distill::checkpoint::copy_tokenizer(&tiny, &root.join("nan")).unwrap();
    }
    // A finite but huge weight (3e38): float32 arithmetic overflows.
    {
        tch::manual_seed(4);
        let m = destila::bert::Model::random(&tiny_config(30522), Heads::ALL, tch::Device::Cpu);
        tch::no_grad(|| {
            for (name, mut v) in m.vs.variables() {
                if name.ends_with("layer.0.output.dense.weight") {
                    let _ = v.fill_(3e38);
                }
            }
        });
        destila::bert::save(&m, root.join("huge-weight")).unwrap();
        destila::distill::checkpoint::copy_tokenizer(&tiny, &root.join("huge-weight")).unwrap();
    }
    for (name, edit) in [
        (
            "config-init-range.json",
            Box::new(|v: &mut serde_json::Value| v["initializer_range"] = 1e30.into())
                as Box<dyn FnOnce(&mut serde_json::Value)>,
        ),
        (
            "config-10b.json",
            Box::new(|v: &mut serde_json::Value| {
                v["num_hidden_layers"] = 48.into();
                v["hidden_size"] = 4096.into();
                v["num_attention_heads"] = 32.into();
                v["intermediate_size"] = 16384.into();
            }),
        ),
        (
            "config-deep.json",
            Box::new(|v: &mut serde_json::Value| v["num_hidden_layers"] = 10_000_000.into()),
        ),
    ] {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tiny.join("config.json")).unwrap())
                .unwrap();
        edit(&mut v);
        std::fs::write(root.join(name), v.to_string()).unwrap();
    }
    std::fs::write(
        root.join("same-sentences.txt"),
        "the same sentence.\n".repeat(50),
    )
    .unwrap();
    let (train, _) = common::corpus(&root);
    std::fs::rename(train, root.join("corpus.txt")).unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    std::fs::write(root.join("binary.bin"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    std::fs::write(root.join("latin1.txt"), [b'c', b'a', b'f', 0xe9, b'\n']).unwrap();
    std::fs::write(
        root.join("pairs-nan.csv"),
        "text_a,text_b,score\na b,c d,NaN\ne f,g h,1\ni j,k l,2\n",
    )
    .unwrap();
    std::fs::write(
        root.join("pairs-inf.csv"),
        "text_a,text_b,score\na b,c d,inf\ne f,g h,1\ni j,k l,2\n",
    )
    .unwrap();
    std::fs::write(
        root.join("pairs-same.csv"),
        "text_a,text_b,score\na b,c d,3\ne f,g h,3\ni j,k l,3\n",
    )
    .unwrap();
    std::fs::write(
        root.join("pairs-short.csv"),
        "text_a,text_b,score\na b,c d\n",
    )
    .unwrap();
    std::fs::write(
        root.join("recipe.yaml"),
        format!(
            "seed: 1\noutput: {out}\ndevice: cpu\nteacher: {{checkpoint: {t}}}\n\
             student: {{layers: 1, init: from-teacher}}\n\
             data: {{train: [{c}], max_seq_len: 32, cache_dir: {cache}}}\n\
             losses: {{kd_mlm: {{weight: 1}}, mlm: {{weight: 1}}}}\n\
             training: {{steps: 2, batch_size: 2}}\n",
            out = root.join("run").display(),
            t = tiny.display(),
            c = root.join("corpus.txt").display(),
            cache = root.join("cache").display(),
        ),
    )
    .unwrap();
    std::fs::write(root.join("not-yaml.yaml"), "teacher: [unclosed\n").unwrap();
    // Somebody's folders: a results folder, a parent of a checkpoint.
    std::fs::create_dir_all(root.join("user")).unwrap();
    std::fs::write(root.join("user/metrics.csv"), "my,own,metrics\n").unwrap();
    std::fs::write(root.join("user/notes.txt"), "do not delete").unwrap();
    std::fs::write(root.join("user/eval.json"), "{\"mine\": true}").unwrap();
    std::fs::write(root.join("user/bench.md"), "my bench").unwrap();
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::write(root.join("notes/notes.txt"), "do not delete").unwrap();
    copy_dir(&tiny, &root.join("parent/ck"));
    std::fs::write(root.join("parent/readme.txt"), "my project").unwrap();
    // A marker edited to list files outside its folder (a path, `..`, an absolute path).
    std::fs::write(root.join("precious.txt"), "keep me").unwrap();
    for (name, entry) in [
        ("tampered-up", "../precious.txt".to_string()),
        (
            "tampered-abs",
            root.join("precious.txt").display().to_string(),
        ),
        ("tampered-sub", "sub/../../precious.txt".to_string()),
    ] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::write(
            root.join(name).join(".destila-output.json"),
            serde_json::json!({"entries": {entry: "init"}}).to_string(),
        )
        .unwrap();
    }
    Scratch { _dir: dir, root }
}

fn expand(s: &str, root: &Path) -> String {
    let teacher = common::teacher();
    s.replace("{T}", teacher.to_str().unwrap())
        .replace("{D}", root.to_str().unwrap())
        .replace("{R}", root.join("recipe.yaml").to_str().unwrap())
        .replace("{M}", root.join("tiny").to_str().unwrap())
        .replace(
            "{HOME}",
            &std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut forms = Vec::new();
    let mut add = |args: &str, expect: &str| v.push(case(args, expect));

    // --threads, on any command.
    for bad in ["0", "-1", "100000", "abc", "''", "1.5"] {
        add(&format!("--threads={bad} inspect {{M}}"), "--threads");
    }

    // inspect: folders and configs.
    add("inspect {D}/missing", "missing");
    add("inspect {D}/corpus.txt", "corpus.txt");
    add("inspect {D}/corrupt-tokenizer", "tokenizer.json");
    add("inspect {D}/absurd-vocab", "vocab_size");
    add("inspect {D}/wrong-vocab", "vocab_size");
    add("inspect {D}/eps-zero", "layer_norm_eps");
    add("inspect {D}/eps-negative", "layer_norm_eps");
    add("inspect {D}/layers-mismatch", "num_hidden_layers");
    add("inspect {D}/bad-heads", "num_attention_heads");
    add("inspect {D}/bad-act", "hidden_act");
    add("inspect {D}/no-config", "config.json");
    add("inspect {D}/bad-json", "config.json");
    add("inspect {D}/nan", "layer.1.output.dense.weight");

    // Another architecture (model_type roberta), wherever a BERT folder is read.
    for args in [
        "inspect {D}/roberta",
        "embed {D}/roberta hello",
        "contrast {D}/roberta",
        "export {D}/roberta --out {D}/e",
        "eval --teacher {D}/roberta --student {M} --no-init --out {D}/ev",
        "eval --teacher {M} --student {D}/roberta --no-init --out {D}/ev",
        "eval --teacher {M} --student {M} --init {D}/roberta --corpus {D}/corpus.txt --out {D}/ev",
        "prune {D}/roberta --corpus {D}/corpus.txt --out {D}/sp --heads 1",
        "bench --teacher {D}/roberta --student {M}",
        "bench --teacher {M} --student {D}/roberta",
        "bench forward {D}/roberta",
        "recipe check {R} --set teacher.checkpoint={D}/roberta",
        r#"recipe check {R} --set student.init={"checkpoint":"{D}/roberta"}"#,
    ] {
        add(args, "roberta");
    }

    // embed.
    add("embed {M} hello --batch-size 0", "--batch-size");
    add("embed {M} hello --batch-size=-1", "--batch-size");
    add("embed {M} hello --max-len 0", "--max-len");
    add("embed {M}", "--input");
    add("embed {M} --input {D}/missing.txt", "missing.txt");
    add("embed {M} --input {D}/empty.txt", "--input");
    add("embed {M} --input {D}/latin1.txt", "latin1.txt");
    add("embed {M} hello --pooling max", "--pooling");
    add("embed {M} hello --format csv", "--format");
    add("embed {M} hello --device tpu", "tpu");
    add("embed {D}/nan hello", "layer.1.output.dense.weight");
    add("embed {D}/missing hello", "missing");
    add("embed {D}/corrupt-tokenizer hello", "tokenizer.json");

    // contrast.
    add("contrast {M} --word banana", "--word");
    add("contrast {D}/missing", "missing");
    add("contrast {M} --device tpu", "tpu");
    // "posto" only after the tiny model's 64 positions.
    add(
        &format!(
            "contrast {{M}} --a {}posto --b posto --word posto",
            "um,".repeat(80)
        ),
        "beyond the first",
    );

    // recipe check: every field a user can get wrong, through --set.
    let fields = [
        ("optimizer.eps=-1e-8", "optimizer.eps"),
        ("optimizer.eps=0", "optimizer.eps"),
        ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
        ("optimizer.weight_decay=.inf", "optimizer.weight_decay"),
        ("optimizer.learning_rate=.inf", "optimizer.learning_rate"),
        ("optimizer.learning_rate=.nan", "optimizer.learning_rate"),
        ("optimizer.learning_rate=-1", "optimizer.learning_rate"),
        ("optimizer.learning_rate=0", "optimizer.learning_rate"),
        ("optimizer.learning_rate=fast", "optimizer.learning_rate"),
        ("optimizer.betas=[1.5,0.9]", "optimizer.betas"),
        ("optimizer.warmup_steps=1000", "optimizer.warmup_steps"),
        ("optimizer.max_grad_norm=-1", "optimizer.max_grad_norm"),
        ("optimizer.max_grad_norm=.inf", "optimizer.max_grad_norm"),
        ("optimizer.schedule=sawtooth", "optimizer.schedule"),
        ("output=''", "output"),
        ("data.max_seq_len=4", "data.max_seq_len"),
        ("data.max_seq_len=100000", "data.max_seq_len"),
        ("data.train=[]", "data.train"),
        ("data.weights=[1,2]", "data.weights"),
        ("data.weights=[-1]", "data.weights"),
        ("data.mlm_probability=2", "data.mlm_probability"),
        ("data.mlm_probability=-0.1", "data.mlm_probability"),
        ("data.examples=triples", "data.examples"),
        ("data.tokenizer={D}/missing", "data.tokenizer"),
        ("training.steps=0", "training.steps"),
        ("training.steps=-5", "training.steps"),
        ("training.batch_size=0", "training.batch_size"),
        (
            "training.gradient_accumulation=0",
            "training.gradient_accumulation",
        ),
        ("training.keep_checkpoints=0", "training.keep_checkpoints"),
        ("teacher.fit.steps=0", "teacher.fit.steps"),
        (
            "teacher.fit.learning_rate=-0.001",
            "teacher.fit.learning_rate",
        ),
        (
            "teacher.fit.learning_rate=.inf",
            "teacher.fit.learning_rate",
        ),
        ("teacher.fit.batch_size=0", "teacher.fit.batch_size"),
        (
            "teacher.fit.mlm_probability=1.5",
            "teacher.fit.mlm_probability",
        ),
        ("teacher.fit.decoder=shared", "teacher.fit.decoder"),
        ("teacher.checkpoint={D}/missing", "no such folder"),
        ("teacher.checkpoint={D}/no-config", "teacher.checkpoint"),
        ("teacher.heads=maybe", "teacher.heads"),
        ("teacher.targets.top_k=0", "teacher"),
        (
            "teacher.targets.dir={D}/tg --set teacher.targets.top_k=0",
            "teacher.targets.top_k",
        ),
        (
            "teacher.targets.dir={D}/tg --set teacher.targets.sample=0",
            "teacher.targets.sample",
        ),
        (
            "teacher.targets.dir={D}/tg --set teacher.targets.sample=2000000",
            "teacher.targets.sample",
        ),
        (
            "teacher.targets.dir={D}/tg --set teacher.targets.sample=8 --set teacher.targets.top_k=8",
            "teacher.targets.sample",
        ),
        ("student.layers=0", "student.layers"),
        ("student.layers=-1", "student.layers"),
        ("student.layers=18", "student.layers"),
        ("student.teacher_layers=[0,9]", "student.teacher_layers"),
        ("student.teacher_layers=[0,1]", "student.teacher_layers"),
        ("student.teacher_layers=first", "student.teacher_layers"),
        ("student.hidden_size=33", "student.hidden_size"),
        ("student.activation=swish9", "student.activation"),
        ("student.init=magic", "student.init"),
        ("precision=fp8", "precision"),
        ("device=tpu", "device"),
        ("losses.kd_mlm.weight=-1", "losses.kd_mlm.weight"),
        ("losses.kd_mlm.weight=.inf", "losses.kd_mlm.weight"),
        ("losses.temperature=0", "losses.temperature"),
        ("losses.temperature=-2", "losses.temperature"),
        ("losses.temperature=.inf", "losses.temperature"),
        ("losses.mlm.view=clean", "losses.mlm.view"),
        ("losses.similarity.temperature=0", "losses.similarity"),
        ("losses.bogus.weight=1", "bogus"),
        ("bogus_key=1", "bogus_key"),
        ("job=teach", "job"),
        ("seed=-1", "seed"),
        // Round 2: what recipe check passed and distill then refused, or crashed on.
        ("output=/", "output"),
        ("teacher.fit.cache=''", "teacher.fit.cache"),
        ("teacher.fit.cache={M}", "teacher.fit.cache"),
        ("teacher.adapt.cache={M}", "teacher.adapt.cache"),
        ("data.tokenizer={D}/corrupt-tokenizer", "data.tokenizer"),
        ("optimizer.learning_rate=1e10", "optimizer.learning_rate"),
        ("training.eval_batches=0", "training.eval_batches"),
        ("training.batch_size=100000000000", "training.batch_size"),
        (
            "data.length_bucketing=1000000000000",
            "data.length_bucketing",
        ),
        ("data.shuffle_buffer=1000000000000", "data.shuffle_buffer"),
        ("data.max_seq_len=100000000000", "data.max_seq_len"),
        (
            "losses.hidden_cos.weight=1 --set losses.hidden_cos.layers=[]",
            "losses.hidden_cos.layers",
        ),
        (
            "losses.hidden_mse.weight=1 --set losses.hidden_mse.layers=[]",
            "losses.hidden_mse.layers",
        ),
        (
            "losses.attention_kl.weight=1 --set losses.attention_kl.layers=[]",
            "losses.attention_kl.layers",
        ),
        ("losses.kd_mlm.view=first", "losses.kd_mlm.view"),
        ("losses.nsp.view=first", "losses.nsp.view"),
        (
            "teacher.heads=adapt --set teacher.adapt.steps=0",
            "teacher.adapt.steps",
        ),
        ("teacher.adapt.train_layers=9", "teacher.adapt.train_layers"),
        ("student.train_layers=5", "student.train_layers"),
    ];
    for (set, expect) in fields {
        add(&format!("recipe check {{R}} --set {set}"), expect);
    }
    // A cache the run would write but cannot (found at its first checkpoint before): refused
    // by distill before any work, no output folder made.
    add(
        "distill {R} --quiet --set teacher.heads=adapt --set teacher.adapt.cache=/proc/destila-nope --set output={D}/no-out",
        "teacher.adapt.cache",
    );
    add(
        "distill {R} --quiet --set teacher.heads=fit --set teacher.fit.cache=/proc/destila-nope --set output={D}/no-out",
        "teacher.fit.cache",
    );
    // Every folder a command will write, proved makeable and writable before any work and
    // refused by its flag or field: under a folder nobody can write, or under a file. (Found
    // before at the end: `targets --out /proc/x` fitted heads and ran the teacher first.)
    for (args, expect) in [
        (
            "recipe check {R} --set output=/proc/destila-nope",
            "output: /proc/destila-nope: cannot write there",
        ),
        (
            "distill {R} --quiet --set output={D}/corpus.txt/run",
            "output: {D}/corpus.txt/run: cannot write there: {D}/corpus.txt is not a folder",
        ),
        (
            "recipe check {R} --set data.cache_dir={D}/corpus.txt",
            "data.cache_dir: {D}/corpus.txt: cannot write there",
        ),
        (
            "data preview {R} --set data.cache_dir=/proc/destila-nope",
            "data.cache_dir: /proc/destila-nope: cannot write there",
        ),
        (
            "data build {R} --set data.cache_dir={D}/corpus.txt/shards",
            "data.cache_dir: {D}/corpus.txt/shards: cannot write there",
        ),
        (
            "data stats {D}/corpus.txt --tokenizer {M} --cache-dir {D}/corpus.txt/shards",
            "--cache-dir {D}/corpus.txt/shards: cannot write there",
        ),
        (
            "eval --teacher {M} --student {M} --cache-dir /proc/destila-nope --out {D}/ev-nope",
            "--cache-dir /proc/destila-nope: cannot write there",
        ),
        (
            "eval --teacher {M} --student {M} --out /proc/destila-nope",
            "--out /proc/destila-nope: cannot write there",
        ),
        (
            "targets {R} --out /proc/destila-nope",
            "targets --out /proc/destila-nope: cannot write there",
        ),
        (
            "export {M} --out {D}/corpus.txt/exported",
            "--out {D}/corpus.txt/exported: cannot write there",
        ),
        (
            "prune {M} --corpus {D}/corpus.txt --out /proc/destila-nope",
            "--out /proc/destila-nope: cannot write there",
        ),
        (
            "init /proc/destila-nope --config {M}/config.json",
            "init OUT /proc/destila-nope: cannot write there",
        ),
    ] {
        add(args, expect);
    }
    // The same refused by distill before any work (a few, the rest share the code path).
    for (set, expect) in fields.iter().step_by(3) {
        add(&format!("distill {{R}} --quiet --set {set}"), expect);
    }
    add("recipe check {R} --set noequals", "--set");
    // Results that would not be finite, and shapes that do not fit.
    add("embed {D}/huge-weight hello", "not finite");
    add(
        "init {D}/out-range --config {D}/config-init-range.json",
        "initializer_range",
    );
    add(
        "init {D}/out-10b --config {D}/config-10b.json",
        "memory available",
    );
    add(
        "init {D}/out-deep --config {D}/config-deep.json",
        "num_hidden_layers",
    );
    add(
        "eval --teacher {M} --student {M} --no-init --sentences {D}/same-sentences.txt",
        "distinct",
    );
    // Fields that take more than one form list the forms (not serde's enum names).
    for (set, want) in [
        ("student.init=bogus", "from-teacher"),
        ("student.init={checkpoint: 3, x: 1}", "from-teacher"),
        ("losses.temperature=abc", "start: NUMBER"),
        ("losses.temperature={start: 1}", "start: NUMBER"),
        ("student.teacher_layers={a: 1}", "uniform"),
        ("student.init=!foo x", "YAML tag"),
        // A list where a section goes is not the section's fields in order: `[DIR]` was read
        // as `{checkpoint: DIR}`.
        ("student.init=[{M}]", "from-teacher"),
        ("losses.temperature=[1, 2]", "start: NUMBER"),
        // A list or a section where a name goes: the names, not a word about YAML tags.
        (
            "teacher.heads=[fit]",
            "expected one of `fit`, `adapt`, `fail`",
        ),
        (
            "losses.similarity.form={a: 1}",
            "expected one of `mse`, `kl`, `pearson`",
        ),
        ("data.sentences=[split]", "expected `split` or `line`"),
    ] {
        let args = vec![
            "recipe".to_string(),
            "check".into(),
            "{R}".into(),
            "--set".into(),
            set.into(),
        ];
        forms.push(Case {
            args,
            env: Vec::new(),
            expect: want.into(),
            keep: Vec::new(),
        });
    }
    // Files that are not files: devices and folders, refused before reading (no hang, no
    // memory growth).
    // Checked even when the models lack the heads that would read it.
    add(
        "eval --teacher {M} --student {M} --heads-corpus /dev/zero --out {D}/ev",
        "/dev/zero",
    );
    add("recipe check /dev/zero", "/dev/zero");
    add("init {D}/fresh --config /dev/zero", "/dev/zero");
    add("embed {M} --input /dev/zero", "/dev/zero");
    add("embed {M} --input {D}", "a folder");
    add(
        "eval --teacher {M} --student {M} --corpus {D}/corpus.txt --sentences /dev/zero --out {D}/ev",
        "/dev/zero",
    );
    add(
        "eval --teacher {M} --student {M} --corpus {D}/corpus.txt --pairs /dev/zero --out {D}/ev",
        "/dev/zero",
    );
    add(
        "distill {R} --quiet --set data.train=[/dev/zero]",
        "/dev/zero",
    );
    add("data stats /dev/zero --tokenizer {M}", "/dev/zero");
    add("recipe check {R} --set a..b=1", "--set");
    add("recipe check {D}/missing.yaml", "missing.yaml");
    add("recipe check {D}/not-yaml.yaml", "not-yaml.yaml");
    add(
        "recipe check {R} --set data.examples=sentences --set losses.nsp.weight=1",
        "losses.nsp.weight",
    );
    add(
        "distill {R} --quiet --set data.train=[{D}/missing.txt]",
        "missing.txt",
    );
    add(
        "distill {R} --quiet --set data.train=[{D}/binary.bin]",
        "binary.bin",
    );
    add(
        "distill {R} --quiet --set data.train=[{D}/nothing*.txt]",
        "nothing*.txt",
    );
    add("distill {R} --resume --force", "--force");
    add("targets {R} --quiet", "teacher.targets.dir");
    add("data preview {R} -n 0", "-n");
    add("data preview {D}/missing.yaml", "missing.yaml");
    add("data build {R} --set x=1", "unknown field `x`");
    add("data build {R} --set noequals", "--set");
    add("data stats {D}/missing.txt --tokenizer {M}", "missing.txt");
    add("data stats {D}/binary.bin --tokenizer {M}", "binary.bin");
    // A device where a corpus goes is named as what it is, not "no such file".
    add(
        "data stats /dev/zero --tokenizer {M}",
        "/dev/zero: not a regular file or folder",
    );
    add(
        "distill {R} --quiet --set data.validation=[/dev/null]",
        "/dev/null: not a regular file or folder",
    );
    add(
        "data stats {D}/corpus.txt --tokenizer {D}/missing",
        "missing",
    );
    add("data stats {D}/none*.txt --tokenizer {M}", "none*.txt");
    add(
        "data stats {D}/corpus.txt --tokenizer {M} --documents pages",
        "--documents",
    );

    // init.
    add("init {D}/new --config {D}/missing.json", "missing.json");
    add(
        "init {D}/new --config {D}/absurd-vocab/config.json",
        "vocab_size",
    );
    add(
        "init {D}/new --config {D}/eps-zero/config.json",
        "layer_norm_eps",
    );
    add(
        "init {D}/new --config {M}/config.json --heads some",
        "--heads",
    );
    add("init . --config {M}/config.json", "working directory");
    add("init '' --config {M}/config.json", "<OUT>");

    // export.
    add("export {D}/missing --out {D}/e", "missing");
    add("export {M} --out {D}/e --dtype f8", "--dtype");
    add("export {M} --out {D}/e --heads half", "--heads");
    add("export {M} --out {D}/e --quantize int4", "--quantize");
    add(
        "export {M} --out {D}/e --eval {D}/missing.json",
        "missing.json",
    );
    add("export {M} --out {M} --force", "input");
    add(
        "export {M} --out {D} --force",
        "choose another output folder",
    );
    add("export {M} --out / --force", "root");
    add("export {M} --out {HOME} --force", "home");
    add("export {M} --out . --force", "working directory");
    add("export {M} --out '' --force", "--out");
    add("export {D}/nan --out {D}/e", "layer.1.output.dense.weight");

    // eval.
    let ev = "eval --teacher {M} --student {M} --out {D}/ev --no-init --corpus {D}/corpus.txt";
    add(&format!("{ev} --head-batches 0"), "--head-batches");
    add(&format!("{ev} --max-sentences 0"), "--max-sentences");
    add(
        &format!("{ev} --pairs {{D}}/pairs-nan.csv"),
        "pairs-nan.csv",
    );
    add(
        &format!("{ev} --pairs {{D}}/pairs-inf.csv"),
        "pairs-inf.csv",
    );
    add(
        &format!("{ev} --pairs {{D}}/pairs-same.csv"),
        "pairs-same.csv",
    );
    add(
        &format!("{ev} --pairs {{D}}/pairs-short.csv"),
        "pairs-short.csv",
    );
    add(&format!("{ev} --pairs {{D}}/missing.csv"), "missing.csv");
    add(
        &format!("{ev} --sentences {{D}}/missing.txt"),
        "missing.txt",
    );
    add(&format!("{ev} --corpus {{D}}/missing-dir"), "missing-dir");
    add(&format!("{ev} --device tpu"), "tpu");
    add(
        "eval --teacher {M} --student {M} --out {D}/ev --init {D}/corpus.txt",
        "--init",
    );
    add(
        "eval --teacher {D}/missing --student {M} --no-init",
        "missing",
    );
    add(
        "eval --teacher {M} --student {D}/missing --no-init",
        "missing",
    );
    add(
        "eval --teacher {M} --student {M} --init {M} --no-init",
        "--no-init",
    );
    add(
        "eval --teacher {M} --student {D}/small-vocab --no-init --out {D}/ev2",
        "vocab",
    );

    // bench.
    add("bench --teacher {M}", "--student");
    add("bench --teacher {M} --student {M} --iters 0", "--iters");
    add("bench --teacher {M} --student {M} --device tpu", "tpu");
    add("bench --teacher {M} --student {M} --out {M}", "input");
    for bad in [
        "--batch 0",
        "--batch=-1",
        "--seq-len 0",
        "--iters 0",
        "--seq-len=-3",
    ] {
        add(
            &format!("bench forward {{M}} {bad}"),
            bad.split([' ', '=']).next().unwrap(),
        );
    }
    add("bench forward {M} --seq-len 100000", "--seq-len");
    add("bench forward {M} --seq-len 65", "max_position_embeddings");
    add("bench forward {T} --batch 1000000000", "--batch");
    add("bench forward {M} --mask-fraction 2", "--mask-fraction");
    add("bench forward {M} --mask-fraction=-0.5", "--mask-fraction");
    add("bench forward {M} --mask-fraction NaN", "--mask-fraction");
    add("bench forward {M} --dtype f8", "--dtype");
    add("bench forward {M} --mlm some", "--mlm");
    add("bench forward {D}/missing", "missing");
    add("bench step {M} --batch 0", "--batch");
    add("bench step {M} --seq-len 0", "--seq-len");
    add("bench step {M} --student-layers 0", "--student-layers");
    add("bench step {M} --iters 0", "--iters");
    add("bench step {M} --seq-len 32 --dtype f8", "--dtype");
    add("bench step {M} --seq-len 1000", "max_position_embeddings");
    // Settings that would be ignored are refused.
    add("bench step {M} --seq-len 2", "--seq-len");
    add(
        "targets {R} --out {D}/tg --train-batches 0",
        "--train-batches",
    );
    add(
        "targets {R} --out {D}/tg --train-batches=-1",
        "--train-batches",
    );
    add(
        "bench forward {T} --mlm all --seq-len 16 --iters 1",
        "--mlm",
    );
    add(
        "bench forward {T} --mlm masked --seq-len 16 --iters 1",
        "--mlm",
    );
    add("bench forward {T} --nsp --seq-len 16 --iters 1", "--nsp");
    add(
        "export {M} --out {D}/onnx-x --format onnx --dtype f16",
        "--dtype",
    );
    add(
        "export {M} --out {D}/onnx-x --format onnx --dtype bf16",
        "--dtype",
    );
    add(
        "export {M} --out {D}/onnx-x --format onnx --heads drop",
        "--heads",
    );
    add(
        "export {M} --out {D}/onnx-x --format onnx --eval {D}/x.json",
        "--eval",
    );
    let topk = "bench topk {M} {M} --data {D}/corpus.txt --seq-len 32";
    add(&format!("{topk} --k 0"), "--k");
    add(&format!("{topk} --k 8,0"), "--k");
    add(&format!("{topk} --k 40000"), "--k");
    add(&format!("{topk} --sample 0"), "--sample");
    add(&format!("{topk} --sample 2000000"), "--sample");
    for n in ["2", "3", "4"] {
        add(&format!("{topk} --seq-len {n}"), "--seq-len");
    }
    add(
        "bench topk {M} {M} --data {D}/corpus.txt --seq-len 100",
        "--seq-len",
    );
    add(&format!("{topk} --batches 0"), "--batches");
    add(&format!("{topk} --batch 0"), "--batch");
    add(&format!("{topk} --temperature 0"), "--temperature");
    add(&format!("{topk} --temperature=-1"), "--temperature");
    add(&format!("{topk} --temperature inf"), "--temperature");
    add(
        "bench topk {M} {D}/small-vocab --data {D}/corpus.txt",
        "vocabulary",
    );
    add(
        "bench topk {M} {M} --data {D}/missing.txt --seq-len 32",
        "missing.txt",
    );
    add("bench data {R} --batches 0", "--batches");
    add("bench data {D}/missing.yaml", "missing.yaml");

    // Structured pruning: counts beyond the model's shape, flags of the other mode, inputs.
    let sp = "prune {M} --corpus {D}/corpus.txt --out {D}/sp";
    add(&format!("{sp} --heads 0"), "--heads");
    add(&format!("{sp} --heads 3"), "--heads");
    add(&format!("{sp} --ffn 65"), "--ffn");
    add(&format!("{sp} --hidden 20"), "--hidden");
    add(&format!("{sp} --hidden 48"), "--hidden");
    add(&format!("{sp} --hidden 16 --heads 2"), "--heads");
    add(&format!("{sp} --heads 1 --rounds 0"), "--rounds");
    add(&format!("{sp} --heads 1 --rounds 65"), "--rounds");
    add(&format!("{sp} --heads 1 --probes 0"), "--probes");
    add(&format!("{sp} --heads 1 --sentences 0"), "--sentences");
    add(&format!("{sp} --heads 1 --min-count 2"), "--min-count");
    add(&format!("{sp} --even"), "--even");
    add(
        &format!("{sp} --heads 1 --teacher {{D}}/missing"),
        "--teacher",
    );
    add(
        "prune {M} --corpus {D}/missing.txt --out {D}/sp --heads 1",
        "missing.txt",
    );
    add(
        "prune {D}/missing --corpus {D}/corpus.txt --out {D}/sp --heads 1",
        "missing",
    );
    for (key, value) in [
        ("heads", "0"),
        ("heads", "3"),
        ("ffn", "0"),
        ("hidden", "20"),
        ("rounds", "0"),
        ("sentences", "0"),
        ("bogus", "1"),
    ] {
        for cmd in ["recipe check", "distill"] {
            add(
                &format!("{cmd} {{R}} --set student.prune.{key}={value}"),
                &format!("student.prune.{key}"),
            );
        }
    }
    // A hidden size pruned away from the teacher's, with a loss that compares hidden states
    // directly: refused by the recipe check, before the pruning measures anything.
    for loss in ["pooled_cos", "pooled_mse", "hidden_cos"] {
        for cmd in ["recipe check", "distill"] {
            add(
                &format!("{cmd} {{R}} --set student.prune.hidden=16 --set losses.{loss}.weight=1"),
                "student.prune.hidden",
            );
        }
    }
    for bad in ["--rounds 0", "--rounds=-1", "--iters 0"] {
        add(
            &format!("bench ladder --teacher {{M}} --student {{M}} --sentences {{D}}/corpus.txt --out {{D}}/l {bad}"),
            bad.split([' ', '=']).next().unwrap(),
        );
    }
    add(
        "bench ladder --teacher {M} --student {M} --sentences {D}/corpus.txt --out {D}/l --pruned {D}/missing",
        "--pruned",
    );
    add(
        "bench ladder --teacher {M} --student {M} --sentences {D}/corpus.txt --out {D}/l --pairs {D}/missing.csv",
        "missing.csv",
    );
    add(
        "bench ladder --teacher {M} --student {M} --sentences {D}/corpus.txt --out {D}/l --pairs {D}/corpus.txt",
        "corpus.txt",
    );

    // doctor.
    add("doctor --tolerance NaN", "--tolerance");
    add("doctor --tolerance=-1", "--tolerance");
    add("doctor --tolerance inf", "--tolerance");
    add("doctor --model {D}/missing", "missing");
    add("doctor --device tpu", "tpu");
    add("doctor --model {D}/nan", "layer.1.output.dense.weight");
    v.extend(forms);
    v
}

/// Cases with a launcher environment: bad torchrun variables are refused before any work.
fn env_cases() -> Vec<Case> {
    let base = [
        ("RANK", "0"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29555"),
    ];
    let mut v = Vec::new();
    for (k, val) in [
        ("DESTILA_DIST_TIMEOUT_S", "inf"),
        ("DESTILA_DIST_TIMEOUT_S", "1e300"),
        ("DESTILA_DIST_TIMEOUT_S", "-1"),
        ("DESTILA_DIST_TIMEOUT_S", "soon"),
        ("RANK", "7"),
        ("WORLD_SIZE", "0"),
        ("MASTER_PORT", "99999"),
        ("MASTER_ADDR", ""),
        ("MASTER_ADDR", " "),
    ] {
        let mut env: Vec<(String, String)> = base
            .iter()
            .filter(|(b, _)| *b != k)
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        env.push((k.into(), val.into()));
        v.push(Case {
            args: split("distill {R} --quiet"),
            env,
            expect: k.into(),
            keep: Vec::new(),
        });
    }
    v
}

/// The data-loss cases: each refused, and every file the user had still there.
fn loss_cases() -> Vec<Case> {
    let user = vec![
        "user/metrics.csv",
        "user/notes.txt",
        "user/eval.json",
        "user/bench.md",
    ];
    let mut v = Vec::new();
    let mut add = |args: &str, expect: &str, keep: Vec<&'static str>| {
        v.push(Case {
            args: split(args),
            env: Vec::new(),
            expect: expect.into(),
            keep,
        })
    };
    let parent = vec![
        "parent/readme.txt",
        "parent/ck/model.safetensors",
        "parent/ck/config.json",
    ];
    add(
        "targets {R} --out {D}/user --quiet",
        "did not write",
        user.clone(),
    );
    for name in ["tampered-up", "tampered-abs", "tampered-sub"] {
        add(
            &format!("init {{D}}/{name} --config {{M}}/config.json --force"),
            "not a plain name",
            vec!["precious.txt"],
        );
        add(
            &format!("export {{M}} --out {{D}}/{name} --force"),
            "not a plain name",
            vec!["precious.txt"],
        );
        add(
            &format!("distill {{R}} --quiet --force --set output={{D}}/{name}"),
            "not a plain name",
            vec!["precious.txt"],
        );
    }
    add(
        "targets {R} --out {D}/user --quiet --force",
        "did not write",
        user.clone(),
    );
    add(
        "targets {R} --out {D}/parent --quiet --force",
        "did not write",
        parent.clone(),
    );
    add(
        "export {D}/parent/ck --out {D}/parent --force",
        "input",
        parent.clone(),
    );
    add(
        "export {D}/parent/ck --out {D}/parent/ck --force",
        "input",
        parent.clone(),
    );
    add(
        "export {D}/parent/ck --out {D}/parent/ck/sub --force",
        "inside an input",
        parent.clone(),
    );
    add(
        "prune {D}/tiny --corpus {D}/parent --out {D}/parent/pruned",
        "inside an input",
        parent.clone(),
    );
    add(
        "distill {R} --quiet --set output={D}/tiny/run",
        "inside an input",
        parent.clone(),
    );
    add(
        "export {D}/parent/ck --out {D}/user --force",
        "did not write",
        user.clone(),
    );
    add(
        "export {D}/parent/ck --out {D}/user",
        "did not write",
        user.clone(),
    );
    add(
        "distill {R} --quiet --set output={D}/user",
        "did not write",
        user.clone(),
    );
    add(
        "distill {R} --quiet --force --set output={D}/user",
        "did not write",
        user.clone(),
    );
    add(
        "distill {R} --quiet --force --set output={D}/parent",
        "parent",
        parent.clone(),
    );
    add(
        "distill {R} --quiet --set output={D}",
        "choose another output folder",
        user.clone(),
    );
    add(
        "distill {R} --quiet --set output={D}/tiny",
        "input",
        user.clone(),
    );
    add(
        "distill {R} --quiet --set output=.",
        "working directory",
        user.clone(),
    );
    add(
        "init {D}/user --config {D}/tiny/config.json --force",
        "did not write",
        user.clone(),
    );
    add(
        "init {D}/parent --config {D}/tiny/config.json --force",
        "did not write",
        parent.clone(),
    );
    add(
        "eval --teacher {M} --student {M} --no-init --out {D}/user",
        "eval.json",
        user.clone(),
    );
    add(
        "bench --teacher {M} --student {M} --out {D}/user",
        "bench.md",
        user.clone(),
    );
    // A report beside somebody's files is refused too, not only over them.
    for cmd in [
        "eval --teacher {M} --student {M} --no-init --out {D}/notes",
        "bench --teacher {M} --student {M} --out {D}/notes",
        "bench ladder --teacher {M} --student {M} --sentences {D}/corpus.txt --out {D}/notes",
    ] {
        add(cmd, "did not write", vec!["notes/notes.txt"]);
    }
    v
}

fn snapshot(root: &Path, keep: &[&str]) -> Vec<(String, Vec<u8>)> {
    keep.iter()
        .map(|k| (k.to_string(), std::fs::read(root.join(k)).unwrap()))
        .collect()
}

/// Runs one case under a time limit; returns a failure description or None.
fn check(c: &Case, s: &Scratch) -> Option<String> {
    let args: Vec<String> = c.args.iter().map(|a| expand(a, &s.root)).collect();
    let before = snapshot(&s.root, &c.keep);
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("120")
        .arg(env!("CARGO_BIN_EXE_destila"))
        .args(&args)
        .current_dir(&s.root)
        .env("RUST_BACKTRACE", "0");
    for (k, v) in &c.env {
        cmd.env(k, expand(v, &s.root));
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = format!("destila {}", args.join(" "));
    if out.status.code() == Some(124) {
        return Some(format!("{shown}: hung (killed after 120 s)"));
    }
    if out.status.success() {
        return Some(format!("{shown}: exited 0"));
    }
    if err.contains("panicked") || out.status.code().is_none() {
        return Some(format!("{shown}: panicked or crashed: {err}"));
    }
    let want = expand(&c.expect, &s.root);
    if !err.contains(&want) {
        return Some(format!(
            "{shown}: the message does not name {want:?}: {err}"
        ));
    }
    for (k, bytes) in before {
        match std::fs::read(s.root.join(&k)) {
            Ok(now) if now == bytes => {}
            _ => return Some(format!("{shown}: the user's {k} was lost or changed")),
        }
    }
    None
}

#[test]
fn every_bad_input_is_refused_clearly() {
    let s = scratch();
    let all: Vec<Case> = cases()
        .into_iter()
        .chain(env_cases())
        .chain(loss_cases())
        .collect();
    assert!(all.len() >= 150, "only {} cases", all.len());
    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<&[Case]> = all.chunks(all.len().div_ceil(2)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let s = &s;
                scope.spawn(move || chunk.iter().filter_map(|c| check(c, s)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs were not refused clearly:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn destila(root: &Path, args: &[String]) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg("300")
        .arg(env!("CARGO_BIN_EXE_destila"))
        .args(args)
        .current_dir(root)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Inside destila's own folders too, only what destila wrote goes: a user's file in a
/// run's `final/`, a user's folder under `checkpoints/`, a user's folder named like one of
/// destila's temporaries beside an export. What a killed run left under destila's own
/// temporary names does not block the next run, which clears it.
#[test]
fn user_files_inside_destila_folders_survive() {
    let s = scratch();
    let r = &s.root;
    let run = r.join("kept-run");
    let recipe = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["distill", "recipe.yaml", "--quiet"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.push("--set".into());
        v.push(format!("output={}", run.display()));
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    let out = destila(r, &recipe(&[]));
    succeeded(&out);
    assert!(run.join("final/.destila-output.json").is_file());
    // A user's file inside final/: --force refuses, naming it, and removes nothing.
    std::fs::write(run.join("final/my_notes.txt"), "mine").unwrap();
    let out = destila(r, &recipe(&["--force"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("my_notes.txt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("final/my_notes.txt")).unwrap(),
        "mine"
    );
    assert!(
        run.join("final/model.safetensors").is_file(),
        "removed before refusing"
    );
    std::fs::remove_file(run.join("final/my_notes.txt")).unwrap();
    // A user's folder under checkpoints/.
    std::fs::create_dir_all(run.join("checkpoints/mine")).unwrap();
    std::fs::write(run.join("checkpoints/mine/a.txt"), "mine").unwrap();
    let out = destila(r, &recipe(&["--force"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mine"), "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("checkpoints/mine/a.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(run.join("checkpoints/mine")).unwrap();
    // What a run killed while writing final/ leaves (its process gone): the next run is not
    // blocked and removes it.
    let stale = run.join(".destila-tmp-final-4194999-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(".destila-tmp-owner"), "4194999").unwrap();
    std::fs::write(stale.join("model.safetensors"), "half").unwrap();
    let out = destila(r, &recipe(&["--force"]));
    succeeded(&out);
    assert!(
        !stale.exists(),
        "the killed run's temporary folder is still there"
    );
    // A user's folder named like destila's temporaries, beside an export target, and one
    // inside the run: both stay.
    for d in [
        r.join(".destila-tmp-exp"),
        r.join(format!(".destila-tmp-exp-{}", 1)),
    ] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("keep.txt"), "mine").unwrap();
    }
    let out = destila(
        r,
        &[
            "export".into(),
            run.join("final").display().to_string(),
            "--out".into(),
            r.join("exp").display().to_string(),
        ],
    );
    succeeded(&out);
    for d in [".destila-tmp-exp", ".destila-tmp-exp-1"] {
        assert_eq!(
            std::fs::read_to_string(r.join(d).join("keep.txt")).unwrap(),
            "mine"
        );
    }
    // One command's whole-folder output is not another's to replace.
    let other = r.join("other").display().to_string();
    let tiny = r.join("tiny").display().to_string();
    let out = destila(
        r,
        &[
            "init".into(),
            other.clone(),
            "--config".into(),
            format!("{tiny}/config.json"),
        ],
    );
    succeeded(&out);
    for args in [
        vec!["export", &tiny, "--out", &other, "--force"],
        vec![
            "prune",
            &tiny,
            "--corpus",
            "corpus.txt",
            "--out",
            &other,
            "--force",
        ],
        vec![
            "targets",
            "recipe.yaml",
            "--out",
            &other,
            "--force",
            "--quiet",
        ],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let out = destila(r, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("destila init"),
            "{args:?}: {err}"
        );
        assert!(r.join("other/config.json").is_file());
    }
    std::fs::write(run.join(".destila-tmp-notes.txt"), "mine").unwrap();
    let out = destila(r, &recipe(&["--force"]));
    succeeded(&out);
    assert_eq!(
        std::fs::read_to_string(run.join(".destila-tmp-notes.txt")).unwrap(),
        "mine"
    );
}
