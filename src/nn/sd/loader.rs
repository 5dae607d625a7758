//! Strict loading of a diffusers Stable Diffusion folder.
//!
//! Layout read (what `save_pretrained` writes): `unet/`, `vae/` with `config.json` and
//! `diffusion_pytorch_model[.fp16].safetensors` (or a sharded `…safetensors.index.json` plus
//! its shards), `text_encoder/` with `config.json` and `model[.fp16].safetensors` (or
//! sharded), `scheduler/scheduler_config.json`; `model_index.json` and `tokenizer/` are not
//! needed. The full-precision file is preferred when both variants exist. Pickle `.bin`
//! weights are refused.
//!
//! Strictness: every tensor the architecture asks for must exist with exactly the expected
//! shape ([`SdError::MissingTensor`], [`SdError::WrongShape`]), and afterwards every tensor
//! in the files must have been used ([`SdError::UnusedTensors`]). Headers are validated
//! against the file size before anything is mapped ([`SdError::TruncatedSafetensors`],
//! [`SdError::BadSafetensors`]). Weights are memory-mapped and converted to the requested
//! dtype on the requested device.
//!
//! # Fingerprint (v1)
//!
//! [`SdFolder::fingerprint`] identifies the weights without reading them: FNV-1a 64
//! (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the byte stream
//!
//! ```text
//! field("diffc-sd-fingerprint-v1")
//! for component in [unet, vae, text_encoder, scheduler]:
//!     field(component folder name)
//!     field(canonical JSON of its config file)
//!     for each weight tensor, sorted by its stored name (no tensors for the scheduler):
//!         field(name without the text encoder's `text_model.` prefix)
//!         field(dtype, e.g. "F32") field(shape: u64 LE per dimension)
//!         field(first min(64, n) bytes of its data) field(last min(64, n) bytes)
//! ```
//!
//! where `field(b) = u64 LE length of b ‖ b`, and the canonical JSON has object keys sorted,
//! no whitespace, numbers as serde_json 1.x prints them (integers in decimal, floats in the
//! shortest round-trip form, e.g. `1e-5`, `0.18215`, `1.0`), and drops the top-level
//! bookkeeping keys that `save_pretrained` rewrites (keys starting with `_`,
//! `transformers_version`). So it covers every header fact (names,
//! dtypes, shapes) plus 128 bytes of each tensor (enough to tell fine-tunes of the same
//! architecture apart, which headers alone cannot), costs a few hundred KiB of reads, and
//! does not depend on sharding, file names, header padding, tensor order in the files or
//! the text encoder's key prefix.
//! It does depend on the stored dtype (an fp16 variant is a different fingerprint).
use super::clip::{ClipTextConfig, ClipTextModel};
use super::config::{
    DiffusersSchedulerConfig, DiffusersUNetConfig, DiffusersVaeConfig, Family, PredictionType,
    SchedulerConfig, TransformersClipTextConfig, resolve_clip, resolve_scheduler, resolve_unet,
    resolve_vae,
};
use super::error::{Component, Feature, SdError};
use super::maths::scaled_linear_alphas_cumprod;
use super::unet::{UNet2DConditionModel, UNetConfig};
use super::vae::{AutoencoderKL, VaeConfig};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Token ids the text encoder reads: CLIP's 77.
pub const PROMPT_TOKENS: usize = 77;
/// CLIP start-of-text.
pub const BOS_TOKEN: u32 = 49406;
/// CLIP end-of-text (also SD 1.x's padding).
pub const EOS_TOKEN: u32 = 49407;

/// The empty prompt without a tokenizer: `49406, 49407`, then padding to 77 tokens with
/// `49407` (SD 1.x's CLIP-L tokenizer pads with end-of-text) or `0` (SD 2.x's OpenCLIP
/// tokenizer pads with `!`, id 0).
pub fn empty_prompt_ids(family: Family) -> [u32; PROMPT_TOKENS] {
    let pad = match family {
        Family::Sd1 => EOS_TOKEN,
        Family::Sd2 => 0,
    };
    let mut ids = [pad; PROMPT_TOKENS];
    ids[0] = BOS_TOKEN;
    ids[1] = EOS_TOKEN;
    ids
}

/// One tensor entry of a safetensors header.
#[derive(Debug, Clone)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    begin: u64,
    end: u64,
}

