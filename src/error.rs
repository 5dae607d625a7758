//! The library's typed errors: what is wrong with a file ([`FormatError`]), with a
//! parameter ([`ParamError`]), or elsewhere ([`Error`]). `anyhow` stays at the CLI and harness.

/// A `.dfc` file that cannot be decoded. The container, the entropy decoder, the channels and
/// every codec's decoder report these, before any large allocation or model work where they can.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    #[error("not a .dfc file (bad magic)")]
    BadMagic,
    #[error("unsupported .dfc format version {found} (this diffc reads version {supported})")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("corrupt or truncated .dfc file (checksum mismatch)")]
    Checksum,
    #[error("truncated .dfc file ({0})")]
    Truncated(&'static str),
    #[error("unknown codec id {0} in file")]
    UnknownCodec(u8),
    #[error("this is a {found} file, not a {expected} file")]
    WrongCodec {
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "wrong model: the file was encoded with {what} fingerprint {file_fp:04x}, but '{name}' has {model_fp:04x}"
    )]
    WrongModel {
        what: &'static str,
        file_fp: u64,
        name: String,
        model_fp: u64,
    },
    #[error("wrong model: the file's trajectory is in {file}, but '{name}' works in {model}")]
    WrongSpace {
        file: String,
        name: String,
        model: String,
    },
    #[error("image size {width}×{height} in header exceeds the limit ({limit})")]
    TooLarge {
        width: u64,
        height: u64,
        limit: String,
    },
    #[error("corrupt .dfc file: {field}: {detail}")]
    Corrupt { field: &'static str, detail: String },
    /// A legal file that asks for more than the decoder's limits allow (a decompression bomb,
    /// or a genuinely large image): refused before any large allocation or model work.
    #[error("{what} {value} exceeds the decode limit of {limit} {unit} (--max-pixels raises it)")]
    OverLimit {
        /// What the file declares (`image size 8000×8000 =`, …).
        what: String,
        value: u64,
        limit: u64,
        unit: &'static str,
    },
}

impl FormatError {
    /// A field whose value the format does not allow.
    pub fn corrupt(field: &'static str, detail: impl std::fmt::Display) -> Self {
        FormatError::Corrupt {
            field,
            detail: detail.to_string(),
        }
    }
}

/// A parameter outside the range the format and the codec allow; the message states the range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be {allowed}, got {value}")]
pub struct ParamError {
    pub name: &'static str,
    pub allowed: &'static str,
    pub value: String,
}

impl ParamError {
    pub fn new(name: &'static str, allowed: &'static str, value: impl std::fmt::Display) -> Self {
        ParamError {
            name,
            allowed,
            value: value.to_string(),
        }
    }
}

/// Any failure of the library's codecs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A request this build or codec cannot serve (a device the build lacks, a rate target
    /// a codec does not take, an unknown codec or model name).
    #[error("{0}")]
    Unsupported(String),
    /// A network, weight file or image failed (its own error, with context).
    #[error("{0:#}")]
    Model(anyhow::Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<anyhow::Error> for Error {
    /// Keeps a typed error that travelled through an `anyhow` layer (the denoisers) typed.
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<FormatError>() {
            Ok(f) => Error::Format(f),
            Err(e) => match e.downcast::<ParamError>() {
                Ok(p) => Error::Param(p),
                Err(e) => match e.downcast::<Error>() {
                    Ok(inner) => inner,
                    Err(e) => Error::Model(e),
                },
            },
        }
    }
}

impl Error {
    /// The format error inside, if that is what this is.
    pub fn format(&self) -> Option<&FormatError> {
        match self {
            Error::Format(f) => Some(f),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
