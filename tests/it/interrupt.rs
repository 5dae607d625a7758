//! Writes and runs that fail cleanly (issue 17): a command interrupted by SIGINT or SIGTERM
//! leaves neither its output nor a temporary file, whether the signal comes mid-computation or
//! while the output is being written (the `DIFFC_TEST_WRITE_PAUSE_MS` hook holds the write
//! between the finished temporary file and the rename); and `diffc eval` killed mid-run
//! (SIGKILL, then SIGINT) resumes with every row exactly once.
#![cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn write_png(path: &Path, w: u32, h: u32, seed: u32) {
    image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 3 + seed * 31) ^ (x * y / 5);
        image::Rgb([
            (v % 256) as u8,
            ((y * 5 + seed) % 256) as u8,
            ((x + y) * 3 % 256) as u8,
        ])
    })
    .save(path)
    .unwrap();
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// The names in `dir`.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits (up to 300 s) until `cond` holds, panicking with `what` otherwise.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Signals `child` with `sig` (it must still be running) and checks that it died of it.
fn interrupt(mut child: Child, sig: i32, what: &str) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "{what}: finished before the signal"
    );
    signal(&child, sig);
    let st = child.wait().unwrap();
    assert_eq!(st.signal(), Some(sig), "{what}: {st:?}");
}

/// SIGINT in the middle of an encode (the model running): no output, no temporary file.
#[test]
fn sigint_mid_encode_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let png = t.path().join("in.png");
    write_png(&png, 192, 192, 1);
    let out = t.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let child = bin()
        .args(["encode", png.to_str().unwrap(), "-o"])
        .arg(out.join("x.dfc"))
        .args(["--stop", "step:24", "-q"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // a 192×192 encode takes tens of seconds on a CPU; interrupt it after a moment
    std::thread::sleep(Duration::from_millis(1500));
    interrupt(child, libc::SIGINT, "encode");
    assert_eq!(listing(&out), Vec::<String>::new());
}

/// A signal while the output is being written (temporary file complete, not yet renamed):
/// the temporary file is removed and no output appears, for each command that writes.
#[test]
fn a_signal_during_the_write_removes_the_temporary_file() {
    let t = tempfile::tempdir().unwrap();
    let png = t.path().join("in.png");
    write_png(&png, 24, 16, 2);
    let dfc = t.path().join("in.dfc");
    let o = bin()
        .args(["encode", png.to_str().unwrap(), "-o", dfc.to_str().unwrap()])
        .args(["--model", "gauss-spectrum", "--stop", "step:8", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cases: [(&str, Vec<&str>, i32); 4] = [
        (
            "encode",
            vec![
                "encode",
                png.to_str().unwrap(),
                "--model",
                "gauss-spectrum",
                "--stop",
                "step:8",
            ],
            libc::SIGINT,
        ),
        (
            "decode",
            vec!["decode", dfc.to_str().unwrap(), "--steps", "2"],
            libc::SIGINT,
        ),
        (
            "decode",
            vec!["decode", dfc.to_str().unwrap(), "--steps", "2"],
            libc::SIGTERM,
        ),
        (
            "truncate",
            vec!["truncate", dfc.to_str().unwrap(), "--stop", "step:3"],
            libc::SIGINT,
        ),
    ];
    for (what, args, sig) in cases {
        let out = t.path().join(format!("out-{what}-{sig}"));
        std::fs::create_dir(&out).unwrap();
        let child = bin()
            .args(&args)
            .arg("-o")
            .arg(out.join("result"))
            .arg("-q")
            .env("DIFFC_TEST_WRITE_PAUSE_MS", "600000")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // the temporary file appears (complete) and the write pauses before the rename
        wait_for(&format!("{what}'s temporary file"), || {
            !listing(&out).is_empty()
        });
        assert!(
            !out.join("result").exists(),
            "{what}: renamed before the pause"
        );
        interrupt(child, sig, what);
        assert_eq!(listing(&out), Vec::<String>::new(), "{what} left files");
    }
}

/// The rows of a results.csv as raw lines (header excluded).
fn csv_lines(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    s.lines().skip(1).map(str::to_string).collect()
}

fn row_keys(lines: &[String]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// `diffc eval` killed mid-run by SIGKILL, resumed and interrupted by SIGINT, then resumed to
/// the end: every image × target row exactly once, and the rows finished before each kill
/// kept verbatim (not recomputed).
#[test]
fn eval_killed_mid_run_resumes_with_each_row_once() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let n_images = 6;
    for k in 0..n_images {
        write_png(&data.join(format!("img{k}.png")), 64, 64, k);
    }
    let out = t.path().join("out");
    let bpp = ["0.5", "1"];
    let total = n_images as usize * bpp.len();
    let eval = || {
        bin()
            .args([
                "eval",
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args([
                "--codecs",
                "diffc-f@gauss-spectrum",
                "--bpp",
                &bpp.join(","),
            ])
            .args(["--features", "none", "--jobs", "1", "-q"])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let csv = out.join("results.csv");
    let mut kept: Vec<String> = Vec::new();
    for (sig, name) in [(libc::SIGKILL, "SIGKILL"), (libc::SIGINT, "SIGINT")] {
        let before = csv_lines(&csv).len();
        let child = eval();
        wait_for(&format!("a new row before the {name}"), || {
            csv_lines(&csv).len() > before
        });
        interrupt(child, sig, &format!("eval ({name})"));
        let lines = csv_lines(&csv);
        assert!(lines.len() < total, "{name}: the run was not cut short");
        for l in &kept {
            assert!(lines.contains(l), "{name}: row {l} was lost or recomputed");
        }
        if sig == libc::SIGINT {
            let stray: Vec<String> = listing(&out)
                .into_iter()
                .filter(|n| n.starts_with(".tmp"))
                .collect();
            assert!(stray.is_empty(), "SIGINT left {stray:?}");
        }
        kept = lines;
    }
    let o = eval().wait().unwrap();
    assert!(o.success(), "the resumed eval failed");
    let lines = csv_lines(&csv);
    let mut keys = row_keys(&lines);
    assert_eq!(keys.len(), total, "{lines:#?}");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "duplicated rows: {lines:#?}");
    for l in &kept {
        assert!(lines.contains(l), "row {l} was lost or recomputed");
    }
    let rows = diffc::eval::read_rows(&csv).unwrap();
    assert_eq!(rows.len(), total);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary.is_object());
}