/// A validated safetensors file (header only).
#[derive(Debug, Clone)]
struct WeightFile {
    path: PathBuf,
    tensors: BTreeMap<String, TensorEntry>,
}

fn io_err(path: &Path, source: std::io::Error) -> SdError {
    SdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Reads and validates a safetensors header against the file size (reads only the header).
fn read_safetensors_header(path: &Path) -> Result<WeightFile, SdError> {
    let bad = |reason: String| SdError::BadSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let len = f.metadata().map_err(|e| io_err(path, e))?.len();
    let truncated = |expected_len: u64| SdError::TruncatedSafetensors {
        path: path.to_path_buf(),
        expected_len,
        actual_len: len,
    };
    if len < 8 {
        return Err(truncated(8));
    }
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| io_err(path, e))?;
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return Err(bad(format!("header length {n} is implausible")));
    }
    if 8 + n > len {
        return Err(truncated(8 + n));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| io_err(path, e))?;
    let json: Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    let data_start = 8 + n;
    let mut tensors = BTreeMap::new();
    let mut ranges = Vec::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let entry = || -> Option<(String, Vec<usize>, u64, u64)> {
            let dtype = v.get("dtype")?.as_str()?.to_string();
            let shape = v
                .get("shape")?
                .as_array()?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<_>>>()?;
            let off = v.get("data_offsets")?.as_array()?;
            if off.len() != 2 {
                return None;
            }
            Some((dtype, shape, off[0].as_u64()?, off[1].as_u64()?))
        };
        let (dtype, shape, b, e) =
            entry().ok_or_else(|| bad(format!("malformed header entry for `{name}`")))?;
        let size = dtype_size(&dtype)
            .ok_or_else(|| bad(format!("tensor `{name}` has unknown dtype {dtype}")))?;
        let numel: u64 = shape.iter().map(|&d| d as u64).product();
        if e < b || e - b != numel * size {
            return Err(bad(format!(
                "tensor `{name}`: {} bytes for {dtype} {shape:?}",
                e.wrapping_sub(b)
            )));
        }
        ranges.push((b, e, name.clone()));
        tensors.insert(
            name.clone(),
            TensorEntry {
                dtype,
                shape,
                begin: data_start + b,
                end: data_start + e,
            },
        );
    }
    ranges.sort();
    let mut at = 0u64;
    for (b, e, name) in &ranges {
        if *b != at {
            return Err(bad(format!(
                "tensor `{name}` does not start where the previous one ends"
            )));
        }
        at = *e;
    }
    let expected = data_start + at;
    if expected > len {
        return Err(truncated(expected));
    }
    if expected < len {
        return Err(bad(format!(
            "{} trailing bytes after the last tensor",
            len - expected
        )));
    }
    Ok(WeightFile {
        path: path.to_path_buf(),
        tensors,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(
    component: Component,
    path: &Path,
    what: &str,
) -> Result<(T, Value), SdError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SdError::MissingFile {
                component,
                path: path.to_path_buf(),
                what: what.to_string(),
            });
        }
        Err(e) => return Err(io_err(path, e)),
    };
    let bad = |e: serde_json::Error| SdError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(bad)?;
    let typed = serde_json::from_value(value.clone()).map_err(bad)?;
    Ok((typed, value))
}

/// Locates a component's weight files: `{stem}.safetensors`, its sharded index,
/// `{stem}.fp16.safetensors`, its sharded index, in that order of preference.
fn weight_files(component: Component, dir: &Path, stem: &str) -> Result<Vec<WeightFile>, SdError> {
    for variant in ["", ".fp16"] {
        let single = dir.join(format!("{stem}{variant}.safetensors"));
        if single.is_file() {
            return Ok(vec![read_safetensors_header(&single)?]);
        }
        let index = dir.join(format!("{stem}{variant}.safetensors.index.json"));
        if index.is_file() {
            return sharded(component, dir, &index);
        }
    }
    let bin = dir.join(format!("{stem}.bin"));
    let what = if bin.is_file() {
        format!("{stem}.safetensors (only the pickle {stem}.bin is there, which is not read)")
    } else {
        format!("weights: {stem}[.fp16].safetensors or {stem}[.fp16].safetensors.index.json")
    };
    Err(SdError::MissingFile {
        component,
        path: dir.to_path_buf(),
        what,
    })
}

