//! diffc: diffusion-based realism image codecs.
//!
//! Data flows one way: `cli` → `eval` → `codec` → `sampler` → {`denoiser`, `channel`} → leaves
//! (`rng`, `schedule`, `entropy`, `container`, `image_io`, `interrupt`, `nn`, `metrics`).

// `!(x > 0.0)` is how this crate refuses NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod channel;
pub mod checkpoints;
pub mod cli;
pub mod codec;
pub mod container;
pub mod denoiser;
pub mod device;
pub mod diffusion;
pub mod entropy;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod image_io;
pub mod interrupt;
pub mod metrics;
pub mod nn;
pub mod progress;
pub mod rng;
pub mod sampler;
pub mod schedule;

/// Leaves import nothing of ours but other leaves, so data flows one way
/// (cli → eval → codec → sampler → {denoiser, channel} → leaves).
#[cfg(test)]
mod layering {
    /// The leaf modules (a folder stands for every file in it).
    const LEAVES: &[&str] = &[
        "checkpoints",
        "container",
        "device",
        "diffusion",
        "entropy",
        "error",
        "image_io",
        "interrupt",
        "metrics",
        "nn",
        "progress",
        "rng",
        "schedule",
    ];

    fn leaf_sources() -> Vec<(String, String)> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut out = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
                let top = rel.split(['/', '.']).next().unwrap().to_string();
                if LEAVES.contains(&top.as_str()) && rel.ends_with(".rs") {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out
    }

    /// The top-level modules a source file names as `crate::X` (in `use` lists too).
    fn crate_refs(src: &str) -> Vec<String> {
        let mut refs = Vec::new();
        for (i, _) in src.match_indices("crate::") {
            let rest = &src[i + 7..];
            if rest.starts_with('{') {
                let inner = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for part in inner.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    refs.push(name);
                }
            } else {
                refs.push(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
        refs
    }

    #[test]
    fn leaves_import_only_leaves() {
        let files = leaf_sources();
        assert!(
            files.len() >= LEAVES.len(),
            "found {} leaf files",
            files.len()
        );
        for (file, src) in files {
            for r in crate_refs(&src) {
                assert!(
                    LEAVES.contains(&r.as_str()),
                    "leaf src/{file} imports crate::{r}, which is not a leaf"
                );
            }
        }
    }

    #[test]
    fn the_check_sees_an_upward_import() {
        let bad = "use crate::codec::diffc::DiffC;\nuse crate::{rng, sampler::x};";
        let refs = crate_refs(bad);
        assert_eq!(refs, ["codec", "rng", "sampler"]);
        assert!(refs.iter().any(|r| !LEAVES.contains(&r.as_str())));
    }
}
