//! BERT's dense layers: an f32 weight and bias (what training and every device use), and,
//! once `pack_int8` is called on an inference model loaded from an int8 checkpoint, the
//! same layer through libtorch's dynamic int8 kernels on the CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use tch::{nn, Device, Kind, Tensor};

use super::qlinear::QLinear;

#[derive(Debug)]
pub struct Linear {
    pub ws: Tensor,
    pub bs: Option<Tensor>,
    int8: OnceLock<QLinear>,
}

impl Linear {
    pub fn new(l: nn::Linear) -> Self {
        Linear {
            ws: l.ws,
            bs: l.bs,
            int8: OnceLock::new(),
        }
    }

    /// Runs this layer through `q` from now on (inputs that are f32 on the CPU).
    pub fn pack_int8(&self, q: QLinear) -> Result<(), String> {
        if q.out_features != self.ws.size()[0] || q.in_features != self.ws.size()[1] {
            return Err(format!(
                "int8 weight [{}, {}] for a layer of shape {:?}",
                q.out_features,
                q.in_features,
                self.ws.size()
            ));
        }
        self.int8
            .set(q)
            .map_err(|_| "layer already packed".to_string())
    }

    pub fn is_int8(&self) -> bool {
        self.int8.get().is_some()
    }
}

static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

impl nn::Module for Linear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        if let Some(q) = self.int8.get() {
            if xs.device() == Device::Cpu && xs.kind() == Kind::Float {
                match q.forward(xs) {
                    Ok(y) => return y,
                    Err(e) => {
                        if !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
                            eprintln!("warning: int8 kernel failed ({e}); using the f32 weights");
                        }
                    }
                }
            }
        }
        xs.linear(&self.ws, self.bs.as_ref())
    }
}
