#!/usr/bin/env bash
# Side-by-side benchmarks against `transformers` on this machine, interleaved in rounds so
# that drift in the machine's speed hits both sides alike. Figures are medians over rounds;
# the reports go to target/bench/*.md (copy them into BENCHMARKS.md).
#   THREADS (default: nproc), ROUNDS (3), ITERS (5), DEVICE (cpu),
#   ONLY (forward | step | data | dp | targets: run one part), BIG_MB (500: the generated corpus for peak memory)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=${BIN:-target/release/destila}
PY=${PY:-.venv/bin/python}
TEACHER=.cache/teachers/all-MiniLM-L6-v2
MODEL=.cache/bench/minilm-pretraining
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
DEVICE=${DEVICE:-cpu}
OUT=target/bench
mkdir -p $OUT
[ -f $MODEL/model.safetensors ] || $PY scripts/bench_forward.py prepare $TEACHER $MODEL

ONLY=${ONLY:-}
BIG_MB=${BIG_MB:-500}

if [ -z "$ONLY" ] || [ "$ONLY" = forward ]; then
log=$OUT/forward.jsonl
: > $log
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  $BIN --threads "$THREADS" bench forward $MODEL --mlm all --nsp --iters "$ITERS" --warmup 1 --device "$DEVICE" \
    | sed 's/^{/{"impl":"destila",/' >> $log
  if [ "$DEVICE" = cpu ]; then
    $PY scripts/bench_forward.py run $MODEL --threads "$THREADS" --iters "$ITERS" --warmup 1 >> $log
  fi
  $BIN --threads "$THREADS" bench forward $MODEL --mlm masked --nsp --iters "$ITERS" --warmup 1 --device "$DEVICE" \
    | sed 's/^{/{"impl":"destila",/' >> $log
done

$PY - "$log" "$THREADS" <<'PYEOF' | tee $OUT/forward.md
import json, statistics, sys, platform
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(impl, mlm):
    v = [r["tokens_per_s"] for r in rows if r["impl"] == impl and r["mlm"] == mlm]
    return statistics.median(v) if v else None
d_all, d_masked, hf = med("destila", "all"), med("destila", "masked"), med("transformers", "all")
dev = next(r.get("device", "cpu") for r in rows if r["impl"] == "destila")
print(f"Teacher forward, all-MiniLM-L6-v2 shape (6x384) + MLM/NSP heads, batch 32 x 128, {dev}, threads {sys.argv[2]}, {len(rows)} runs")
print()
print("| implementation | MLM logits at | tokens/s (median) | ratio to transformers |")
print("|---|---|---:|---:|")
if hf:
    print(f"| transformers BertForPreTraining | every position | {hf:,.0f} | 1.00x |")
for name, v in [("every position", d_all), ("15% masked positions", d_masked)]:
    ratio = f"{v / hf:.2f}x" if hf else "n/a"
    print(f"| destila | {name} | {v:,.0f} | {ratio} |")
PYEOF
fi

if [ -z "$ONLY" ] || [ "$ONLY" = step ]; then
# One distillation step: destila's trainer step against the same step in PyTorch.
log=$OUT/step.jsonl
: > $log
for r in $(seq "$ROUNDS"); do
  echo "step round $r/$ROUNDS" >&2
  /usr/bin/time -f "%M" -o $OUT/rss.txt $BIN --threads "$THREADS" bench step $MODEL --iters "$ITERS" --warmup 1 --device "$DEVICE" \
    | $PY -c 'import json,sys; r=json.load(sys.stdin); r["impl"]="destila"; r["maxrss_kb"]=int(open(sys.argv[1]).read().split()[-1]); print(json.dumps(r))' $OUT/rss.txt >> $log
  if [ "$DEVICE" = cpu ]; then
    /usr/bin/time -f "%M" -o $OUT/rss.txt $PY scripts/bench_step.py $MODEL --threads "$THREADS" --iters "$ITERS" --warmup 1 \
      | $PY -c 'import json,sys; r=json.load(sys.stdin); r["maxrss_kb"]=int(open(sys.argv[1]).read().split()[-1]); print(json.dumps(r))' $OUT/rss.txt >> $log
    # The same step written as well as PyTorch allows (heads at the masked positions only).
    /usr/bin/time -f "%M" -o $OUT/rss.txt $PY scripts/bench_step.py $MODEL --masked-heads --threads "$THREADS" --iters "$ITERS" --warmup 1 \
      | $PY -c 'import json,sys; r=json.load(sys.stdin); r["maxrss_kb"]=int(open(sys.argv[1]).read().split()[-1]); print(json.dumps(r))' $OUT/rss.txt >> $log
    $PY scripts/bench_step.py $MODEL --gemm --threads "$THREADS" --iters 10 --warmup 2 >> $log
  fi