fn sharded(component: Component, dir: &Path, index: &Path) -> Result<Vec<WeightFile>, SdError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let (idx, _): (Index, _) = read_json(component, index, "sharded weights index")?;
    let bad = |reason: String| SdError::BadConfig {
        path: index.to_path_buf(),
        reason,
    };
    let shards: std::collections::BTreeSet<&String> = idx.weight_map.values().collect();
    let mut files = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for shard in shards {
        if shard.contains('/') || shard.contains('\\') {
            return Err(bad(format!("shard name {shard:?} leaves the folder")));
        }
        let p = dir.join(shard);
        if !p.is_file() {
            return Err(SdError::MissingFile {
                component,
                path: p,
                what: format!("shard listed in {}", index.display()),
            });
        }
        let wf = read_safetensors_header(&p)?;
        for name in wf.tensors.keys() {
            if let Some(other) = seen.insert(name.clone(), shard.clone()) {
                return Err(bad(format!(
                    "tensor `{name}` is in both {other} and {shard}"
                )));
            }
            if idx.weight_map.get(name) != Some(shard) {
                return Err(bad(format!(
                    "tensor `{name}` is in {shard} but the index says otherwise"
                )));
            }
        }
        files.push(wf);
    }
    if let Some(name) = idx.weight_map.keys().find(|k| !seen.contains_key(*k)) {
        return Err(bad(format!(
            "tensor `{name}` is listed but absent from its shard"
        )));
    }
    Ok(files)
}

/// JSON with sorted keys, no whitespace, top-level `_…` and `transformers_version` dropped.
fn canonical_json(v: &Value, top: bool, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m
                .keys()
                .filter(|k| !(top && (k.starts_with('_') || *k == "transformers_version")))
                .collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&m[*k], false, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, false, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }
}

/// A component's weights: validated headers, located files, and the name prefix to strip.
#[derive(Debug, Clone)]
struct ComponentWeights {
    component: Component,
    files: Vec<WeightFile>,
    /// `"text_model."` when the text encoder's keys carry it, else empty.
    prefix: String,
}

impl ComponentWeights {
    fn all_names(&self) -> impl Iterator<Item = (&String, &TensorEntry, &WeightFile)> {
        self.files
            .iter()
            .flat_map(|f| f.tensors.iter().map(move |(n, e)| (n, e, f)))
    }

    fn fingerprint_into(&self, h: &mut Fnv) -> Result<(), SdError> {
        let mut all: Vec<_> = self.all_names().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut open: HashMap<&Path, std::fs::File> = HashMap::new();
        for (name, e, wf) in all {
            // Relative to the text encoder's `text_model.` prefix, so both key styles agree.
            h.field(
                name.strip_prefix(self.prefix.as_str())
                    .unwrap_or(name)
                    .as_bytes(),
            );
            h.field(e.dtype.as_bytes());
            let shape: Vec<u8> = e
                .shape
                .iter()
                .flat_map(|&d| (d as u64).to_le_bytes())
                .collect();
            h.field(&shape);
            let n = (e.end - e.begin).min(64);
            let f = match open.entry(wf.path.as_path()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(std::fs::File::open(&wf.path).map_err(|er| io_err(&wf.path, er))?)
                }
            };
            let mut buf = vec![0u8; n as usize];
            for at in [e.begin, e.end - n] {
                f.seek(SeekFrom::Start(at))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|er| io_err(&wf.path, er))?;
                h.field(&buf);
            }
        }
        Ok(())
    }
}

/// The strict VarBuilder backend: serves tensors by name from memory-mapped files,
/// checking shapes, recording the first problem and every name used.
struct StrictInner {
    component: Component,
    prefix: String,
    st: MmapedSafetensors,
    shapes: HashMap<String, Vec<usize>>,
    used: Mutex<HashSet<String>>,
    issue: Mutex<Option<SdError>>,
}

impl StrictInner {
    fn record(&self, e: SdError) -> candle_core::Error {
        let msg = e.to_string();
        let mut issue = self.issue.lock().unwrap_or_else(|p| p.into_inner());
        if issue.is_none() {
            *issue = Some(e);
        }
        candle_core::Error::Msg(msg)
    }

    fn fetch(&self, full: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(full.to_string());
        self.st.load(full, dev)?.to_dtype(dtype)
    }
}

struct StrictBackend(Arc<StrictInner>);

