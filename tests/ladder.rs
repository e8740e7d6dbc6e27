//! `destila bench ladder`: the student made smaller step by step, each rung measured for
//! size, latency and similarity structure (against the teacher and the student).

mod common;

#[test]
fn the_ladder_measures_every_rung() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let student = common::short_student(dir.path());
    let sentences = dir.path().join("sentences.txt");
    let text =
        std::fs::read_to_string(common::root().join("data/austen/validation/persuasion.txt"))
            .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.len() > 40)
        .skip(500)
        .take(24)
        .collect();
    std::fs::write(&sentences, lines.join("\n")).unwrap();
    let (train, _) = common::corpus(dir.path());
    // A narrower student: 2 layers, 128 wide, 4 heads, the teacher's vocabulary.
    let narrow = common::tiny_teacher(
        &dir.path().join("narrow"),
        2,
        128,
        4,
        destila::bert::Heads::default(),
    );
    // A structurally pruned student: the short student with half its heads and neurons.
    let pruned = dir.path().join("pruned");
    let o = common::destila()
        .args([
            "prune",
            student.to_str().unwrap(),
            "--corpus",
            train.to_str().unwrap(),
        ])
        .args([
            "--out",
            pruned.to_str().unwrap(),
            "--heads",
            "6",
            "--ffn",
            "768",
        ])
        .args(["--sentences", "32", "--teacher", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Human judgements: the first 60 LEE pairs.
    let pairs = dir.path().join("pairs.csv");
    let lee = std::fs::read_to_string(common::root().join(".cache/eval/lee-pairs.csv")).unwrap();
    let mut r = csv::Reader::from_reader(lee.as_bytes());
    let mut w = csv::Writer::from_path(&pairs).unwrap();
    w.write_record(["text_a", "text_b", "score"]).unwrap();
    for rec in r.records().take(60) {
        w.write_record(&rec.unwrap()).unwrap();
    }
    w.flush().unwrap();
    let out = dir.path().join("ladder");
    let o = common::destila()
        .args([
            "--threads",
            "2",
            "bench",
            "ladder",
            "--iters",
            "1",
            "--rounds",
            "2",
        ])
        .args(["--teacher", t.to_str().unwrap()])
        .args(["--student", student.to_str().unwrap()])
        .args(["--sentences", sentences.to_str().unwrap()])
        .args(["--prune-corpus", train.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .arg("--narrow")
        .arg(&narrow)
        .arg("--pruned")
        .arg(&pruned)
        .arg("--pairs")
        .arg(&pairs)
        .arg("--python")
        .arg(common::root().join(".venv/bin/python"))
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{se}");
    let rows: Vec<Vec<&str>> = so
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| rung"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    // The pruned rungs name their shape layer by layer: 2 layers, 12 heads and 1,536 neurons
    // in all, allocated across the layers by importance.
    let shape = parse_shape(rows[10][1]);
    assert_eq!(shape.0, (2, 384), "{so}");
    assert_eq!(shape.1.iter().sum::<i64>(), 12, "{so}");
    assert_eq!(shape.2.iter().sum::<i64>(), 1536, "{so}");
    assert_eq!((shape.1.len(), shape.2.len()), (2, 2), "{so}");
    let names: Vec<String> = rows
        .iter()
        .map(|r| match r[1].split_once(" (") {
            Some((a, b)) => format!("{a} {}", b.rsplit(' ').next().unwrap()),
            None => r[1].to_string(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "teacher f32",
            "student f32",
            "student f16",
            "student int8",
            "student int8",
            "student pruned",
            "student pruned int8",
            "narrower student",
            "student pruned onnx-fp32",
            "student pruned onnx-int8",
            "pruned 1 f32",
            "pruned 1 int8",
            "pruned 1 onnx-fp32",
            "pruned 1 onnx-int8",
        ],
        "{so}"
    );
    let vs_student =
        |row: &Vec<&str>| -> f64 { row[12].split('/').next().unwrap().trim().parse().unwrap() };
    assert!(vs_student(&rows[2]) > 0.999, "f16: {so}");
    // int8 dequantised to f32, then through libtorch's int8 kernels.
    assert!(rows[3][2].contains("dequantised") && rows[4][2].contains("int8 kernels"));
    assert!(vs_student(&rows[3]) > 0.98, "int8: {so}");
    assert!(vs_student(&rows[4]) > 0.95, "int8 kernels: {so}");
    assert!(vs_student(&rows[5]) > 0.5, "pruned: {so}");
    assert!(vs_student(&rows[6]) > 0.5, "pruned int8: {so}");
    // The ONNX rungs ran in onnxruntime: fp32 equals the pruned student it was made from.
    assert!(rows[8][2].starts_with("onnxruntime 1."), "{so}");
    let vs_teacher =
        |row: &Vec<&str>| -> f64 { row[11].split('/').next().unwrap().trim().parse().unwrap() };
    assert!(
        (vs_teacher(&rows[8]) - vs_teacher(&rows[5])).abs() < 1e-3,
        "{so}"
    );
    assert!(vs_student(&rows[9]) > 0.9 * vs_student(&rows[5]), "{so}");
    assert!(!rows[9][7].is_empty() && !rows[8][7].is_empty(), "{so}");
    // The pruned student's uneven heads and neurons run in onnxruntime as in destila.
    assert!(rows[12][2].starts_with("onnxruntime 1."), "{so}");
    assert!(
        (vs_teacher(&rows[12]) - vs_teacher(&rows[10])).abs() < 1e-3,
        "{so}"
    );
    assert!(vs_student(&rows[11]) > 0.9 * vs_student(&rows[10]), "{so}");
    // Every rung's agreement with the human judgements, and as a share of the teacher's.
    for row in &rows {
        let humans = row[13];
        assert!(humans.contains('%') || humans.is_empty(), "{so}");
    }
    assert!(rows[0][13].contains("(100.0%)"), "{so}");
    assert!(!rows[10][13].is_empty() && !rows[13][13].is_empty(), "{so}");
    for f in ["frontier.svg", "frontier.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let mb = |row: &Vec<&str>| -> f64 { row[3].parse().unwrap() };
    assert!(
        mb(&rows[2]) < mb(&rows[1])
            && mb(&rows[3]) < mb(&rows[2])
            && mb(&rows[6]) < mb(&rows[5])
            && mb(&rows[7]) < mb(&rows[1])
            && mb(&rows[9]) < mb(&rows[8]),
        "{so}"
    );
    assert!(out.join("ladder.md").is_file() && out.join("ladder.csv").is_file());
    let csv = std::fs::read_to_string(out.join("ladder.csv")).unwrap();
    // 14 rungs x 6 cells and a header.
    assert_eq!(csv.lines().count(), 1 + 14 * 6, "{csv}");
    // Latency in interleaved rounds: every rung timed in turn, the second round in reverse
    // order, each cell the median of its two rounds' medians (their mean), and the threads
    // stated.
    let timed: Vec<&str> = se
        .lines()
        .filter_map(|l| l.strip_prefix("latency round "))
        .collect();
    assert_eq!(timed.len(), 2 * 14, "{se}");
    assert_eq!(timed[0], "1/2: teacher f32", "{se}");
    assert_eq!(timed[13], "1/2: pruned 1 onnx-int8", "{se}");
    assert_eq!(timed[14], "2/2: pruned 1 onnx-int8", "{se}");
    assert_eq!(timed[27], "2/2: teacher f32", "{se}");
    // Rung names hold commas: the CSV quotes them.
    for rec in csv::Reader::from_reader(csv.as_bytes()).records() {
        let f = rec.unwrap();
        assert_eq!(f.len(), 7, "{f:?}");
        let rounds: Vec<f64> = f[6].split(';').map(|x| x.parse().unwrap()).collect();
        let median: f64 = f[4].parse().unwrap();
        assert_eq!(rounds.len(), 2, "{f:?}");
        assert!(
            (median - (rounds[0] + rounds[1]) / 2.0).abs() < 2e-3,
            "{f:?}"
        );
    }
    let md = std::fs::read_to_string(out.join("ladder.md")).unwrap();
    assert!(
        md.starts_with("Latency: ")
            && md.contains("2 interleaved rounds")
            && md.contains("Threads: 2"),
        "{md}"
    );
}

/// The shape in a pruned rung's name, "pruned 1 (2x384, heads 7 5, FFN 800 736) f32":
/// (layers, hidden), heads per layer, FFN neurons per layer.
fn parse_shape(name: &str) -> ((i64, i64), Vec<i64>, Vec<i64>) {
    let inner = name.split_once('(').unwrap().1.split_once(')').unwrap().0;
    let parts: Vec<&str> = inner.split(", ").collect();
    let (l, h) = parts[0].split_once('x').unwrap();
    let nums = |p: &str, key: &str| -> Vec<i64> {
        p.strip_prefix(key)
            .unwrap()
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect()
    };
    (
        (l.parse().unwrap(), h.parse().unwrap()),
        nums(parts[1], "heads "),
        nums(parts[2], "FFN "),
    )
}
