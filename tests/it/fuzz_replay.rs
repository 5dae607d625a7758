//! Replays every committed fuzz input (issue 17): the crash inputs the fuzzer found
//! (`tests/fixtures/fuzz/TARGET/`) and its seed corpora (`fuzz/seeds/TARGET/`), through the
//! same library entry points as the fuzz targets (`diffc::codec::fuzz`). None may panic;
//! a damaged seed (truncated, or with a byte flipped without repairing its CRC) must be an
//! error, and the seeds themselves must decode.
use diffc::codec::fuzz;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir/TARGET/` per target (empty when there are none).
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    for t in fuzz::TARGETS {
        if let Ok(rd) = std::fs::read_dir(dir.join(t)) {
            for e in rd.flatten() {
                if e.path().is_file() {
                    v.push((t.to_string(), e.path()));
                }
            }
        }
    }
    v.sort();
    v
}

fn run(target: &str, data: &[u8], what: &str) -> bool {
    match catch_unwind(AssertUnwindSafe(|| fuzz::run(target, data))) {
        Ok(Some(ok)) => ok,
        Ok(None) => panic!("unknown target {target}"),
        Err(_) => panic!("{what}: target {target} panicked"),
    }
}

#[test]
fn committed_crash_inputs_do_not_panic() {
    let found = inputs(&root().join("tests/fixtures/fuzz"));
    for (t, p) in &found {
        let data = std::fs::read(p).unwrap();
        run(t, &data, &p.display().to_string());
    }
    eprintln!("replayed {} crash inputs", found.len());
}

#[test]
fn seeds_decode_and_their_damage_is_an_error() {
    let seeds = inputs(&root().join("fuzz/seeds"));
    for t in fuzz::TARGETS {
        assert!(
            seeds.iter().any(|(s, _)| s == t),
            "no seed for target {t} under fuzz/seeds/{t}/"
        );
    }
    for (t, p) in &seeds {
        let what = p.display().to_string();
        let data = std::fs::read(p).unwrap();
        assert!(run(t, &data, &what), "{what}: the seed does not decode");
        // cut short: a truncated file is an error for the parser and the repairing targets alike
        // (the repaired CRC then covers bytes the body no longer has, or the header is cut)
        for n in [0, 1, 5, 11] {
            let cut = &data[..n.min(data.len())];
            assert!(!run(t, cut, &what), "{what}: cut to {n} bytes decodes");
        }
        // a flipped byte: the plain parser's CRC refuses it
        if t == "container" || t == "info" {
            for i in (0..data.len()).step_by(3) {
                let mut d = data.clone();
                d[i] ^= 0x5a;
                assert!(!run(t, &d, &what), "{what}: byte {i} flipped is accepted");
            }
        } else {
            // the repairing targets accept flips in the header they repair, and must never
            // panic on one in the body
            for i in (0..data.len()).step_by(7) {
                let mut d = data.clone();
                d[i] ^= 0x5a;
                run(t, &d, &what);
            }
        }
    }
    eprintln!("replayed {} seeds", seeds.len());
}
