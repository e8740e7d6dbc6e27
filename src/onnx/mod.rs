//! ONNX export of an encoder: `model.onnx` (opset 17) with dynamic batch and sequence
//! axes, inputs `input_ids`, `attention_mask`, `token_type_ids` (int64) and outputs
//! `last_hidden_state` and `sentence_embedding` (the folder's sentence-transformers pooling
//! and normalisation, else mean pooling). fp32, or dynamically quantised int8 in the form
//! onnxruntime's `quantize_dynamic` produces: int8 weights (here per output channel) for
//! every linear layer, activations quantised at run time (`DynamicQuantizeLinear`,
//! `MatMulInteger`, then the product of the scales); the word-embedding table int8 per
//! row as well, only the gathered rows dequantised. The graph is written as `prost`
//! messages (`proto.rs`), never by hand-encoding bytes.

pub mod proto;

use std::path::{Path, PathBuf};

use prost::Message;
use tch::{Kind, Tensor};

use crate::bert::{self, BertConfig, Model};
use crate::embed::Pooling;
use crate::error::{Error, Result};
use crate::output::Folder;
use proto::*;

/// What `export_onnx` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OnnxSummary {
    pub out: PathBuf,
    pub file_bytes: u64,
    pub int8: bool,
    pub nodes: usize,
    pub pooling: String,
    pub normalize: bool,
}

/// The graph being built: nodes in topological order and the initializers.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    count: usize,
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: ATTR_INT,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: ATTR_INTS,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: ATTR_FLOAT,
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[&str]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(n) => DimensionValue::DimValue(n),
                Err(_) => DimensionValue::DimParam(d.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

impl Graph {
    fn fresh(&mut self, op: &str) -> String {
        self.count += 1;
        format!("{}_{}", op.to_lowercase(), self.count)
    }

    /// A node with one output; returns the output's name.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.op_n(op, inputs, 1, attrs).remove(0)
    }

    fn op_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<AttributeProto>,
    ) -> Vec<String> {
        let name = self.fresh(op);
        let out: Vec<String> = (0..outputs).map(|i| format!("{name}:{i}")).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: out.clone(),
            name,
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        });
        out
    }

    /// An initializer (a constant of the same name is made once).
    fn init(&mut self, name: &str, data_type: i32, dims: &[i64], raw: Vec<u8>) -> String {
        if self.inits.iter().any(|t| t.name == name) {
            return name.to_string();
        }
        self.inits.push(TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.into(),
            raw_data: raw,
        });
        name.to_string()
    }

    fn f32_tensor(&mut self, name: &str, t: &Tensor) -> Result<String> {
        let t = t
            .to_kind(Kind::Float)
            .to_device(tch::Device::Cpu)
            .contiguous();
        let v: Vec<f32> = Vec::try_from(t.view([-1]))?;
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Ok(self.init(name, FLOAT, &t.size(), raw))
    }

    fn f32s(&mut self, name: &str, v: &[f32], dims: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(name, FLOAT, dims, raw)
    }

    fn i64s(&mut self, name: &str, v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(name, INT64, &[v.len() as i64], raw)
    }

    /// `x @ weight^T + bias`, `weight` [out, in] as PyTorch keeps it; int8 per output
    /// channel (symmetric, zero point 0) when `int8`.
    fn linear(
        &mut self,
        x: &str,
        name: &str,
        weight: &Tensor,
        bias: &Tensor,
        int8: bool,
    ) -> Result<String> {
        let b = self.f32_tensor(&format!("{name}.bias"), bias)?;
        let wt = weight.to_kind(Kind::Float).transpose(0, 1).contiguous(); // [in, out]
        if !int8 {
            let w = self.f32_tensor(&format!("{name}.weight"), &wt)?;
            let y = self.op("MatMul", &[x, &w], vec![]);
            return Ok(self.op("Add", &[&y, &b], vec![]));
        }
        let scale = (wt.abs().amax([0], false) / 127.0).clamp_min(1e-12); // [out]
        let q = (&wt / &scale)
            .round()
            .clamp(-127.0, 127.0)
            .to_kind(Kind::Int8);
        let qv: Vec<i8> = Vec::try_from(q.view([-1]))?;
        let out = wt.size()[1];
        let wq = self.init(
            &format!("{name}.weight_quantized"),
            INT8,
            &wt.size(),
            qv.iter().map(|&v| v as u8).collect(),
        );
        let wz = self.init(
            &format!("{name}.weight_zero_point"),
            INT8,
            &[out],
            vec![0u8; out as usize],
        );
        let ws = self.f32_tensor(&format!("{name}.weight_scale"), &scale)?;
        let xq = self.op_n("DynamicQuantizeLinear", &[x], 3, vec![]);
        let acc = self.op("MatMulInteger", &[&xq[0], &wq, &xq[2], &wz], vec![]);
        let accf = self.op("Cast", &[&acc], vec![attr_int("to", FLOAT as i64)]);
        let s = self.op("Mul", &[&xq[1], &ws], vec![]);
        let y = self.op("Mul", &[&accf, &s], vec![]);
        Ok(self.op("Add", &[&y, &b], vec![]))
    }

    /// The word embeddings of `input_ids`; with `int8`, the table is stored int8 per row
    /// (symmetric) and only the gathered rows are dequantised.
    fn embedding(&mut self, table: &Tensor, int8: bool) -> Result<String> {
        if !int8 {
            let w = self.f32_tensor("embeddings.word", table)?;
            return Ok(self.op("Gather", &[&w, "input_ids"], vec![attr_int("axis", 0)]));
        }
        let t = table.to_kind(Kind::Float).to_device(tch::Device::Cpu);
        let scale = (t.abs().amax([1], true) / 127.0).clamp_min(1e-12); // [vocab, 1]
        let q = (&t / &scale)
            .round()
            .clamp(-127.0, 127.0)
            .to_kind(Kind::Int8);
        let qv: Vec<i8> = Vec::try_from(q.view([-1]))?;
        let wq = self.init(
            "embeddings.word_quantized",
            INT8,
            &t.size(),
            qv.iter().map(|&v| v as u8).collect(),
        );
        let ws = self.f32_tensor("embeddings.word_scale", &scale)?;
        let rows = self.op("Gather", &[&wq, "input_ids"], vec![attr_int("axis", 0)]);
        let rows = self.op("Cast", &[&rows], vec![attr_int("to", FLOAT as i64)]);
        let scales = self.op("Gather", &[&ws, "input_ids"], vec![attr_int("axis", 0)]);
        Ok(self.op("Mul", &[&rows, &scales], vec![]))
    }

    fn layer_norm(
        &mut self,
        x: &str,
        name: &str,
        w: &Tensor,
        b: &Tensor,
        eps: f64,
    ) -> Result<String> {
        let g = self.f32_tensor(&format!("{name}.weight"), w)?;
        let bb = self.f32_tensor(&format!("{name}.bias"), b)?;
        Ok(self.op(
            "LayerNormalization",
            &[x, &g, &bb],
            vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)],
        ))
    }

    fn activation(&mut self, x: &str, act: &str) -> Result<String> {
        Ok(match act {
            "gelu" => {
                // 0.5 x (1 + erf(x / sqrt 2)), as torch's exact GELU.
                let r2 = self.f32s("const.sqrt2", &[std::f32::consts::SQRT_2], &[]);
                let one = self.f32s("const.one", &[1.0], &[]);
                let half = self.f32s("const.half", &[0.5], &[]);
                let d = self.op("Div", &[x, &r2], vec![]);
                let e = self.op("Erf", &[&d], vec![]);
                let p = self.op("Add", &[&e, &one], vec![]);
                let m = self.op("Mul", &[x, &p], vec![]);
                self.op("Mul", &[&m, &half], vec![])
            }
            "relu" => self.op("Relu", &[x], vec![]),
            other => {
                return Err(Error::Invalid(format!(
                    "hidden_act {other:?}: the ONNX export supports gelu and relu"
                )))
            }
        })
    }
}