impl SimpleBackend for StrictBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let inner = &self.0;
        let full = format!("{}{name}", inner.prefix);
        match inner.shapes.get(&full) {
            None => Err(inner.record(SdError::MissingTensor {
                component: inner.component,
                name: full,
                expected: s.dims().to_vec(),
            })),
            Some(found) if found.as_slice() != s.dims() => Err(inner.record(SdError::WrongShape {
                component: inner.component,
                name: full,
                expected: s.dims().to_vec(),
                found: found.clone(),
            })),
            Some(_) => inner.fetch(&full, dtype, dev),
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let inner = &self.0;
        let full = format!("{}{name}", inner.prefix);
        if !inner.shapes.contains_key(&full) {
            return Err(inner.record(SdError::MissingTensor {
                component: inner.component,
                name: full,
                expected: vec![],
            }));
        }
        inner.fetch(&full, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0
            .shapes
            .contains_key(&format!("{}{name}", self.0.prefix))
    }
}

/// Builds a network from a component's weights through the strict backend.
fn build_strict<T>(
    w: &ComponentWeights,
    device: &Device,
    dtype: DType,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<T>,
) -> Result<T, SdError> {
    let paths: Vec<&Path> = w.files.iter().map(|f| f.path.as_path()).collect();
    // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on them
    // not being modified while the map is alive (their headers were just validated).
    let st = unsafe { MmapedSafetensors::multi(&paths) }.map_err(|source| SdError::Candle {
        component: w.component,
        source,
    })?;
    let shapes = w
        .all_names()
        .map(|(n, e, _)| (n.clone(), e.shape.clone()))
        .collect();
    let inner = Arc::new(StrictInner {
        component: w.component,
        prefix: w.prefix.clone(),
        st,
        shapes,
        used: Mutex::new(HashSet::new()),
        issue: Mutex::new(None),
    });
    let vb = VarBuilder::from_backend(
        Box::new(StrictBackend(inner.clone())),
        dtype,
        device.clone(),
    );
    let built = build(vb);
    let issue = inner.issue.lock().unwrap_or_else(|p| p.into_inner()).take();
    let model = match (built, issue) {
        (_, Some(issue)) => return Err(issue),
        (Err(source), None) => {
            return Err(SdError::Candle {
                component: w.component,
                source,
            });
        }
        (Ok(m), None) => m,
    };
    let used = inner.used.lock().unwrap_or_else(|p| p.into_inner());
    let mut unused: Vec<String> = inner
        .shapes
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        unused.sort();
        let count = unused.len();
        unused.truncate(5);
        return Err(SdError::UnusedTensors {
            component: w.component,
            count,
            names: unused,
        });
    }
    Ok(model)
}

/// F32 (the reference), F16, or BF16 on a GPU backend (candle's CPU convolution and matmul
/// have no bf16 kernels, so a CPU bf16 load is refused up front rather than failing later).
fn check_dtype(dtype: DType, device: &Device) -> Result<(), SdError> {
    match dtype {
        DType::F32 | DType::F16 => Ok(()),
        DType::BF16 if !device.is_cpu() => Ok(()),
        DType::BF16 => Err(SdError::UnsupportedDType {
            dtype,
            why: "candle's CPU backend has no bf16 convolution/matmul; use f32 or f16 on CPU",
        }),
        _ => Err(SdError::UnsupportedDType {
            dtype,
            why: "use f32, f16, or bf16 on a GPU",
        }),
    }
}

/// A diffusers SD folder whose configs are parsed and checked, weight headers validated and
/// fingerprint computed; no weights loaded yet.
#[derive(Debug, Clone)]
pub struct SdFolder {
    pub dir: PathBuf,
    pub family: Family,
    pub unet_config: UNetConfig,
    pub vae_config: VaeConfig,
    pub text_config: ClipTextConfig,
    pub scheduler: SchedulerConfig,
    /// `vae/config.json` `scaling_factor` (default 0.18215).
    pub vae_scaling_factor: f64,
    /// See the module doc (v1).
    pub fingerprint: u64,
    unet: ComponentWeights,
    vae: ComponentWeights,
    text: ComponentWeights,
}

