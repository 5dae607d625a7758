//! Where checkpoints (weights and model cards) are found, in this order:
//! `$DIFFC_CHECKPOINTS`, the user data directory (`$XDG_DATA_HOME/diffc/checkpoints`, by
//! default `~/.local/share/diffc/checkpoints`), then the shipped checkpoints embedded in the
//! binary at build time (`build.rs`), so an installed or copied binary has its default models.
use std::borrow::Cow;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_checkpoints.rs"));

/// One checkpoint file's bytes and where they came from.
pub struct Checkpoint {
    /// The name it was asked for (file stem).
    pub name: String,
    /// The file it was read from (`None`: embedded in the binary).
    pub path: Option<PathBuf>,
    pub bytes: Cow<'static, [u8]>,
}

impl Checkpoint {
    /// Where it came from, for messages.
    pub fn origin(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => format!("{} (built in)", self.name),
        }
    }
}

/// The folders searched before the built-in checkpoints.
pub fn dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("DIFFC_CHECKPOINTS") {
        v.push(PathBuf::from(d));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")));
    if let Some(d) = data {
        v.push(d.join("diffc").join("checkpoints"));
    }
    v
}

/// The checkpoint file `name.ext` (`ext` = `safetensors` or `json`), or `name` itself when it
/// is the path of an existing `.ext` file. `None` when nothing by that name exists.
pub fn find(name: &str, ext: &str) -> Option<std::io::Result<Checkpoint>> {
    let direct = Path::new(name);
    let read = |p: PathBuf, stem: String| {
        Some(std::fs::read(&p).map(|b| Checkpoint {
            name: stem,
            path: Some(p),
            bytes: Cow::Owned(b),
        }))
    };
    if direct.extension().is_some_and(|e| e == ext) && direct.is_file() {
        let stem = direct
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return read(direct.to_path_buf(), stem);
    }
    let file = format!("{name}.{ext}");
    for d in dirs() {
        let p = d.join(&file);
        if p.is_file() {
            return read(p, name.to_string());
        }
    }
    EMBEDDED.iter().find(|(n, _)| *n == file).map(|(_, b)| {
        Ok(Checkpoint {
            name: name.to_string(),
            path: None,
            bytes: Cow::Borrowed(*b),
        })
    })
}

/// The stems of every `.ext` checkpoint file that [`find`] can see, sorted, without repeats.
pub fn names(ext: &str) -> Vec<String> {
    let mut v: Vec<String> = EMBEDDED
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(&format!(".{ext}")).map(str::to_string))
        .collect();
    for d in dirs() {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if let (true, Some(s)) = (p.extension().is_some_and(|x| x == ext), p.file_stem()) {
                    v.push(s.to_string_lossy().into_owned());
                }
            }
        }
    }
    v.sort();
    v.dedup();
    v
}