done
$PY - "$log" "$THREADS" <<'PYEOF' | tee $OUT/step.md
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(impl, k):
    v = [r[k] for r in rows if r["impl"] == impl]
    return statistics.median(v) if v else None
d, h, hm = med("destila", "samples_per_s"), med("transformers", "samples_per_s"), med("transformers-masked", "samples_per_s")
gemm = med("gemm", "mix_gflops_per_s")
print(f"One distillation step: teacher 6x384 (all-MiniLM-L6-v2 + heads), student 3x384 from teacher layers 1,3,5,")
print(f"batch 32 x 128, kd_mlm + kd_nsp + mlm + nsp + hidden_cos, AdamW, threads {sys.argv[2]}, {len(rows)} runs")
print()
print("| implementation | MLM head at | samples/s (median) | destila's ratio to it | peak RSS |")
print("|---|---|---:|---:|---:|")
if h:
    print(f"| PyTorch + transformers, as a transformers user writes it | every position | {h:.2f} | {d / h:.2f}x | {med('transformers', 'maxrss_kb')/1024:,.0f} MiB |")
if hm:
    print(f"| PyTorch + transformers, written as well as it can be (same work as destila) | masked positions | {hm:.2f} | {d / hm:.2f}x | {med('transformers-masked', 'maxrss_kb')/1024:,.0f} MiB |")
print(f"| destila | masked positions | {d:.2f} | 1.00x | {med('destila', 'maxrss_kb')/1024:,.0f} MiB |")
print()
achieved = med('destila', 'tflops_per_s') * 1e3
print(f"destila step: {med('destila', 'step_flops')/1e9:,.0f} GFLOP (teacher forward + 3 x student forward), {achieved:,.1f} GFLOP/s achieved")
if gemm:
    print(f"this machine's fp32 GEMM at the model's shapes (same run, FLOP-weighted mix): {gemm:,.1f} GFLOP/s; destila reaches {achieved / gemm:.0%} of it")
PYEOF
fi

if [ -z "$ONLY" ] || [ "$ONLY" = data ]; then
# Data pipeline: tokenisation and batches on one core, and peak memory on a large corpus.
log=$OUT/data.jsonl
: > $log
for r in $(seq "$ROUNDS"); do
  echo "data round $r/$ROUNDS" >&2
  RAYON_NUM_THREADS=1 $BIN --threads 1 bench data recipes/demo.yaml --batches 500 >> $log