impl SdFolder {
    /// Parses and checks everything that does not need the weights' values.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SdError> {
        let dir = dir.as_ref();
        if dir.is_file() {
            return Err(SdError::SingleFileCheckpoint {
                path: dir.to_path_buf(),
            });
        }
        if !dir.is_dir() {
            return Err(SdError::MissingFile {
                component: Component::Unet,
                path: dir.to_path_buf(),
                what: "the diffusers folder itself".into(),
            });
        }
        if !dir.join("unet").join("config.json").is_file() {
            let mut single_files: Vec<String> = std::fs::read_dir(dir)
                .map_err(|e| io_err(dir, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".ckpt") || n.ends_with(".safetensors"))
                .collect();
            single_files.sort();
            return Err(SdError::NotDiffusersFolder {
                path: dir.to_path_buf(),
                single_files,
            });
        }
        let cfg_path = |c: Component, f: &str| dir.join(c.dir_name()).join(f);

        let (unet_raw, unet_json): (DiffusersUNetConfig, _) = read_json(
            Component::Unet,
            &cfg_path(Component::Unet, "config.json"),
            "config.json",
        )?;
        let (unet_config, family) = resolve_unet(&unet_raw)?;
        let (vae_raw, vae_json): (DiffusersVaeConfig, _) = read_json(
            Component::Vae,
            &cfg_path(Component::Vae, "config.json"),
            "config.json",
        )?;
        let (vae_config, vae_scaling_factor) = resolve_vae(&vae_raw)?;
        let (text_raw, text_json): (TransformersClipTextConfig, _) = read_json(
            Component::TextEncoder,
            &cfg_path(Component::TextEncoder, "config.json"),
            "config.json",
        )?;
        let text_config = resolve_clip(&text_raw)?;
        let (sched_raw, sched_json): (DiffusersSchedulerConfig, _) = read_json(
            Component::Scheduler,
            &cfg_path(Component::Scheduler, "scheduler_config.json"),
            "scheduler_config.json",
        )?;
        let scheduler = resolve_scheduler(&sched_raw)?;

        // Cross-component consistency.
        let mismatch = |detail: String| SdError::Unsupported {
            component: Component::Unet,
            feature: Feature::Config,
            detail,
        };
        if unet_config.in_channels != vae_config.latent_channels {
            return Err(mismatch(format!(
                "U-Net in_channels {} ≠ VAE latent_channels {}",
                unet_config.in_channels, vae_config.latent_channels
            )));
        }
        if let Some(l) = unet_config
            .levels
            .iter()
            .find(|l| l.cross_attention_dim != text_config.hidden_size)
        {
            return Err(mismatch(format!(
                "U-Net cross_attention_dim {} ≠ text encoder hidden_size {}",
                l.cross_attention_dim, text_config.hidden_size
            )));
        }

        let unet = ComponentWeights {
            component: Component::Unet,
            files: weight_files(
                Component::Unet,
                &dir.join("unet"),
                "diffusion_pytorch_model",
            )?,
            prefix: String::new(),
        };
        let vae = ComponentWeights {
            component: Component::Vae,
            files: weight_files(Component::Vae, &dir.join("vae"), "diffusion_pytorch_model")?,
            prefix: String::new(),
        };
        let mut text = ComponentWeights {
            component: Component::TextEncoder,
            files: weight_files(Component::TextEncoder, &dir.join("text_encoder"), "model")?,
            prefix: String::new(),
        };
        if text
            .all_names()
            .any(|(n, _, _)| n.starts_with("text_model."))
        {
            text.prefix = "text_model.".into();
        }

        let mut h = Fnv::new();
        h.field(b"diffc-sd-fingerprint-v1");
        for (c, json, weights) in [
            (Component::Unet, &unet_json, Some(&unet)),
            (Component::Vae, &vae_json, Some(&vae)),
            (Component::TextEncoder, &text_json, Some(&text)),
            (Component::Scheduler, &sched_json, None),
        ] {
            h.field(c.dir_name().as_bytes());
            let mut s = String::new();
            canonical_json(json, true, &mut s);
            h.field(s.as_bytes());
            if let Some(w) = weights {
                w.fingerprint_into(&mut h)?;
            }
        }

