//! libtorch's dynamically quantised linear kernels (fbgemm on x86), reached through
//! `csrc/qlinear.cpp` because tch does not expose `quantized::linear_prepack` and
//! `linear_dynamic`: int8 weights packed once, activations quantised per tensor at run time.

use std::ffi::{c_char, CStr};

use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
struct Raw {
    _private: [u8; 0],
}

extern "C" {
    fn dst_free_string(s: *mut c_char);
    fn dst_qengine() -> *mut c_char;
    fn dst_qlinear_new(
        qweight: *mut C_tensor,
        scale: *mut C_tensor,
        bias: *mut C_tensor,
        err: *mut *mut c_char,
    ) -> *mut Raw;
    fn dst_qlinear_free(q: *mut Raw);
    fn dst_qlinear_forward(q: *mut Raw, x: *mut C_tensor, err: *mut *mut c_char) -> *mut C_tensor;
}

/// Takes a malloc'd C string from the bridge.
fn take(p: *mut c_char) -> String {
    if p.is_null() {
        return "unknown error".into();
    }
    // SAFETY: the bridge returns NUL-terminated strings from malloc; freed once here.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { dst_free_string(p) };
    s
}

/// The quantised engine libtorch uses here ("x86" and "fbgemm" are fbgemm's kernels).
pub fn engine() -> String {
    // SAFETY: returns a fresh malloc'd string.
    take(unsafe { dst_qengine() })
}

/// Whether inference runs int8 checkpoints through these kernels: yes unless
/// `DESTILA_INT8_KERNELS=0` (then their dequantised f32 copies run, as on other devices).
pub fn wanted() -> crate::error::Result<bool> {
    match std::env::var("DESTILA_INT8_KERNELS") {
        Err(_) => Ok(true),
        Ok(v) if v == "1" => Ok(true),
        Ok(v) if v == "0" => Ok(false),
        Ok(v) => Err(crate::error::Error::Invalid(format!(
            "DESTILA_INT8_KERNELS={v:?}: 1 (run int8 checkpoints through libtorch's int8 kernels, the default) or 0 (dequantise them to f32)"
        ))),
    }
}

/// One linear layer's packed int8 weight (and f32 bias).
pub struct QLinear {
    raw: *mut Raw,
    pub out_features: i64,
    pub in_features: i64,
}

// SAFETY: the packed weight is immutable once made; fbgemm's forward only reads it.
unsafe impl Send for QLinear {}
unsafe impl Sync for QLinear {}

impl std::fmt::Debug for QLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QLinear({} -> {})", self.in_features, self.out_features)
    }
}

impl QLinear {
    /// `qweight` int8 [out, in], `scale` f32 [out] (symmetric per output row), `bias` [out].
    pub fn new(
        qweight: &Tensor,
        scale: &Tensor,
        bias: Option<&Tensor>,
    ) -> std::result::Result<Self, String> {
        let (out_features, in_features) = qweight
            .size2()
            .map_err(|_| format!("int8 weight of shape {:?}, not 2-D", qweight.size()))?;
        let mut err = std::ptr::null_mut();
        let bias = bias.map_or(std::ptr::null_mut(), |b| b.as_ptr() as *mut C_tensor);
        // SAFETY: the tensors outlive the call; the bridge copies what it keeps.
        let raw = unsafe {
            dst_qlinear_new(
                qweight.as_ptr() as *mut C_tensor,
                scale.as_ptr() as *mut C_tensor,
                bias,
                &mut err,
            )
        };
        if raw.is_null() {
            return Err(take(err));
        }
        Ok(QLinear {
            raw,
            out_features,
            in_features,
        })
    }

    /// `x` f32 [..., in] on the CPU → [..., out].
    pub fn forward(&self, x: &Tensor) -> std::result::Result<Tensor, String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: `raw` is live while self is; the result is a new at::Tensor we own.
        let out = unsafe { dst_qlinear_forward(self.raw, x.as_ptr() as *mut C_tensor, &mut err) };
        if out.is_null() {
            return Err(take(err));
        }
        Ok(unsafe { Tensor::from_ptr(out) })
    }
}

impl Drop for QLinear {
    fn drop(&mut self) {
        // SAFETY: made by dst_qlinear_new, freed once.
        unsafe { dst_qlinear_free(self.raw) }
    }
}
