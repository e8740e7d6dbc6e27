//! Loading and saving HF checkpoint folders.
//!
//! VarStore paths are HF's `BertForPreTraining` names, so loading is a name normalisation
//! and a checked copy: names without the `bert.` prefix (BertModel checkpoints), legacy
//! LayerNorm `gamma`/`beta`, the `position_ids` buffer and the tied decoder are mapped here.
//! Tensors are read first and copied under `no_grad` (`VarStore::load` has no rename hook).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tch::{nn, Device, Kind, Tensor};

use super::config::BertConfig;
use super::model::{Bert, BertOutput, ForwardOptions, Heads, Inputs};
use crate::error::{write_atomic, Error, Result};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// Heads to build even when the checkpoint lacks them (they are then freshly
    /// initialised, and the report says so).
    pub heads: Heads,
    /// Kind of the model's variables.
    pub kind: Kind,
    /// When the MLM head is built fresh: give it its own decoder matrix, initialised from
    /// the word embeddings (`tie_word_embeddings: false`), so that fitting can move it while
    /// the embeddings stay frozen.
    pub untie_decoder: bool,
    /// Inference only: run the encoder's int8 dense layers of an int8 checkpoint through
    /// libtorch's dynamic int8 kernels (CPU, f32 models), not through their dequantised
    /// f32 copies. Their forward has no gradient.
    pub int8_kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            heads: Heads::default(),
            kind: Kind::Float,
            untie_decoder: false,
            int8_kernels: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub dir: PathBuf,
    pub weights: Vec<PathBuf>,
    /// The heads the checkpoint itself carries.
    pub checkpoint_heads: Heads,
    /// Heads built fresh because the options asked for them and the checkpoint has none.
    pub initialised: Heads,
    /// Storage kinds found in the checkpoint (e.g. "F32").
    pub dtypes: BTreeSet<String>,
    /// Tensors ignored, and why.
    pub notes: Vec<String>,
}

/// A BERT with its variables.
pub struct Model {
    pub vs: nn::VarStore,
    pub bert: Bert,
    pub report: Option<LoadReport>,
}

impl Model {
    /// A freshly initialised model (BERT's N(0, initializer_range)).
    pub fn random(config: &BertConfig, heads: Heads, device: Device) -> Model {
        let vs = nn::VarStore::new(device);
        let bert = Bert::new(&vs.root(), config, heads);
        Model {
            vs,
            bert,
            report: None,
        }
    }

    pub fn forward(&self, inputs: &Inputs, opts: &ForwardOptions) -> Result<BertOutput> {
        self.bert.forward(inputs, opts)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    pub fn config(&self) -> &BertConfig {
        &self.bert.config
    }

    /// How many dense layers run through libtorch's int8 kernels.
    pub fn int8_layers(&self) -> usize {
        self.bert
            .encoder_linears()
            .iter()
            .filter(|l| l.is_int8())
            .count()
    }
}

/// Maps a checkpoint's tensor name to the VarStore name; `None` for buffers we rebuild.
fn canonical(name: &str) -> Option<String> {
    let mut n = name.to_string();
    if n.ends_with("position_ids") {
        return None;
    }
    if let Some(s) = n.strip_suffix(".gamma") {
        n = format!("{s}.weight");
    } else if let Some(s) = n.strip_suffix(".beta") {
        n = format!("{s}.bias");
    }
    if ["embeddings.", "encoder.", "pooler."]
        .iter()
        .any(|p| n.starts_with(p))
    {
        n = format!("bert.{n}");
    }
    if n == "cls.predictions.decoder.bias" {
        n = "cls.predictions.bias".into();
    }
    Some(n)
}

fn kind_of(dtype: safetensors::Dtype) -> Option<Kind> {
    use safetensors::Dtype as D;
    Some(match dtype {
        D::F32 => Kind::Float,
        D::F16 => Kind::Half,
        D::BF16 => Kind::BFloat16,
        D::F64 => Kind::Double,
        D::I64 => Kind::Int64,
        D::I32 => Kind::Int,
        D::I16 => Kind::Int16,
        D::I8 => Kind::Int8,
        D::U8 => Kind::Uint8,
        D::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// Short name of a tensor kind, as safetensors spells it.
pub fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Float => "F32".into(),
        Kind::Half => "F16".into(),
        Kind::BFloat16 => "BF16".into(),
        Kind::Double => "F64".into(),
        Kind::Int64 => "I64".into(),
        k => format!("{k:?}"),
    }
}

/// Reads every tensor of a `.safetensors` file, with errors that name the file and tensor.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        Error::checkpoint(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    })?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::checkpoint(
                path,
                format!("tensor {name}: unsupported dtype {:?}", view.dtype()),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| Error::checkpoint(path, format!("tensor {name}: {e}")))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads a PyTorch zip checkpoint (`torch.save` of a state dict) through libtorch.
fn read_torch_bin(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::loadz_multi(path).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default().to_string();
        Error::checkpoint(
            path,
            format!("cannot read as a PyTorch checkpoint: {first}"),
        )
    })
}

