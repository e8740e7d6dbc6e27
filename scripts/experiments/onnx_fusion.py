"""Does onnxruntime's own tooling make a faster graph than destila's ONNX export?
python scripts/experiments/onnx_fusion.py FP32_DIR INT8_DIR NUM_HEADS HIDDEN
FP32_DIR, INT8_DIR: `destila export --format onnx` of one student without and with
`--quantize int8`. Builds onnxruntime's transformer-optimizer form of the fp32 graph
(model_type bert: SkipLayerNormalization, BiasGelu, attention where its pattern matches)
and onnxruntime's quantize_dynamic of both, then times the five at 1 x 128 on 2 threads in
5 interleaved rounds (reversed every other round) of 30 runs each."""
import logging
import os
import statistics
import sys
import tempfile

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers import optimizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ladder_onnx import latency, session  # noqa: E402


def main():
    fp32, int8, heads, hidden = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    logging.disable(logging.WARNING)
    tmp = tempfile.mkdtemp()
    fused = os.path.join(tmp, "fused32.onnx")
    opt = optimizer.optimize_model(f"{fp32}/model.onnx", model_type="bert", num_heads=heads,
                                   hidden_size=hidden, opt_level=0)
    print("fused operators:", {k: v for k, v in opt.get_fused_operator_statistics().items() if v})
    opt.save_model_to_file(fused)
    ex = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(fused, os.path.join(tmp, "fused8.onnx"), weight_type=QuantType.QInt8, extra_options=ex)
    quantize_dynamic(f"{fp32}/model.onnx", os.path.join(tmp, "ortq8.onnx"), weight_type=QuantType.QInt8,
                     extra_options=ex)
    models = {
        "destila fp32": f"{fp32}/model.onnx",
        "optimizer-fused fp32": fused,
        "destila int8": f"{int8}/model.onnx",
        "quantize_dynamic int8": os.path.join(tmp, "ortq8.onnx"),
        "optimizer-fused + quantize_dynamic int8": os.path.join(tmp, "fused8.onnx"),
    }
    sessions = {k: session(v, 2) for k, v in models.items()}
    res = {k: [] for k in models}
    for r in range(5):
        for k in (list(models) if r % 2 == 0 else list(reversed(models))):
            res[k].append(latency(sessions[k], 1, 128, 30)[0])
    for k, v in res.items():
        print(f"{k:42s} {statistics.median(v):.2f} ms  rounds {' '.join('%.2f' % x for x in v)}")


if __name__ == "__main__":
    main()