/// Variables by HF name.
fn var<'a>(vars: &'a std::collections::HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    vars.get(name)
        .ok_or_else(|| Error::Invalid(format!("the model has no tensor {name}")))
}

/// The encoder's graph; returns the name of the last hidden state and the float mask.
fn encoder(g: &mut Graph, m: &Model, int8: bool) -> Result<(String, String)> {
    let c: &BertConfig = m.config();
    let vars = m.vs.variables();
    let v = |n: &str| var(&vars, n);
    let pos = g.f32_tensor(
        "embeddings.position",
        v("bert.embeddings.position_embeddings.weight")?,
    )?;
    let typ = g.f32_tensor(
        "embeddings.token_type",
        v("bert.embeddings.token_type_embeddings.weight")?,
    )?;
    let we = g.embedding(v("bert.embeddings.word_embeddings.weight")?, int8)?;
    let shape = g.op("Shape", &["input_ids"], vec![]);
    let one_idx = g.i64s("const.index1", &[1]);
    let len = g.op("Gather", &[&shape, &one_idx], vec![attr_int("axis", 0)]);
    let zero = g.init("const.zero_i64", INT64, &[], 0i64.to_le_bytes().to_vec());
    let one = g.init("const.one_i64", INT64, &[], 1i64.to_le_bytes().to_vec());
    let len0 = g.op("Squeeze", &[&len], vec![]);
    let ids = g.op("Range", &[&zero, &len0, &one], vec![]);
    let pe = g.op("Gather", &[&pos, &ids], vec![attr_int("axis", 0)]);
    let te = g.op(
        "Gather",
        &[&typ, "token_type_ids"],
        vec![attr_int("axis", 0)],
    );
    let s1 = g.op("Add", &[&we, &pe], vec![]);
    let s2 = g.op("Add", &[&s1, &te], vec![]);
    let eps = c.layer_norm_eps;
    let mut x = g.layer_norm(
        &s2,
        "embeddings.LayerNorm",
        v("bert.embeddings.LayerNorm.weight")?,
        v("bert.embeddings.LayerNorm.bias")?,
        eps,
    )?;
    // Additive mask [b, 1, 1, s]: 0 where attended, the float minimum where padded.
    let maskf = g.op(
        "Cast",
        &["attention_mask"],
        vec![attr_int("to", FLOAT as i64)],
    );
    let onef = g.f32s("const.one_f", &[1.0], &[]);
    let inv = g.op("Sub", &[&onef, &maskf], vec![]);
    let minf = g.f32s("const.min_f", &[f32::MIN], &[]);
    let addm = g.op("Mul", &[&inv, &minf], vec![]);
    let axes12 = g.i64s("const.axes12", &[1, 2]);
    let ext = g.op("Unsqueeze", &[&addm, &axes12], vec![]);
    // Heads of head_dim each, as many as the layer has (a pruned model's layers differ).
    let d = c.head_dim();
    let split = g.i64s("const.split_heads", &[0, 0, -1, d]);
    let merge = g.i64s("const.merge_heads", &[0, 0, -1]);
    let scale = g.f32s("const.attention_scale", &[(d as f32).sqrt()], &[]);
    let consts = [split.as_str(), merge.as_str(), scale.as_str(), ext.as_str()];
    for l in 0..c.num_hidden_layers {
        x = layer(g, m, l, &x, consts, int8)?;
    }
    Ok((x, maskf))
}