/// Where `destila export --quantize int8` writes its weights: not `model.safetensors`, so
/// that transformers and sentence-transformers find no weights they could load (they
/// refuse the folder instead of filling it with random weights).
pub const INT8_WEIGHTS: &str = "model.int8.safetensors";

/// The main weights file of a checkpoint folder (for its size and digest):
/// `model.safetensors`, an int8 export's file, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> PathBuf {
    ["model.safetensors", INT8_WEIGHTS]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join("pytorch_model.bin"))
}

/// The weight files of a checkpoint folder, in the order HF prefers them.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    for f in ["model.safetensors", INT8_WEIGHTS] {
        let single = dir.join(f);
        if single.is_file() {
            return Ok(vec![single]);
        }
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = crate::error::read_to_string(&index)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::checkpoint(&index, format!("invalid JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::checkpoint(&index, "no \"weight_map\" object"))?;
        let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    Err(Error::checkpoint(
        dir,
        "no model.safetensors, model.safetensors.index.json or pytorch_model.bin in this folder",
    ))
}

/// The SHA-256 of a checkpoint folder's weights file (`model.safetensors`, else
/// `pytorch_model.bin`): what heads and target caches are keyed by.
pub fn digest(dir: &Path) -> Result<String> {
    crate::digest::file_sha256(&weights_file(dir))
}

/// An int8-quantised linear weight as `destila export --quantize int8` writes it:
/// `NAME.qweight` int8 [out, in] and `NAME.qscale` f32 [out] (NAME ends in `.weight`).
pub struct Int8Weight {
    pub qweight: Tensor,
    pub qscale: Tensor,
}

/// A weight file's tensors, and its int8 weights as stored.
pub type WeightFile = (Vec<(String, Tensor)>, Vec<(String, Int8Weight)>);

/// Reads a weight file; int8-quantised linear weights come back as float `NAME` (and, as
/// stored, in the second list, by `NAME`).
pub fn read_weights(path: &Path) -> Result<WeightFile> {
    let raw = if path.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(path)?
    } else {
        read_torch_bin(path)?
    };
    let scales: BTreeMap<String, Tensor> = raw
        .iter()
        .filter_map(|(n, t)| {
            n.strip_suffix(".qscale")
                .map(|b| (b.to_string(), t.shallow_clone()))
        })
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut int8 = Vec::new();
    for (name, t) in raw {
        if name.ends_with(".qscale") {
            continue;
        }
        match name.strip_suffix(".qweight") {
            Some(base) => {
                let scale = scales.get(base).ok_or_else(|| {
                    Error::checkpoint(path, format!("tensor {name}: no {base}.qscale beside it"))
                })?;
                if t.kind() != Kind::Int8 || t.dim() != 2 || scale.size() != [t.size()[0]] {
                    return Err(Error::checkpoint(
                        path,
                        format!(
                            "tensor {name}: expected int8 [out, in] with {base}.qscale [out], got {:?} {:?} and {:?}",
                            t.kind(),
                            t.size(),
                            scale.size()
                        ),
                    ));
                }
                let w = t.to_kind(Kind::Float) * scale.to_kind(Kind::Float).unsqueeze(1);
                out.push((base.to_string(), w));
                int8.push((
                    base.to_string(),
                    Int8Weight {
                        qweight: t,
                        qscale: scale.to_kind(Kind::Float),
                    },
                ));
            }
            None => out.push((name, t)),
        }
    }
    Ok((out, int8))
}

/// The heads whose tensors appear among `names` (canonical names).
fn heads_in<'a>(names: impl Iterator<Item = &'a String>) -> Heads {
    let mut h = Heads::default();
    for n in names {
        h.pooler |= n.starts_with("bert.pooler.");
        h.mlm |= n.starts_with("cls.predictions.");
        h.nsp |= n.starts_with("cls.seq_relationship.");
    }
    h
}

