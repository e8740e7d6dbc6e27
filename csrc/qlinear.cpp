// libtorch's dynamically quantised linear kernels (fbgemm on x86, through the engine
// PyTorch picks) for destila's Rust side (src/bert/qlinear.rs): the int8 weights of
// `destila export --quantize int8` are packed once by `quantized::linear_prepack` and each
// forward quantises its activations at run time (`LinearPackedParamsBase::apply_dynamic`),
// which is what `torch.ao.nn.quantized.dynamic.Linear` does. tch does not expose these ops.
//
// Tensors arrive as `at::Tensor*` (tch's C_tensor handles); every call catches C++
// exceptions and returns them as text.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include "bridge_util.h"

#include <optional>

namespace {

using Packed = c10::intrusive_ptr<LinearPackedParamsBase>;

}  // namespace

struct dst_qlinear {
  Packed packed;
  bool reduce_range;
};

extern "C" {

// The quantised engine libtorch uses on this machine ("fbgemm", "x86", "onednn",
// "qnnpack", or "none").
char* dst_qengine() {
  return dst::dup(c10::toString(at::globalContext().qEngine()));
}

// Packs an int8 weight [out, in] with one f32 scale per output row (symmetric: zero
// points 0) and an optional f32 bias [out].
dst_qlinear* dst_qlinear_new(at::Tensor* qweight, at::Tensor* scale, at::Tensor* bias,
                             char** err) {
  dst_qlinear* out = nullptr;
  dst::guarded(err, [&] {
    TORCH_CHECK(qweight->scalar_type() == at::kChar && qweight->dim() == 2,
                "the weight must be int8 [out, in], got ", qweight->scalar_type(), " ",
                qweight->sizes());
    TORCH_CHECK(scale->dim() == 1 && scale->size(0) == qweight->size(0),
                "the scale must be [out] = [", qweight->size(0), "], got ", scale->sizes());
    auto scales = scale->to(at::kDouble).contiguous();
    auto zeros = at::zeros({qweight->size(0)}, at::kLong);
    auto w = at::_make_per_channel_quantized_tensor(qweight->contiguous(), scales, zeros, 0);
    std::optional<at::Tensor> b;
    if (bias != nullptr) b = bias->to(at::kFloat).contiguous();
    auto op = c10::Dispatcher::singleton()
                  .findSchemaOrThrow("quantized::linear_prepack", "")
                  .typed<Packed(at::Tensor, std::optional<at::Tensor>)>();
    auto packed = op.call(w, b);
    // fbgemm's u8 x s8 products add pairs in 16 bits: activations use 7 bits there, as
    // torch.ao's dynamic Linear does on x86.
    auto engine = at::globalContext().qEngine();
    bool reduce = engine == at::QEngine::FBGEMM || engine == at::QEngine::X86;
    out = new dst_qlinear{packed, reduce};
  });
  return out;
}

void dst_qlinear_free(dst_qlinear* q) { delete q; }

// y = x W^T + b with x quantised per tensor at run time; x is f32 [..., in].
at::Tensor* dst_qlinear_forward(dst_qlinear* q, at::Tensor* x, char** err) {
  at::Tensor* out = nullptr;
  dst::guarded(err, [&] {
    auto y = q->packed->apply_dynamic(x->contiguous(), q->reduce_range);
    out = new at::Tensor(std::move(y));
  });
  return out;
}

}  // extern "C"