done
BIG=.cache/bench/corpus-${BIG_MB}mb
[ -d $BIG ] || $PY scripts/gen_corpus.py $BIG "$BIG_MB"
rm -rf .cache/bench/shards-big .cache/bench/shards-small
rss() { /usr/bin/time -f "%M" "$@" 2>&1 >/dev/null | tail -1; }
base_kb=$(rss $BIN --help)
small_kb=$(rss $BIN data stats data/austen/train --cache-dir .cache/bench/shards-small)
start=$(date +%s.%N)
big_kb=$(rss $BIN data stats $BIG --cache-dir .cache/bench/shards-big)
big_s=$(echo "$(date +%s.%N) - $start" | awk '{print $1 - $3}')
reuse_kb=$(rss $BIN data stats $BIG --cache-dir .cache/bench/shards-big)
# The step the batches feed: the teacher's forward at batch 32 x 128 (masked MLM, NSP), a lower
# bound on a distillation step, which adds the student's forward and backward.
teacher_s=$($BIN --threads "$THREADS" bench forward $MODEL --mlm masked --nsp --iters 3 --warmup 1 | $PY -c 'import json,sys; print(json.load(sys.stdin)["median_s"])')
$PY - "$log" "$base_kb" "$small_kb" "$big_kb" "$reuse_kb" "$big_s" "$BIG" "$teacher_s" <<'PYEOF' | tee $OUT/data.md
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base, small, big, reuse = (int(x) / 1024 for x in sys.argv[2:6])
big_s, big_dir, teacher_s = float(sys.argv[6]), sys.argv[7], float(sys.argv[8])
big_bytes = sum(os.path.getsize(os.path.join(big_dir, f)) for f in os.listdir(big_dir))
med = lambda k: statistics.median(r[k] for r in rows)
bs = rows[0]["batch_size"]
per_batch = 1 / med("batches_per_s")
print(f"Data pipeline, one core (RAYON_NUM_THREADS=1, --threads 1), recipes/demo.yaml, {len(rows)} rounds")
print()
print("| measure | value |")
print("|---|---:|")
print(f"| tokenisation into the shard cache (Austen train, {rows[0]['text_bytes']/1e6:.1f} MB) | {med('tokenise_mb_per_s'):.2f} MB/s |")
print(f"| batches of {bs} x {rows[0]['max_seq_len']} from the cache | {med('batches_per_s'):,.0f} batches/s |")
print(f"| sequences of {rows[0]['max_seq_len']} tokens from the cache | {med('sequences_per_s'):,.0f} /s (target >= 20,000) |")
print(f"| one batch of {bs} | {per_batch*1e3:.3f} ms |")
print(f"| teacher forward alone at 32 x 128 (lower bound of a step) | {teacher_s*1e3:.0f} ms |")
print(f"| batch preparation / teacher forward (batch {bs}) | {per_batch/teacher_s*100:.3f}% (target < 5% of a step) |")
print()
print(f"Peak resident memory (`/usr/bin/time -f %M`, `destila data stats`, {os.cpu_count()} threads)")
print()
print("| run | peak RSS |")
print("|---|---:|")
print(f"| `destila --help` (libtorch loaded, nothing else) | {base:,.0f} MiB |")
print(f"| Austen train, 3.6 MB, cache built | {small:,.0f} MiB |")
print(f"| generated corpus, {big_bytes/1e6:,.0f} MB, cache built ({big_s:.0f} s) | {big:,.0f} MiB |")
print(f"| the same, cache reused | {reuse:,.0f} MiB |")
PYEOF
fi

if [ -z "$ONLY" ] || [ "$ONLY" = dp ]; then
  scripts/bench_dp.sh
fi

if [ -z "$ONLY" ] || [ "$ONLY" = targets ]; then
  # Top-k teacher targets against the full vocabulary, on held-out Persuasion, with the
  # demo's fitted teacher heads and trained student (run `make demo` first).
  if [ -f runs/demo/teacher-heads/model.safetensors ] && [ -f runs/demo/final/model.safetensors ]; then
    for T in 1 2; do
      $BIN --threads "$THREADS" bench topk runs/demo/teacher-heads runs/demo/final \
        --data data/austen/validation --batches 8 --temperature $T --k 8,32,128,1024
    done > $OUT/topk.jsonl
    $PY - $OUT/topk.jsonl <<'PYEOF' | tee $OUT/topk.md
import json, sys
print("| k | bytes/token (top-k) | T | teacher mass in top k | KD full | KD top-k | difference |")
print("|---:|---:|---:|---:|---:|---:|---:|")
rows = [json.loads(l) for l in open(sys.argv[1])]
temps = [1, 1, 1, 1, 2, 2, 2, 2]
for r, t in zip(rows, temps):
    print(f"| {r['k']} | {r['bytes_per_token']:.1f} | {t} | {r['mass']:.3f} | {r['kd_full']:.4f} | {r['kd_topk']:.4f} | {r['difference']:+.4f} |")
PYEOF
  else
    echo "bench targets: no runs/demo (run make demo first)" >&2
  fi
fi