/// Which head a variable belongs to, if any.
fn head_of(name: &str) -> Option<fn(Heads) -> bool> {
    if name.starts_with("bert.pooler.") {
        Some(|h| h.pooler)
    } else if name.starts_with("cls.predictions.") {
        Some(|h| h.mlm)
    } else if name.starts_with("cls.seq_relationship.") {
        Some(|h| h.nsp)
    } else {
        None
    }
}

/// A folder's tensors under their canonical (VarStore) names.
/// Compares config.json with the shapes in the weights before anything is allocated, so a
/// wrong config (an absurd vocab_size, a layer too many) names its field instead of
/// allocating a model the weights cannot fill.
fn check_shapes(
    dir: &Path,
    config: &BertConfig,
    tensors: &BTreeMap<String, (String, PathBuf, Tensor)>,
) -> Result<()> {
    let cfg = dir.join("config.json");
    let h = config.hidden_size;
    for (name, field, rows) in [
        (
            "bert.embeddings.word_embeddings.weight",
            "vocab_size",
            config.vocab_size,
        ),
        (
            "bert.embeddings.position_embeddings.weight",
            "max_position_embeddings",
            config.max_position_embeddings,
        ),
        (
            "bert.embeddings.token_type_embeddings.weight",
            "type_vocab_size",
            config.type_vocab_size,
        ),
    ] {
        if let Some((orig, file, t)) = tensors.get(name) {
            let want = [rows, h];
            if t.size() != want {
                return Err(Error::checkpoint(
                    &cfg,
                    format!(
                        "{field} {rows} and hidden_size {h} give {name} the shape {want:?}, but {} holds {orig} as {:?}",
                        file.display(),
                        t.size()
                    ),
                ));
            }
        }
    }
    let layers = tensors
        .keys()
        .filter_map(|k| k.strip_prefix("bert.encoder.layer."))
        .filter_map(|k| k.split('.').next()?.parse::<i64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    if layers > 0 && layers < config.num_hidden_layers {
        return Err(Error::checkpoint(
            &cfg,
            format!(
                "num_hidden_layers {} but the weights hold {layers} layers",
                config.num_hidden_layers
            ),
        ));
    }
    Ok(())
}

struct Canonical {
    files: Vec<PathBuf>,
    /// canonical name → (name in the file, file, tensor)
    tensors: BTreeMap<String, (String, PathBuf, Tensor)>,
    notes: Vec<String>,
    dtypes: BTreeSet<String>,
    /// canonical name → the int8 weight as stored (int8 checkpoints only)
    int8: BTreeMap<String, Int8Weight>,
}

fn read_canonical(dir: &Path) -> Result<Canonical> {
    let files = weight_files(dir)?;
    let mut tensors: BTreeMap<String, (String, PathBuf, Tensor)> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut dtypes = BTreeSet::new();
    let mut int8 = BTreeMap::new();
    for file in &files {
        let (weights, quantised) = read_weights(file)?;
        for (name, q) in quantised {
            if let Some(c) = canonical(&name) {
                dtypes.insert("I8".to_string());
                int8.insert(c, q);
            }
        }
        for (name, t) in weights {
            match canonical(&name) {
                None => notes.push(format!("{name}: buffer, rebuilt")),
                Some(c) => {
                    dtypes.insert(kind_name(t.kind()));
                    if let Some((first, _, _)) = tensors.get(&c) {
                        notes.push(format!("{name}: same parameter as {first}, ignored"));
                    } else {
                        tensors.insert(c, (name, file.clone(), t));
                    }
                }
            }
        }
    }
    Ok(Canonical {
        files,
        tensors,
        notes,
        dtypes,
        int8,
    })
}

/// Copies checkpoint tensor `t` (named `orig` in `file`) into `var`: same shape, a
/// floating-point kind, finite values, or an error naming the tensor.
fn copy_checked(orig: &str, file: &Path, t: &Tensor, var: &Tensor) -> Result<()> {
    if t.size() != var.size() {
        return Err(Error::checkpoint(
            file,
            format!(
                "tensor {orig}: shape {:?} in the checkpoint, the model (from config.json) expects {:?}",
                t.size(),
                var.size()
            ),
        ));
    }
    if !t.is_floating_point() {
        return Err(Error::checkpoint(
            file,
            format!("tensor {orig}: {:?} is not a floating-point kind", t.kind()),
        ));
    }
    if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
        return Err(Error::checkpoint(
            file,
            format!("tensor {orig}: holds NaN or infinite values"),
        ));
    }
    tch::no_grad(|| var.shallow_clone().f_copy_(t))
        .map_err(|e| Error::checkpoint(file, format!("tensor {orig}: {e}")))
}

