//! Embeds the shipped checkpoints (`checkpoints/*.safetensors`, `*.json`) in the binary, so a
//! `cargo install`ed or copied `diffc` has its default models wherever it runs.
use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.is_file()
            && p.extension()
                .is_some_and(|e| e == "safetensors" || e == "json")
    });
    files.sort();
    let mut src = String::from("/// (file name, contents) of every shipped checkpoint file.\n");
    src.push_str("pub static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for p in &files {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().unwrap().to_string_lossy();
        writeln!(
            src,
            "    ({name:?}, include_bytes!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    src.push_str("];\n");
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_checkpoints.rs");
    std::fs::write(out, src).unwrap();
}
