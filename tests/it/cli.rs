//! The `diffc` binary as users and scripts call it: round trips through files and pipes,
//! and clear errors (non-zero exit, no output file) for bad input.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_diffc"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Writes a small RGB PNG of odd size with smooth content.
fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) * 3 % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn encode_decode_info_round_trip_on_an_odd_sized_image() {
    let (png, dfc, out) = (tmp("a.png"), tmp("a.dfc"), tmp("a_out.png"));
    write_png(&png, 37, 23);
    let o = run(bin().args([
        "encode",
        png.to_str().unwrap(),
        "-o",
        dfc.to_str().unwrap(),
        "--bpp",
        "1.0",
        "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let size = std::fs::metadata(&dfc).unwrap().len();
    assert!(size * 8 <= 37 * 23, "file of {size} bytes exceeds 1 bpp");
    for dec in ["sde", "ode"] {
        let o = run(bin().args([
            "decode",
            dfc.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--decoder",
            dec,
            "--steps",
            "4",
            "-q",
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (37, 23));
    }
    let o = run(bin().args(["info", dfc.to_str().unwrap(), "--json"]));
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["width"], 37);
    assert_eq!(v["height"], 23);
    assert_eq!(v["model"], diffc::denoiser::DEFAULT_MODEL);
    assert_eq!(v["bytes"].as_u64().unwrap(), size);
}

#[test]
fn stdin_and_stdout_pipes() {
    let png = tmp("p.png");
    write_png(&png, 16, 9);
    let mut enc = bin()
        .args(["encode", "-", "-o", "-", "--stop", "step:6", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    enc.stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&png).unwrap())
        .unwrap();
    let dfc = enc.wait_with_output().unwrap();
    assert!(dfc.status.success());
    let mut dec = bin()
        .args(["decode", "-", "-o", "-", "--steps", "3", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    dec.stdin.take().unwrap().write_all(&dfc.stdout).unwrap();
    let png_out = dec.wait_with_output().unwrap();
    assert!(png_out.status.success());
    let img = image::load_from_memory(&png_out.stdout).unwrap();
    assert_eq!((img.width(), img.height()), (16, 9));
}

/// Fails with a message containing `needle`, exit code 1, and leaves no output file.
fn assert_fails(args: &[&str], out: &Path, needle: &str) {
    let _ = std::fs::remove_file(out);
    let o = run(bin().args(args));
    assert_eq!(o.status.code(), Some(1), "args {args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(needle),
        "args {args:?}: expected '{needle}' in: {e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    assert!(!out.exists(), "a failed command left {}", out.display());
}

#[test]
fn bad_input_gives_clear_errors_and_no_output() {
    let (png, dfc, out) = (tmp("b.png"), tmp("b.dfc"), tmp("b_out.png"));
    write_png(&png, 20, 12);
    let o = run(bin().args([
        "encode",
        png.to_str().unwrap(),
        "-o",
        dfc.to_str().unwrap(),
        "--bpp",
        "2",
        "-q",
    ]));
    assert!(o.status.success());
    let good = std::fs::read(&dfc).unwrap();
    let (p, d, x) = (
        png.to_str().unwrap(),
        dfc.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let bad = tmp("bad.dfc");
    let b = bad.to_str().unwrap();

    // truncated and corrupted files
    std::fs::write(&bad, &good[..good.len() - 3]).unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "corrupt or truncated");
    let mut c = good.clone();
    let mid = c.len() / 2;
    c[mid] ^= 0x40;
    std::fs::write(&bad, &c).unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "checksum");
    std::fs::write(&bad, b"hello world, not a dfc").unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "bad magic");
    // unknown version
    let mut v = good.clone();
    v[2] = (9 << 4) | (v[2] & 15);
    std::fs::write(&bad, &v).unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "version");
    // a model nobody has (fingerprint changed, checksum fixed)
    let mut m = good[..good.len() - 4].to_vec();
    m[3] ^= 0x5a;
    let crc = crc32fast::hash(&m);
    m.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&bad, &m).unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "fingerprint");
    // absurd image size in a valid-checksum header
    let mut h = vec![
        b'D',
        b'F',
        diffc::container::VERSION << 4,
        good[3],
        good[4],
        good[5],
    ];
    diffc::container::put_varint(&mut h, 1 << 30);
    diffc::container::put_varint(&mut h, 10);
    h.extend_from_slice(&[0, 0, 0, 0]);
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&bad, &h).unwrap();
    assert_fails(&["decode", b, "-o", x, "-q"], &out, "exceeds the limit");
    // an explicitly wrong model
    assert_fails(
        &["decode", d, "-o", x, "--model", "no-such-model", "-q"],
        &out,
        "unknown model",
    );

    // unreadable, transparent and missing images; missing or absurd rates
    let junk = tmp("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let enc_out = tmp("never.dfc");
    assert_fails(
        &[
            "encode",
            junk.to_str().unwrap(),
            "-o",
            enc_out.to_str().unwrap(),
            "--bpp",
            "1",
            "-q",
        ],
        &enc_out,
        "decoding image",
    );
    let alpha = tmp("alpha.png");
    image::RgbaImage::from_fn(8, 8, |x, _| image::Rgba([9, 9, 9, (x * 30) as u8]))
        .save(&alpha)
        .unwrap();
    assert_fails(
        &[
            "encode",
            alpha.to_str().unwrap(),
            "-o",
            enc_out.to_str().unwrap(),
            "--bpp",
            "1",
            "-q",
        ],
        &enc_out,
        "transparency",
    );
    assert_fails(
        &[
            "encode",
            "/nonexistent.png",
            "-o",
            enc_out.to_str().unwrap(),
            "--bpp",
            "1",
            "-q",
        ],
        &enc_out,
        "reading",
    );
    assert_fails(
        &["encode", p, "-o", enc_out.to_str().unwrap(), "-q"],
        &enc_out,
        "give a rate",
    );
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            enc_out.to_str().unwrap(),
            "--bpp=-3",
            "-q",
        ],
        &enc_out,
        "positive",
    );
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            enc_out.to_str().unwrap(),
            "--bpp",
            "0.0001",
            "-q",
        ],
        &enc_out,
        "header",
    );
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            enc_out.to_str().unwrap(),
            "--stop",
            "later",
            "-q",
        ],
        &enc_out,
        "bad step",
    );

    // grayscale and 16-bit inputs are converted, not refused
    let gray = tmp("gray.png");
    image::GrayImage::from_fn(9, 7, |x, y| image::Luma([(x * y) as u8]))
        .save(&gray)
        .unwrap();
    let o = run(bin().args([
        "encode",
        gray.to_str().unwrap(),
        "-o",
        enc_out.to_str().unwrap(),
        "--bpp",
        "2",
        "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let deep = tmp("deep.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(9, 7, |x, _| {
        image::Rgb([x as u16 * 7000, 100, 60000])
    })
    .save(&deep)
    .unwrap();
    let o = run(bin().args([
        "encode",
        deep.to_str().unwrap(),
        "-o",
        enc_out.to_str().unwrap(),
        "--bpp",
        "2",
        "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bench_rcc_reports_both_scorers() {
    let o = run(bin().args([
        "bench",
        "rcc",
        "--json",
        "--log2-work",
        "14",
        "--chunk-dims",
        "16,64",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identical_choices"], true);
    let runs = v["runs"].as_array().unwrap();
    assert!(!runs.is_empty() && runs[0]["threads"] == 1);
    for r in runs {
        assert_eq!(r["scorers"].as_array().unwrap().len(), 4);
        assert!(r["chacha8_bytes_per_second"].as_f64().unwrap() > 0.0);
        assert!(r["normals_per_second_fused"].as_f64().unwrap() > 0.0);
    }
    let o = run(bin().args(["bench", "rcc", "--chunk-dims", "0"]));
    assert!(!o.status.success() && stderr(&o).contains("--chunk-dims"));
}

/// `--codec hfd-mse` and `--codec hfd` through the binary: round trips, `info`, and clear
/// errors for a budget below the model's lowest rate and for a file given the wrong refiner.
#[test]
fn hfd_codecs_round_trip_and_refuse_bad_requests() {
    let (png, dfc, out) = (tmp("h.png"), tmp("h.dfc"), tmp("h_out.png"));
    write_png(&png, 45, 29);
    let (p, d, x) = (
        png.to_str().unwrap(),
        dfc.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    for codec in ["hfd-mse", "hfd"] {
        let o = run(bin().args(["encode", p, "-o", d, "--codec", codec, "--bpp", "3", "-q"]));
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let size = std::fs::metadata(&dfc).unwrap().len();
        assert!(
            size * 8 <= 3 * 45 * 29,
            "{codec}: {size} bytes exceed 3 bpp"
        );
        let o = run(bin().args(["decode", d, "-o", x, "--steps", "2", "-q"]));
        assert!(o.status.success(), "{codec}: {}", stderr(&o));
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (45, 29));
        let o = run(bin().args(["info", d, "--json"]));
        let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(info["codec"], codec);
        assert!(info["rate_code"].is_u64());
    }
    // the hfd file left by the loop names a refiner; photo-unet-s is not one
    assert_fails(
        &["decode", d, "-o", x, "--refiner", "photo-unet-s", "-q"],
        &out,
        "not a conditional refiner",
    );
    let never = tmp("never_h.dfc");
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            never.to_str().unwrap(),
            "--codec",
            "hfd-mse",
            "--bpp",
            "0.001",
            "-q",
        ],
        &never,
        "lowest rate",
    );
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            never.to_str().unwrap(),
            "--codec",
            "hfd-mse",
            "--stop",
            "logsnr:3",
            "-q",
        ],
        &never,
        "takes --bpp",
    );
}

/// An explicit `--chunk-kl` equal to the small-image default is kept on a large image (such
/// an explicit value used to be silently replaced by the large-image default).
#[test]
fn explicit_chunk_size_is_kept_on_large_images() {
    let (png, dfc) = (tmp("big.png"), tmp("big.dfc"));
    write_png(&png, 300, 260);
    let (p, d) = (png.to_str().unwrap(), dfc.to_str().unwrap());
    for (chunk, custom) in [(None, false), (Some("4"), false), (Some("6"), true)] {
        let mut args = vec!["encode", p, "-o", d, "--stop", "step:2", "-q"];
        if let Some(v) = chunk {
            args.extend(["--chunk-kl", v]);
        }
        let o = run(bin().args(&args));
        assert!(o.status.success(), "{}", stderr(&o));
        let info: serde_json::Value =
            serde_json::from_slice(&run(bin().args(["info", d, "--json"])).stdout).unwrap();
        assert_eq!(info["custom_params"], custom, "--chunk-kl {chunk:?}");
    }
}

/// `--device` reaches every command that runs a network: on a build without CUDA each of them
/// refuses `--device cuda` with the clear message, before writing anything.
#[test]
fn a_device_the_build_lacks_is_refused_by_every_command() {
    if cfg!(feature = "cuda") {
        return;
    }
    let (png, dfc, out) = (tmp("dev.png"), tmp("dev.dfc"), tmp("dev_out"));
    write_png(&png, 16, 16);
    let o = run(bin().args([
        "encode",
        png.to_str().unwrap(),
        "-o",
        dfc.to_str().unwrap(),
        "--bpp",
        "1",
        "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let (p, d, x) = (
        png.to_str().unwrap(),
        dfc.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let data = tmp("dev-data");
    std::fs::create_dir_all(&data).unwrap();
    write_png(&data.join("a.png"), 16, 16);
    let never = tmp("dev-never.dfc");
    let n = never.to_str().unwrap();
    for args in [
        vec!["--device", "cuda", "encode", p, "-o", n, "--bpp", "1", "-q"],
        vec!["--device", "cuda", "decode", d, "-o", n, "-q"],
        vec![
            "--device",
            "cuda",
            "eval",
            "--data",
            data.to_str().unwrap(),
            "--codecs",
            "diffc-f@gauss-spectrum",
            "--bpp",
            "1",
            "--features",
            "none",
            "--out",
            x,
        ],
        vec![
            "--device",
            "cuda",
            "experiment",
            "gaussian",
            "--quick",
            "--out",
            x,
        ],
        vec!["--device", "cuda", "bench", "rcc", "--json"],
    ] {
        let path = if args[2] == "eval" || args[2] == "experiment" {
            out.as_path()
        } else {
            never.as_path()
        };
        assert_fails(&args, path, "no CUDA support");
    }
}

/// `encode --codec` takes the same specs as the harness; a file remembers its codec, so
/// `decode` needs no spec.
#[test]
fn encode_takes_codec_specs() {
    let (png, dfc, out) = (tmp("spec.png"), tmp("spec.dfc"), tmp("spec_out.png"));
    write_png(&png, 24, 16);
    let (p, d, x) = (
        png.to_str().unwrap(),
        dfc.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let o = run(bin().args([
        "encode",
        p,
        "-o",
        d,
        "--codec",
        "diffc@gauss-spectrum",
        "--bpp",
        "1",
        "-q",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin().args(["decode", d, "-o", x, "-q"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(bin().args(["info", "--json", d]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "gauss-spectrum");
    let never = tmp("spec-never.dfc");
    let n = never.to_str().unwrap();
    assert_fails(
        &[
            "encode", p, "-o", n, "--codec", "diffc-x", "--bpp", "1", "-q",
        ],
        &never,
        "unknown codec",
    );
    assert_fails(
        &[
            "encode",
            p,
            "-o",
            n,
            "--codec",
            "diffc@gauss-spectrum",
            "--model",
            "photo-unet-s",
            "--bpp",
            "1",
            "-q",
        ],
        &never,
        "contradicts",
    );
    assert_fails(
        &["encode", p, "-o", n, "--padding", "17", "--bpp", "1", "-q"],
        &never,
        "padding must be in 0..=16",
    );
    let o = run(bin().args(["info", "--codecs"]));
    let names = String::from_utf8_lossy(&o.stdout);
    for c in [
        "diffc-f",
        "diffc-a",
        "hfd",
        "hfd-a",
        "hfd-mse",
        "hfd-mse-dither",
    ] {
        assert!(names.lines().any(|l| l == c), "{c} missing from {names}");
    }
}