/// The checkpoint's tensors the model has no variable for: a tied decoder (noted), BERT
/// names (an error listing them) or others (noted, ignored).
fn check_unexpected(
    dir: &Path,
    tensors: &BTreeMap<String, (String, PathBuf, Tensor)>,
    vars: &BTreeMap<String, Tensor>,
    word: &Tensor,
    tied: bool,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut unexpected = Vec::new();
    for (name, (orig, _, t)) in tensors {
        if vars.contains_key(name) {
            continue;
        }
        if name == "cls.predictions.decoder.weight" && tied {
            let same = t.size() == word.size()
                && t.to_kind(Kind::Float).equal(&word.to_device(Device::Cpu));
            notes.push(if same {
                format!("{orig}: tied to the word embeddings, equal, ignored")
            } else {
                format!("{orig}: differs from the word embeddings but tie_word_embeddings is true; the word embeddings are used")
            });
        } else if name.starts_with("bert.") || name.starts_with("cls.") {
            unexpected.push(orig.clone());
        } else {
            notes.push(format!("{orig}: not part of BERT pretraining, ignored"));
        }
    }
    if !unexpected.is_empty() {
        return Err(Error::checkpoint(
            dir,
            format!("unexpected tensors: {}", unexpected.join(", ")),
        ));
    }
    Ok(())
}

/// Packs every encoder dense layer whose weight the checkpoint stores as int8; says how
/// many, or nothing when the checkpoint has none.
fn pack_int8(
    dir: &Path,
    bert: &Bert,
    vars: &BTreeMap<String, Tensor>,
    int8: &BTreeMap<String, Int8Weight>,
) -> Result<Option<String>> {
    if int8.is_empty() {
        return Ok(None);
    }
    let names: std::collections::HashMap<usize, &String> = vars
        .iter()
        .map(|(n, t)| (t.data_ptr() as usize, n))
        .collect();
    let mut packed = 0;
    for linear in bert.encoder_linears() {
        let Some(name) = names.get(&(linear.ws.data_ptr() as usize)) else {
            continue;
        };
        let Some(q) = int8.get(*name) else { continue };
        let bias = linear.bs.as_ref().map(|b| b.detach());
        super::qlinear::QLinear::new(&q.qweight, &q.qscale, bias.as_ref())
            .and_then(|p| linear.pack_int8(p))
            .map_err(|e| Error::checkpoint(dir, format!("tensor {name}: int8 kernels: {e}")))?;
        packed += 1;
    }
    Ok(Some(format!(
        "{packed} of {} encoder dense layers run through libtorch's dynamic int8 kernels (engine {})",
        bert.encoder_linears().len(),
        super::qlinear::engine()
    )))
}

/// Loads an HF checkpoint folder (`config.json` plus `model.safetensors`, a sharded index
/// or `pytorch_model.bin`).
pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Model> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(Error::checkpoint(dir, "checkpoint folder not found"));
    }
    let mut config = BertConfig::from_file(dir.join("config.json"))?;
    let Canonical {
        files,
        tensors,
        mut notes,
        dtypes,
        int8,
    } = read_canonical(dir)?;
    check_shapes(dir, &config, &tensors)?;
    let checkpoint_heads = heads_in(tensors.keys());
    let heads = checkpoint_heads.union(opts.heads);
    let untie = opts.untie_decoder && heads.mlm && !checkpoint_heads.mlm;
    if untie {
        config.tie_word_embeddings = false;
    }

    let mut vs = nn::VarStore::new(opts.device);
    let bert = Bert::new(&vs.root(), &config, heads);
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();

    let mut missing = Vec::new();
    let mut initialised = Heads::default();
    for (name, var) in &vars {
        let Some((orig, file, t)) = tensors.get(name) else {
            match head_of(name) {
                Some(has) if !has(checkpoint_heads) => {
                    initialised = initialised.union(heads_in(std::iter::once(name)));
                }
                _ => missing.push(name.clone()),
            }
            continue;
        };
        copy_checked(orig, file, t, var)?;
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::checkpoint(
            dir,
            format!("missing tensors: {}", missing.join(", ")),
        ));
    }

    let word = &bert.embeddings.word_embeddings.ws;
    check_unexpected(
        dir,
        &tensors,
        &vars,
        word,
        config.tie_word_embeddings,
        &mut notes,
    )?;
    if untie {
        let decoder = &vars["cls.predictions.decoder.weight"];
        tch::no_grad(|| decoder.shallow_clone().copy_(word));
        notes.push(
            "cls.predictions.decoder.weight: untied, initialised from the word embeddings".into(),
        );
    }
    if opts.kind != Kind::Float {
        vs.set_kind(opts.kind);
    }
    if opts.int8_kernels && opts.device == Device::Cpu && opts.kind == Kind::Float {
        if let Some(n) = pack_int8(dir, &bert, &vars, &int8)? {
            notes.push(n);
        }
    }
    Ok(Model {
        vs,
        bert,
        report: Some(LoadReport {
            dir: dir.to_path_buf(),
            weights: files,
            checkpoint_heads,
            initialised,
            dtypes,
            notes,
        }),
    })
}