        Ok(Self {
            dir: dir.to_path_buf(),
            family,
            unet_config,
            vae_config,
            text_config,
            scheduler,
            vae_scaling_factor,
            fingerprint: h.0,
            unet,
            vae,
            text,
        })
    }

    pub fn prediction_type(&self) -> PredictionType {
        self.scheduler.prediction_type
    }

    /// Tensors and parameters per component (unet, vae, text encoder), from the headers; a
    /// successful [`SdFolder::load`] has used every one of them (the loader is strict).
    pub fn tensor_counts(&self) -> [(&'static str, usize, u64); 3] {
        let count = |w: &ComponentWeights| {
            let (mut n, mut p) = (0, 0u64);
            for (_, e, _) in w.all_names() {
                n += 1;
                p += e.shape.iter().product::<usize>() as u64;
            }
            (n, p)
        };
        let [(a, b), (c, d), (e, f)] = [count(&self.unet), count(&self.vae), count(&self.text)];
        [("unet", a, b), ("vae", c, d), ("text_encoder", e, f)]
    }

    /// ᾱ_1 … ᾱ_N (index i holds diffusers' `alphas_cumprod[i]`), computed in f64.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        scaled_linear_alphas_cumprod(
            self.scheduler.beta_start,
            self.scheduler.beta_end,
            self.scheduler.num_train_timesteps,
        )
    }

    pub fn load_unet(
        &self,
        device: &Device,
        dtype: DType,
    ) -> Result<UNet2DConditionModel, SdError> {
        check_dtype(dtype, device)?;
        build_strict(&self.unet, device, dtype, |vb| {
            UNet2DConditionModel::new(vb, &self.unet_config)
        })
    }

    pub fn load_vae(&self, device: &Device, dtype: DType) -> Result<AutoencoderKL, SdError> {
        check_dtype(dtype, device)?;
        build_strict(&self.vae, device, dtype, |vb| {
            AutoencoderKL::new(vb, &self.vae_config)
        })
    }

    pub fn load_text_encoder(
        &self,
        device: &Device,
        dtype: DType,
    ) -> Result<ClipTextModel, SdError> {
        check_dtype(dtype, device)?;
        build_strict(&self.text, device, dtype, |vb| {
            ClipTextModel::new(vb, &self.text_config)
        })
    }

    /// Loads all three networks.
    pub fn load(&self, device: &Device, dtype: DType) -> Result<StableDiffusion, SdError> {
        Ok(StableDiffusion {
            unet: self.load_unet(device, dtype)?,
            vae: self.load_vae(device, dtype)?,
            text_encoder: self.load_text_encoder(device, dtype)?,
            alphas_cumprod: self.alphas_cumprod(),
            vae_scaling_factor: self.vae_scaling_factor,
            prediction_type: self.prediction_type(),
            family: self.family,
            fingerprint: self.fingerprint,
            scheduler: self.scheduler.clone(),
        })
    }
}

/// A loaded SD 1.x / 2.x pipeline: the three networks and the scheduler facts.
#[derive(Debug)]
pub struct StableDiffusion {
    pub unet: UNet2DConditionModel,
    pub vae: AutoencoderKL,
    pub text_encoder: ClipTextModel,
    /// ᾱ table, `alphas_cumprod[i]` = diffusers' `scheduler.alphas_cumprod[i]` (f64).
    pub alphas_cumprod: Vec<f64>,
    /// Latent = `vae.encode(x) · vae_scaling_factor`.
    pub vae_scaling_factor: f64,
    pub prediction_type: PredictionType,
    pub family: Family,
    /// See the [module doc](self).
    pub fingerprint: u64,
    pub scheduler: SchedulerConfig,
}

/// The name the issue uses for the loaded weights.
pub type SdPipelineWeights = StableDiffusion;

impl StableDiffusion {
    /// [`SdFolder::open`] then [`SdFolder::load`]. `dtype`: F32 (the reference), F16, or
    /// BF16 on a GPU.
    pub fn load(dir: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self, SdError> {
        SdFolder::open(dir)?.load(device, dtype)
    }

    pub fn empty_prompt_ids(&self) -> [u32; PROMPT_TOKENS] {
        empty_prompt_ids(self.family)
    }

    /// The text encoder's `last_hidden_state` for the empty prompt, (1, 77, hidden_size),
    /// in the model dtype: the conditioning SD's codec uses (no guidance).
    pub fn encode_empty_prompt(&self) -> Result<Tensor, SdError> {
        let device = self.text_encoder.device().clone();
        let ids = Tensor::from_slice(&self.empty_prompt_ids(), (1, PROMPT_TOKENS), &device)
            .and_then(|ids| self.text_encoder.forward(&ids))
            .map_err(|source| SdError::Candle {
                component: Component::TextEncoder,
                source,
            })?;
        Ok(ids)
    }
}