/// One encoder layer on `x`: self-attention (heads split and merged by the `split` and
/// `merge` shapes, scores scaled and masked), output, LayerNorm, feed-forward, LayerNorm.
fn layer(
    g: &mut Graph,
    m: &Model,
    l: i64,
    x: &str,
    [split, merge, scale, ext]: [&str; 4],
    int8: bool,
) -> Result<String> {
    let c = m.config();
    let eps = c.layer_norm_eps;
    let vars = m.vs.variables();
    let v = |n: &str| var(&vars, n);
    let p = |s: &str| format!("bert.encoder.layer.{l}.{s}");
    let lin = |g: &mut Graph, x: &str, s: &str| -> Result<String> {
        g.linear(
            x,
            &format!("layer{l}.{s}"),
            v(&p(&format!("{s}.weight")))?,
            v(&p(&format!("{s}.bias")))?,
            int8,
        )
    };
    let q = lin(g, x, "attention.self.query")?;
    let k = lin(g, x, "attention.self.key")?;
    let vv = lin(g, x, "attention.self.value")?;
    let heads_of = |g: &mut Graph, t: &str, perm: &[i64]| {
        let r = g.op("Reshape", &[t, split], vec![]);
        g.op("Transpose", &[&r], vec![attr_ints("perm", perm)])
    };
    let qh = heads_of(g, &q, &[0, 2, 1, 3]);
    let kh = heads_of(g, &k, &[0, 2, 3, 1]);
    let vh = heads_of(g, &vv, &[0, 2, 1, 3]);
    let sc = g.op("MatMul", &[&qh, &kh], vec![]);
    let sc = g.op("Div", &[&sc, scale], vec![]);
    let sc = g.op("Add", &[&sc, ext], vec![]);
    let pr = g.op("Softmax", &[&sc], vec![attr_int("axis", -1)]);
    let ctx = g.op("MatMul", &[&pr, &vh], vec![]);
    let ctx = g.op("Transpose", &[&ctx], vec![attr_ints("perm", &[0, 2, 1, 3])]);
    let ctx = g.op("Reshape", &[&ctx, merge], vec![]);
    let ao = lin(g, &ctx, "attention.output.dense")?;
    let ar = g.op("Add", &[&ao, x], vec![]);
    let a = g.layer_norm(
        &ar,
        &format!("layer{l}.attention.LayerNorm"),
        v(&p("attention.output.LayerNorm.weight"))?,
        v(&p("attention.output.LayerNorm.bias"))?,
        eps,
    )?;
    let i = lin(g, &a, "intermediate.dense")?;
    let i = g.activation(&i, &c.hidden_act)?;
    let o = lin(g, &i, "output.dense")?;
    let orr = g.op("Add", &[&o, &a], vec![]);
    g.layer_norm(
        &orr,
        &format!("layer{l}.output.LayerNorm"),
        v(&p("output.LayerNorm.weight"))?,
        v(&p("output.LayerNorm.bias"))?,
        eps,
    )
}