/// `destila init`: a freshly initialised BERT of `config`'s shape (N(0,
/// initializer_range), seeded) with `heads`, written to `out` through the output rules
/// (`crate::output::Folder`).
pub fn init(out: &Path, config: &Path, heads: Heads, seed: i64, force: bool) -> Result<PathBuf> {
    crate::output::Folder::check(out, "init OUT", "init", force, &[config.to_path_buf()])?;
    let cfg = BertConfig::from_file(config)?;
    check_memory(&cfg, config)?;
    let folder =
        crate::output::Folder::claim(out, "init OUT", "init", force, &[config.to_path_buf()])?;
    tch::manual_seed(seed);
    let model = Model::random(&cfg, heads, Device::Cpu);
    match save(&model, &folder.tmp) {
        Ok(()) => folder.commit(),
        Err(e) => {
            folder.abandon();
            Err(e)
        }
    }
}

/// Refuses a shape whose float32 weights (and the copy saving makes) would not fit in the
/// memory this machine has available, before allocating them.
pub fn check_memory(cfg: &BertConfig, path: &Path) -> Result<()> {
    let need = cfg.parameter_estimate() * 4.0 * 2.0;
    let Some(avail) = available_memory() else {
        return Ok(());
    };
    if need > avail as f64 {
        return Err(Error::checkpoint(
            path,
            format!(
                "about {:.1e} parameters ({} layers x {} wide, vocab_size {}): {:.1} GiB to build and save, {:.1} GiB of memory available",
                cfg.parameter_estimate(),
                cfg.num_hidden_layers,
                cfg.hidden_size,
                cfg.vocab_size,
                need / (1u64 << 30) as f64,
                avail as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    Ok(())
}

/// MemAvailable of /proc/meminfo in bytes (None where there is none).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Saves `model.safetensors` (HF names; `bert.` prefix dropped for a headless model, as
/// `BertModel.save_pretrained` does) and `config.json`, each written atomically.
pub fn save(model: &Model, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let heads = model.bert.heads;
    let headless = !heads.mlm && !heads.nsp;
    let mut named: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| {
            let n = match (headless, n.strip_prefix("bert.")) {
                (true, Some(s)) => s.to_string(),
                _ => n,
            };
            (n, t.detach().to_device(Device::Cpu).contiguous())
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let weights = dir.join("model.safetensors");
    write_atomic(&weights, |tmp| {
        Tensor::write_safetensors(&named, tmp).map_err(|e| Error::checkpoint(tmp, e.to_string()))
    })?;
    let config = model.bert.config.to_json(heads.architecture());
    let text = serde_json::to_string_pretty(&config).expect("JSON serialises");
    write_atomic(dir.join("config.json"), |tmp| {
        std::fs::write(tmp, text + "\n").map_err(|e| Error::io(tmp, e))
    })
}

/// Copies a saved folder's weights into `model`'s variables (same architecture), by HF
/// name, converting the kind; every variable must be found with its shape.
pub fn restore(model: &Model, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let tensors = read_canonical(dir)?.tensors;
    for (name, var) in model.vs.variables() {
        let (_, _, t) = tensors
            .get(&name)
            .ok_or_else(|| Error::checkpoint(dir, format!("missing tensor {name}")))?;
        if t.size() != var.size() {
            return Err(Error::checkpoint(
                dir,
                format!(
                    "tensor {name}: shape {:?}, the model has {:?}",
                    t.size(),
                    var.size()
                ),
            ));
        }
        tch::no_grad(|| var.shallow_clone().f_copy_(t))
            .map_err(|e| Error::checkpoint(dir, format!("tensor {name}: {e}")))?;
    }
    Ok(())
}
