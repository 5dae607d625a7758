//! Typed errors of the SD loader.
use candle_core::DType;
use std::fmt;
use std::path::PathBuf;

/// A part of a diffusers Stable Diffusion folder (its subfolder name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Unet,
    Vae,
    TextEncoder,
    Scheduler,
}

impl Component {
    /// The subfolder name in a diffusers folder.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Unet => "unet",
            Self::Vae => "vae",
            Self::TextEncoder => "text_encoder",
            Self::Scheduler => "scheduler",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// What an unsupported configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// SDXL's added text/time embeddings (`addition_embed_type`, `addition_time_embed_dim`,
    /// `projection_class_embeddings_input_dim`).
    Sdxl,
    /// Class-conditional U-Nets (`class_embed_type`, `num_class_embeds`).
    ClassEmbeddings,
    /// Inpainting U-Nets (`in_channels = 9`: latent, mask, masked-image latent).
    Inpainting,
    /// Any other configuration value outside SD 1.x / 2.x (the detail names it).
    Config,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sdxl => "SDXL (added text/time embeddings)",
            Self::ClassEmbeddings => "class embeddings",
            Self::Inpainting => "inpainting U-Net (in_channels 9)",
            Self::Config => "configuration",
        })
    }
}

/// Everything that can go wrong loading a diffusers Stable Diffusion folder. Never a panic.
#[derive(Debug, thiserror::Error)]
pub enum SdError {
    #[error(
        "{path}: a single file, not a diffusers folder; single-file LDM/SD checkpoints \
         (.ckpt / .safetensors) are not supported: convert it once with diffusers \
         (`StableDiffusionPipeline.from_single_file(FILE).save_pretrained(DIR)`) and pass DIR"
    )]
    SingleFileCheckpoint { path: PathBuf },
    #[error(
        "{path}: not a diffusers Stable Diffusion folder (no unet/config.json){}",
        if single_files.is_empty() { String::new() } else {
            format!("; it holds {}, which looks like a single-file checkpoint (not supported: \
                     convert it with diffusers' from_single_file + save_pretrained)",
                    single_files.join(", "))
        }
    )]
    NotDiffusersFolder {
        path: PathBuf,
        /// `.ckpt` / `.safetensors` files found at the top of the folder.
        single_files: Vec<String>,
    },
    #[error("{component}: missing {what} ({path})")]
    MissingFile {
        component: Component,
        path: PathBuf,
        what: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: bad config: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("{component}: unsupported {feature}: {detail}")]
    Unsupported {
        component: Component,
        feature: Feature,
        detail: String,
    },
    #[error(
        "{path}: truncated safetensors file: {actual_len} bytes, its header describes \
         {expected_len}"
    )]
    TruncatedSafetensors {
        path: PathBuf,
        expected_len: u64,
        actual_len: u64,
    },
    #[error("{path}: not a valid safetensors file: {reason}")]
    BadSafetensors { path: PathBuf, reason: String },
    #[error(
        "{component}: tensor `{name}` is missing from the weights (the architecture needs shape {expected:?})"
    )]
    MissingTensor {
        component: Component,
        name: String,
        expected: Vec<usize>,
    },
    #[error(
        "{component}: tensor `{name}` has shape {found:?} in the weights, the architecture needs {expected:?}"
    )]
    WrongShape {
        component: Component,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "{component}: {count} tensor(s) in the weights are not used by the architecture \
         (a different model or config?), e.g. {}",
        names.join(", ")
    )]
    UnusedTensors {
        component: Component,
        count: usize,
        /// Up to five of them, sorted.
        names: Vec<String>,
    },
    #[error("unsupported dtype {dtype:?} for the SD networks: {why}")]
    UnsupportedDType { dtype: DType, why: &'static str },
    #[error(transparent)]
    LatentSize(#[from] super::unet::LatentSizeError),
    #[error("{component}: {source}")]
    Candle {
        component: Component,
        #[source]
        source: candle_core::Error,
    },
}