/// The sentence embedding from the last hidden state: mean over the mask or [CLS], then
/// optionally L2-normalised.
fn sentence(g: &mut Graph, x: &str, maskf: &str, pooling: Pooling, normalize: bool) -> String {
    let pooled = match pooling {
        Pooling::Mean => {
            let axes2 = g.i64s("const.axes2", &[2]);
            let m3 = g.op("Unsqueeze", &[maskf, &axes2], vec![]);
            let xm = g.op("Mul", &[x, &m3], vec![]);
            let axes1 = g.i64s("const.axes1", &[1]);
            let sum = g.op("ReduceSum", &[&xm, &axes1], vec![attr_int("keepdims", 0)]);
            let cnt = g.op("ReduceSum", &[&m3, &axes1], vec![attr_int("keepdims", 0)]);
            let tiny = g.f32s("const.tiny", &[1e-9], &[]);
            let cnt = g.op("Max", &[&cnt, &tiny], vec![]);
            g.op("Div", &[&sum, &cnt], vec![])
        }
        Pooling::Cls => {
            let zero = g.i64s("const.index0", &[0]);
            let c = g.op("Gather", &[x, &zero], vec![attr_int("axis", 1)]);
            let axes1 = g.i64s("const.axes1_cls", &[1]);
            g.op("Squeeze", &[&c, &axes1], vec![])
        }
    };
    if !normalize {
        return pooled;
    }
    let n = g.op(
        "ReduceL2",
        &[&pooled],
        vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
    );
    let tiny = g.f32s("const.tiny_norm", &[1e-12], &[]);
    let n = g.op("Max", &[&n, &tiny], vec![]);
    g.op("Div", &[&pooled, &n], vec![])
}

/// The ONNX model of `m` (see the module's comment).
pub fn model_proto(m: &Model, pooling: Pooling, normalize: bool, int8: bool) -> Result<ModelProto> {
    let mut g = Graph::default();
    let (x, maskf) = encoder(&mut g, m, int8)?;
    let hidden = g.op("Identity", &[&x], vec![]);
    let emb = sentence(&mut g, &x, &maskf, pooling, normalize);
    // Name the outputs.
    for (from, to) in [(hidden, "last_hidden_state"), (emb, "sentence_embedding")] {
        for n in g.nodes.iter_mut() {
            for o in n.output.iter_mut() {
                if *o == from {
                    *o = to.to_string();
                }
            }
        }
    }
    let h = m.config().hidden_size.to_string();
    let graph = GraphProto {
        node: g.nodes,
        name: "destila-bert".into(),
        initializer: g.inits,
        input: ["input_ids", "attention_mask", "token_type_ids"]
            .iter()
            .map(|n| value_info(n, INT64, &["batch", "sequence"]))
            .collect(),
        output: vec![
            value_info("last_hidden_state", FLOAT, &["batch", "sequence", &h]),
            value_info("sentence_embedding", FLOAT, &["batch", &h]),
        ],
    };
    Ok(ModelProto {
        ir_version: 8,
        producer_name: "destila".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: String::new(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
    })
}

/// `destila export --format onnx`: `out/model.onnx` with the tokenizer files and
/// config.json beside it.
pub fn export_onnx(checkpoint: &Path, out: &Path, int8: bool, force: bool) -> Result<OnnxSummary> {
    let folder = Folder::claim(out, "--out", "export", force, &[checkpoint.to_path_buf()])?;
    let result = (|| -> Result<OnnxSummary> {
        let m = bert::load(checkpoint, &Default::default())?;
        let st = crate::sentence::read(checkpoint)?;
        let pooling = st.as_ref().map_or(Pooling::Mean, |s| s.pooling);
        let normalize = st.as_ref().is_some_and(|s| s.normalize);
        let proto = model_proto(&m, pooling, normalize, int8)?;
        let path = folder.tmp.join("model.onnx");
        std::fs::write(&path, proto.encode_to_vec()).map_err(|e| Error::io(&path, e))?;
        crate::distill::checkpoint::copy_tokenizer(checkpoint, &folder.tmp)?;
        std::fs::copy(
            checkpoint.join("config.json"),
            folder.tmp.join("config.json"),
        )
        .map_err(|e| Error::io(checkpoint.join("config.json"), e))?;
        Ok(OnnxSummary {
            out: out.to_path_buf(),
            file_bytes: std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len(),
            int8,
            nodes: proto.graph.as_ref().map_or(0, |g| g.node.len()),
            pooling: format!("{pooling:?}").to_lowercase(),
            normalize,
        })
    })();
    match result {
        Ok(s) => {
            folder.commit()?;
            Ok(s)
        }
        Err(e) => {
            folder.abandon();
            Err(e)
        }
    }
}
