//! The Stable Diffusion networks and loader (`diffc::nn::sd`) reproduce diffusers 0.42.1 /
//! transformers 5.24.0 on tiny random-weight SD 1.5-style and SD 2.1-768-v-style folders.
//!
//! Fixtures: `tests/fixtures/sd/` (written by `notebooks/make_sd_fixtures.py`, see its
//! README): the diffusers folders `sd15-tiny/`, `sd2v-tiny/` and `*-reference.safetensors`
//! with inputs and PyTorch outputs (f32, CPU).
//!
//! Tolerances (f32 on CPU), each error measured as max |ours − reference| divided by
//! max |reference| of that tensor:
//! - networks (text encoder, U-Net at t = 1, 200, 999 and 8×16, VAE mean and decode at
//!   64×64 and 48×64): [`NET_TOL`] = 1e-4;
//! - x̂ and the posterior mean of the step tensors (our U-Net + our f64 maths):
//!   [`NET_TOL`]; with the fixture's ᾱ and its own network output the maths alone agree to
//!   [`MATHS_TOL`] = 1e-6 (the reference stores x̂, μ in f32);
//! - σ of the steps from the fixture's ᾱ: 1e-12 relative;
//! - the ᾱ table: ours (f64) against exact decimal arithmetic to 1e-12 relative; against
//!   the fixture (diffusers' float32 table widened to f64) to [`ALPHA_F32_TOL`] = 1e-6
//!   relative, the float32 rounding;
//! - σ from our ᾱ: [`SIGMA_F32_TOL`] = 1e-5 relative;
//! - f16 loads: [`F16_TOL`] = 1e-2 (sanity, not parity; bf16 needs a GPU backend).
//!
//! Run with `--nocapture` to see the measured errors.
use candle_core::{DType, Device, IndexOp, Tensor};
use diffc::nn::sd::maths::{ddpm_posterior, posterior_mean, predict_x0, x0_from_eps};
use diffc::nn::sd::{
    Component, Family, Feature, LatentSizeError, PredictionType, SdError, SdFolder,
    StableDiffusion, UNet2DConditionModel, empty_prompt_ids,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Networks in f32: error ≤ 1e-4 of the reference's max-abs.
const NET_TOL: f64 = 1e-4;
/// The f64 step maths fed the fixture's own ᾱ and network output.
const MATHS_TOL: f64 = 1e-6;
/// Our exact f64 ᾱ against diffusers' float32 ᾱ.
const ALPHA_F32_TOL: f64 = 1e-6;
/// Loading the same weights as f16 (weights and activations rounded).
const F16_TOL: f64 = 1e-2;
/// σ from our exact ᾱ against σ from diffusers' float32 ᾱ (1 − ᾱ_t/ᾱ_s amplifies the
/// float32 rounding).
const SIGMA_F32_TOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd")
}

fn folder(model: &str) -> PathBuf {
    fixtures().join(model)
}

fn reference(model: &str) -> HashMap<String, Tensor> {
    let p = fixtures().join(format!("{model}-reference.safetensors"));
    candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load(model: &str) -> StableDiffusion {
    StableDiffusion::load(folder(model), &Device::Cpu, DType::F32)
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Returns (max abs error, error relative to the reference's max-abs) and asserts the latter.
fn check(what: &str, got: &Tensor, want: &Tensor, tol: f64) -> (f64, f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    check_vec(what, &f64s(got), &f64s(want), tol)
}

fn check_vec(what: &str, got: &[f64], want: &[f64], tol: f64) -> (f64, f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        got.iter().all(|v| v.is_finite()),
        "{what}: non-finite output"
    );
    let rel = err / scale;
    println!("{what:40} max|err| {err:.3e}  rel {rel:.3e}  (max|ref| {scale:.3e}, tol {tol:.0e})");
    assert!(rel <= tol, "{what}: relative error {rel:.3e} > {tol:.0e}");
    (err, rel)
}

fn family_of(model: &str) -> (Family, PredictionType) {
    match model {
        "sd15-tiny" => (Family::Sd1, PredictionType::Epsilon),
        "sd2v-tiny" => (Family::Sd2, PredictionType::VPrediction),
        _ => unreachable!(),
    }
}

const MODELS: [&str; 2] = ["sd15-tiny", "sd2v-tiny"];

// ------------------------------------------------------------------ parity

#[test]
fn folders_load_strictly_with_their_family() {
    for model in MODELS {
        // A successful strict load means: every tensor requested with the right shape and
        // every tensor in the three weight files consumed.
        let sd = load(model);
        let (family, prediction) = family_of(model);
        assert_eq!(sd.family, family, "{model}");
        assert_eq!(sd.prediction_type, prediction, "{model}");
        assert_eq!(sd.vae_scaling_factor, 0.18215, "{model}");
        assert_eq!(sd.alphas_cumprod.len(), 1000);
        assert_eq!(sd.vae.downsampling_factor(), 8);
    }
}

#[test]
fn text_encoder_matches_transformers() {
    for model in MODELS {
        let sd = load(model);
        let r = reference(model);
        let ids: Vec<i64> = r["text.input_ids"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let ours: Vec<i64> = empty_prompt_ids(sd.family)
            .iter()
            .map(|&i| i as i64)
            .collect();
        assert_eq!(ours, ids, "{model}: empty-prompt ids");
        assert_eq!(sd.empty_prompt_ids(), empty_prompt_ids(sd.family));
        let hs = sd.encode_empty_prompt().unwrap();
        check(
            &format!("{model} text.last_hidden_state"),
            &hs,
            &r["text.last_hidden_state"],
            NET_TOL,
        );
        // The fixture's i64 ids through the model directly give the same.
        let direct = sd.text_encoder.forward(&r["text.input_ids"]).unwrap();
        check(&format!("{model} text (i64 ids)"), &direct, &hs, 1e-7);
    }
}

#[test]
fn unet_matches_diffusers() {
    for model in MODELS {
        let sd = load(model);
        let r = reference(model);
        let ctx = &r["unet.encoder_hidden_states"];
        for t in [1, 200, 999] {
            let out = sd.unet.forward(&r["unet.sample"], t as f64, ctx).unwrap();
            check(
                &format!("{model} unet.out.t{t}"),
                &out,
                &r[&format!("unet.out.t{t}")],
                NET_TOL,
            );
        }
        let out = sd.unet.forward(&r["unet.sample_8x16"], 200.0, ctx).unwrap();
        check(
            &format!("{model} unet.out_8x16.t200"),
            &out,
            &r["unet.out_8x16.t200"],
            NET_TOL,
        );
        // A batch of two with one shared text embedding gives each item's output.
        let batch = Tensor::cat(&[&r["unet.sample"], &r["unet.sample"]], 0).unwrap();
        let out = sd.unet.forward(&batch, 200.0, ctx).unwrap();
        check(
            &format!("{model} unet batch[1]"),
            &out.i(1..2).unwrap(),
            &r["unet.out.t200"],
            NET_TOL,
        );
    }
}

#[test]
fn vae_matches_diffusers() {
    for model in MODELS {
        let sd = load(model);
        let r = reference(model);
        for tag in ["64", "48x64"] {
            let mean = sd.vae.encode(&r[&format!("vae.image_{tag}")]).unwrap();
            check(
                &format!("{model} vae.mean_{tag}"),
                &mean,
                &r[&format!("vae.mean_{tag}")],
                NET_TOL,
            );
            let dec = sd.vae.decode(&r[&format!("vae.latent_{tag}")]).unwrap();
            check(
                &format!("{model} vae.decoded_{tag}"),
                &dec,
                &r[&format!("vae.decoded_{tag}")],
                NET_TOL,
            );
        }
    }
}

#[test]
fn alphas_cumprod_table() {
    // Exact values (60-digit decimal arithmetic of the scaled-linear definition, rounded to
    // the nearest f64).
    let exact = [
        (0usize, 0.99915),
        (1, 0.9982960278384514),
        (199, 0.7552383611581203),
        (499, 0.2776696504564678),
        (700, 0.08252087061035474),
        (998, 0.0047166988998757495),
        (999, 0.00466009851307724),
    ];
    for model in MODELS {
        let sd = load(model);
        for (i, want) in exact {
            let rel = (sd.alphas_cumprod[i] - want).abs() / want;
            assert!(
                rel < 1e-12,
                "{model}: ᾱ[{i}] = {} vs {want}: rel {rel:.2e}",
                sd.alphas_cumprod[i]
            );
        }
        let r = reference(model);
        let fixture = f64s(&r["sched.alphas_cumprod"]);
        let rel = sd
            .alphas_cumprod
            .iter()
            .zip(&fixture)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs() / b));
        println!("{model} ᾱ: ours (f64) vs fixture (diffusers f32): max rel {rel:.3e}");
        assert!(rel <= ALPHA_F32_TOL, "{model}: ᾱ rel {rel:.3e}");
    }
}

#[test]
fn reverse_steps_match_reference() {
    for model in MODELS {
        let sd = load(model);
        let r = reference(model);
        let ctx = &r["unet.encoder_hidden_states"];
        let fixture_ac = f64s(&r["sched.alphas_cumprod"]);
        for k in 0..3 {
            let get = |f: &str| &r[&format!("step{k}.{f}")];
            let t = get("t").to_vec1::<i64>().unwrap()[0] as usize;
            let s = get("s").to_vec1::<i64>().unwrap()[0] as usize;
            let z = f64s(get("z_t"));
            let x_ref = f64s(get("x_hat"));
            let mu_ref = f64s(get("mu_p"));
            let sigma_ref = get("sigma").to_vec1::<f64>().unwrap()[0];

            // The maths alone, with the fixture's ᾱ: σ exactly, x̂ and μ to f32 rounding
            // (x̂ is recovered from the reference's own x̂ through ε, a round trip).
            let p = ddpm_posterior(fixture_ac[t], fixture_ac[s]);
            let rel = (p.sigma - sigma_ref).abs() / sigma_ref;
            assert!(rel < 1e-12, "{model} step{k} σ: rel {rel:.2e}");
            let mu = posterior_mean(&p, &x_ref, &z);
            check_vec(
                &format!("{model} step{k}.mu_p (maths)"),
                &mu,
                &mu_ref,
                MATHS_TOL,
            );
            let eps: Vec<f64> = z
                .iter()
                .zip(&x_ref)
                .map(|(z, x)| (z - fixture_ac[t].sqrt() * x) / (1.0 - fixture_ac[t]).sqrt())
                .collect();
            let x_back = x0_from_eps(&z, &eps, fixture_ac[t]);
            check_vec(
                &format!("{model} step{k}.x_hat (maths)"),
                &x_back,
                &x_ref,
                1e-12,
            );

            // Our U-Net, our ᾱ, our maths: what the codec will compute.
            let out = sd.unet.forward(get("z_t"), t as f64, ctx).unwrap();
            let ac = &sd.alphas_cumprod;
            let x_hat = predict_x0(sd.prediction_type, &z, &f64s(&out), ac[t]);
            check_vec(
                &format!("{model} step{k}.x_hat t={t}"),
                &x_hat,
                &x_ref,
                NET_TOL,
            );
            let p = ddpm_posterior(ac[t], ac[s]);
            let mu = posterior_mean(&p, &x_hat, &z);
            check_vec(
                &format!("{model} step{k}.mu_p s={s}"),
                &mu,
                &mu_ref,
                NET_TOL,
            );
            let rel = (p.sigma - sigma_ref).abs() / sigma_ref;
            println!("{model} step{k}.sigma (our ᾱ) rel {rel:.3e}");
            assert!(
                rel < SIGMA_F32_TOL,
                "{model} step{k} σ (our ᾱ): rel {rel:.2e}"
            );
        }
    }
}

#[test]
fn f16_load_runs_close() {
    // bf16 needs a GPU backend (refused on CPU, see `bad_dtype_and_latent_sizes_are_refused`).
    let r = reference("sd15-tiny");
    let sd = StableDiffusion::load(folder("sd15-tiny"), &Device::Cpu, DType::F16).unwrap();
    let ctx = sd.encode_empty_prompt().unwrap();
    assert_eq!(ctx.dtype(), DType::F16);
    let z = r["unet.sample"].to_dtype(DType::F16).unwrap();
    let out = sd.unet.forward(&z, 999.0, &ctx).unwrap();
    assert_eq!(out.dtype(), DType::F16);
    check("sd15 F16 unet.out.t999", &out, &r["unet.out.t999"], F16_TOL);
    let image = r["vae.image_64"].to_dtype(DType::F16).unwrap();
    let mean = sd.vae.encode(&image).unwrap();
    check("sd15 F16 vae.mean_64", &mean, &r["vae.mean_64"], F16_TOL);
    let dec = sd.vae.decode(&mean).unwrap();
    assert_eq!(dec.dtype(), DType::F16);
}

// ------------------------------------------------------------------ loader variants

/// Copies a fixture folder into a fresh temporary directory.
fn copy_folder(model: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&folder(model), dir.path());
    dir
}

fn read_tensors(p: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

fn write_tensors(p: &Path, t: &HashMap<String, Tensor>) {
    candle_core::safetensors::save(t, p).unwrap();
}

fn edit_json(p: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

const UNET_FILE: &str = "unet/diffusion_pytorch_model.safetensors";
const TEXT_FILE: &str = "text_encoder/model.safetensors";

fn open_err(dir: &Path) -> SdError {
    match StableDiffusion::load(dir, &Device::Cpu, DType::F32) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => {
            println!("{e}");
            e
        }
    }
}

#[test]
fn text_encoder_without_prefix_loads_the_same() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(TEXT_FILE);
    let stripped: HashMap<String, Tensor> = read_tensors(&p)
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("text_model.").unwrap().to_string(), v))
        .collect();
    write_tensors(&p, &stripped);
    let (prefixed, stripped) = (
        load("sd15-tiny"),
        StableDiffusion::load(dir.path(), &Device::Cpu, DType::F32).unwrap(),
    );
    let a = prefixed.encode_empty_prompt().unwrap();
    let b = stripped.encode_empty_prompt().unwrap();
    check("text encoder, unprefixed keys", &b, &a, 0.0);
    assert_eq!(prefixed.fingerprint, stripped.fingerprint);
}

#[test]
fn legacy_position_ids_buffer_is_consumed() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(TEXT_FILE);
    let mut t = read_tensors(&p);
    let ids = Tensor::arange(0i64, 77, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    t.insert("text_model.embeddings.position_ids".into(), ids);
    write_tensors(&p, &t);
    StableDiffusion::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
}

#[test]
fn sharded_weights_load_with_the_same_fingerprint() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(UNET_FILE);
    let all = read_tensors(&p);
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("diffusion_pytorch_model-00001-of-00002.safetensors", a),
        ("diffusion_pytorch_model-00002-of-00002.safetensors", b),
    ] {
        let t: HashMap<String, Tensor> =
            part.iter().map(|&n| (n.clone(), all[n].clone())).collect();
        write_tensors(&dir.path().join("unet").join(shard), &t);
        for n in part {
            weight_map.insert((*n).clone(), shard.into());
        }
    }
    std::fs::remove_file(&p).unwrap();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.path()
            .join("unet/diffusion_pytorch_model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let sharded = StableDiffusion::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let single = load("sd15-tiny");
    assert_eq!(sharded.fingerprint, single.fingerprint);
    let r = reference("sd15-tiny");
    let out = sharded
        .unet
        .forward(&r["unet.sample"], 200.0, &r["unet.encoder_hidden_states"])
        .unwrap();
    check("sharded unet.out.t200", &out, &r["unet.out.t200"], NET_TOL);
}

#[test]
fn fp16_variant_is_found() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(UNET_FILE);
    let half: HashMap<String, Tensor> = read_tensors(&p)
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F16).unwrap()))
        .collect();
    std::fs::remove_file(&p).unwrap();
    write_tensors(
        &dir.path()
            .join("unet/diffusion_pytorch_model.fp16.safetensors"),
        &half,
    );
    let sd = StableDiffusion::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    assert_ne!(sd.fingerprint, load("sd15-tiny").fingerprint);
    let r = reference("sd15-tiny");
    let out = sd
        .unet
        .forward(&r["unet.sample"], 200.0, &r["unet.encoder_hidden_states"])
        .unwrap();
    check(
        "fp16-file unet.out.t200 (f32 compute)",
        &out,
        &r["unet.out.t200"],
        F16_TOL,
    );
}

#[test]
fn fingerprint_is_stable_and_sensitive() {
    let a = SdFolder::open(folder("sd15-tiny")).unwrap().fingerprint;
    let b = SdFolder::open(folder("sd2v-tiny")).unwrap().fingerprint;
    println!("fingerprints: sd15-tiny {a:016x}, sd2v-tiny {b:016x}");
    assert_ne!(a, b);
    assert_eq!(a, SdFolder::open(folder("sd15-tiny")).unwrap().fingerprint);
    // Golden values: they change only if the fixture folders or the (v1) definition change.
    assert_eq!(a, 0xb83e_403e_b9fd_216d);
    assert_eq!(b, 0x7d95_9b91_4595_1a59);

    // A copy elsewhere, with rewritten bookkeeping keys and reformatted JSON: same.
    let dir = copy_folder("sd15-tiny");
    edit_json(&dir.path().join("unet/config.json"), |m| {
        m.insert("_diffusers_version".into(), "9.9.9".into());
        m.insert("_name_or_path".into(), "/elsewhere".into());
    });
    assert_eq!(SdFolder::open(dir.path()).unwrap().fingerprint, a);

    // One weight changed (same names, shapes, header): different.
    let p = dir.path().join(UNET_FILE);
    let mut t = read_tensors(&p);
    let w = (&t["conv_in.weight"] * 1.001).unwrap();
    t.insert("conv_in.weight".into(), w);
    write_tensors(&p, &t);
    assert_ne!(SdFolder::open(dir.path()).unwrap().fingerprint, a);

    // A config value changed: different.
    let dir = copy_folder("sd15-tiny");
    edit_json(&dir.path().join("vae/config.json"), |m| {
        m.insert("scaling_factor".into(), 0.2.into());
    });
    assert_ne!(SdFolder::open(dir.path()).unwrap().fingerprint, a);
}

// ------------------------------------------------------------------ refusals

#[test]
fn missing_files_are_named() {
    let dir = copy_folder("sd15-tiny");
    std::fs::remove_file(dir.path().join("vae/config.json")).unwrap();
    assert!(matches!(
        open_err(dir.path()),
        SdError::MissingFile {
            component: Component::Vae,
            ..
        }
    ));

    let dir = copy_folder("sd15-tiny");
    std::fs::remove_file(dir.path().join(UNET_FILE)).unwrap();
    assert!(matches!(
        open_err(dir.path()),
        SdError::MissingFile {
            component: Component::Unet,
            ..
        }
    ));

    let dir = copy_folder("sd15-tiny");
    std::fs::remove_file(dir.path().join("scheduler/scheduler_config.json")).unwrap();
    assert!(matches!(
        open_err(dir.path()),
        SdError::MissingFile {
            component: Component::Scheduler,
            ..
        }
    ));

    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nothing-here");
    assert!(matches!(open_err(&gone), SdError::MissingFile { .. }));
}

#[test]
fn truncated_safetensors_is_refused() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(UNET_FILE);
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 1000).unwrap();
    match open_err(dir.path()) {
        SdError::TruncatedSafetensors {
            expected_len,
            actual_len,
            ..
        } => {
            assert_eq!((expected_len, actual_len), (len, len - 1000));
        }
        e => panic!("{e:?}"),
    }
    // Cut inside the header.
    f.set_len(100).unwrap();
    assert!(matches!(
        open_err(dir.path()),
        SdError::TruncatedSafetensors { .. }
    ));
    // Not a safetensors file at all.
    std::fs::write(&p, b"\x10\0\0\0\0\0\0\0not json at all!").unwrap();
    assert!(matches!(
        open_err(dir.path()),
        SdError::BadSafetensors { .. }
    ));
}

#[test]
fn wrong_missing_and_unused_tensors_are_named() {
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(UNET_FILE);
    let orig = read_tensors(&p);

    let mut t = orig.clone();
    let w = t["conv_in.weight"].clone(); // (16, 4, 3, 3)
    t.insert("conv_in.weight".into(), w.reshape((4, 16, 3, 3)).unwrap());
    write_tensors(&p, &t);
    match open_err(dir.path()) {
        SdError::WrongShape {
            component: Component::Unet,
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "conv_in.weight");
            assert_eq!((expected, found), (vec![16, 4, 3, 3], vec![4, 16, 3, 3]));
        }
        e => panic!("{e:?}"),
    }

    let mut t = orig.clone();
    t.remove("mid_block.attentions.0.proj_out.weight");
    write_tensors(&p, &t);
    match open_err(dir.path()) {
        SdError::MissingTensor {
            component: Component::Unet,
            name,
            ..
        } => {
            assert_eq!(name, "mid_block.attentions.0.proj_out.weight")
        }
        e => panic!("{e:?}"),
    }

    let mut t = orig.clone();
    for i in 0..7 {
        t.insert(
            format!("extra.{i}.weight"),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
    }
    write_tensors(&p, &t);
    match open_err(dir.path()) {
        SdError::UnusedTensors {
            component: Component::Unet,
            count,
            names,
        } => {
            assert_eq!(count, 7);
            assert_eq!(names.len(), 5);
            assert_eq!(names[0], "extra.0.weight");
        }
        e => panic!("{e:?}"),
    }

    // An unused tensor in the text encoder too (e.g. CLIPTextModelWithProjection's).
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join(TEXT_FILE);
    let mut t = read_tensors(&p);
    t.insert(
        "text_projection.weight".into(),
        Tensor::zeros((16, 16), DType::F32, &Device::Cpu).unwrap(),
    );
    write_tensors(&p, &t);
    assert!(matches!(
        open_err(dir.path()),
        SdError::UnusedTensors {
            component: Component::TextEncoder,
            count: 1,
            ..
        }
    ));
}

#[test]
fn unsupported_configs_name_the_feature() {
    let cases: [(&str, &str, serde_json::Value, Component, Feature); 7] = [
        (
            "unet",
            "addition_embed_type",
            "text_time".into(),
            Component::Unet,
            Feature::Sdxl,
        ),
        (
            "unet",
            "addition_time_embed_dim",
            256.into(),
            Component::Unet,
            Feature::Sdxl,
        ),
        (
            "unet",
            "projection_class_embeddings_input_dim",
            2816.into(),
            Component::Unet,
            Feature::Sdxl,
        ),
        (
            "unet",
            "class_embed_type",
            "timestep".into(),
            Component::Unet,
            Feature::ClassEmbeddings,
        ),
        (
            "unet",
            "num_class_embeds",
            1000.into(),
            Component::Unet,
            Feature::ClassEmbeddings,
        ),
        (
            "unet",
            "in_channels",
            9.into(),
            Component::Unet,
            Feature::Inpainting,
        ),
        (
            "unet",
            "only_cross_attention",
            true.into(),
            Component::Unet,
            Feature::Config,
        ),
    ];
    for (sub, key, value, component, feature) in cases {
        let dir = copy_folder("sd15-tiny");
        edit_json(&dir.path().join(sub).join("config.json"), |m| {
            m.insert(key.into(), value.clone());
        });
        match open_err(dir.path()) {
            SdError::Unsupported {
                component: c,
                feature: f,
                detail,
            } => {
                assert_eq!((c, f), (component, feature), "{key}");
                assert!(detail.contains(key), "{key}: {detail}");
            }
            e => panic!("{key}: {e:?}"),
        }
    }
    let sched = |key: &str, value: serde_json::Value| {
        let dir = copy_folder("sd2v-tiny");
        edit_json(&dir.path().join("scheduler/scheduler_config.json"), |m| {
            m.insert(key.into(), value);
        });
        open_err(dir.path())
    };
    for (key, value) in [
        ("beta_schedule", serde_json::Value::from("linear")),
        ("prediction_type", "sample".into()),
        ("rescale_betas_zero_snr", true.into()),
    ] {
        assert!(
            matches!(
                sched(key, value),
                SdError::Unsupported {
                    component: Component::Scheduler,
                    feature: Feature::Config,
                    ..
                }
            ),
            "{key}"
        );
    }
    // A VAE from another family, and a malformed value.
    let dir = copy_folder("sd15-tiny");
    edit_json(&dir.path().join("vae/config.json"), |m| {
        m.insert("shift_factor".into(), 0.1159.into());
    });
    assert!(matches!(
        open_err(dir.path()),
        SdError::Unsupported {
            component: Component::Vae,
            ..
        }
    ));
    let dir = copy_folder("sd15-tiny");
    edit_json(&dir.path().join("unet/config.json"), |m| {
        m.insert("block_out_channels".into(), "wide".into());
    });
    assert!(matches!(open_err(dir.path()), SdError::BadConfig { .. }));
}

#[test]
fn single_file_checkpoints_are_refused() {
    let file = folder("sd15-tiny").join(UNET_FILE);
    assert!(matches!(
        open_err(&file),
        SdError::SingleFileCheckpoint { .. }
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("v1-5-pruned-emaonly.ckpt"), b"pickle").unwrap();
    match open_err(dir.path()) {
        SdError::NotDiffusersFolder { single_files, .. } => {
            assert_eq!(single_files, ["v1-5-pruned-emaonly.ckpt"])
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn bad_dtype_and_latent_sizes_are_refused() {
    for dtype in [DType::F64, DType::BF16] {
        assert!(matches!(
            StableDiffusion::load(folder("sd15-tiny"), &Device::Cpu, dtype),
            Err(SdError::UnsupportedDType { dtype: d, .. }) if d == dtype
        ));
    }
    assert_eq!(
        UNet2DConditionModel::check_latent_size(6, 8),
        Err(LatentSizeError {
            height: 6,
            width: 8
        })
    );
    assert!(UNet2DConditionModel::check_latent_size(8, 16).is_ok());
    let sd = load("sd15-tiny");
    let ctx = sd.encode_empty_prompt().unwrap();
    let z = Tensor::zeros((1, 4, 12, 8), DType::F32, &Device::Cpu).unwrap();
    let e = sd.unet.forward(&z, 10.0, &ctx).unwrap_err();
    assert!(e.to_string().contains("12×8"), "{e}");
}

#[test]
fn legacy_vae_attention_names_load_the_same() {
    // Older checkpoints name the VAE attention query/key/value/proj_attn, some as 1×1 convs.
    let dir = copy_folder("sd15-tiny");
    let p = dir.path().join("vae/diffusion_pytorch_model.safetensors");
    let renamed: HashMap<String, Tensor> = read_tensors(&p)
        .into_iter()
        .map(|(k, v)| {
            let mut k = k;
            for (new, old) in [
                ("to_q", "query"),
                ("to_k", "key"),
                ("to_v", "value"),
                ("to_out.0", "proj_attn"),
            ] {
                k = k.replace(
                    &format!("attentions.0.{new}."),
                    &format!("attentions.0.{old}."),
                );
            }
            let v = if k.starts_with("encoder.") && k.ends_with(".weight") && v.rank() == 2 {
                let (a, b) = v.dims2().unwrap();
                v.reshape((a, b, 1, 1)).unwrap()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    assert!(renamed.keys().any(|k| k.ends_with("proj_attn.weight")));
    write_tensors(&p, &renamed);
    let sd = StableDiffusion::load(dir.path(), &Device::Cpu, DType::F32).unwrap();
    let r = reference("sd15-tiny");
    let mean = sd.vae.encode(&r["vae.image_64"]).unwrap();
    check(
        "legacy-named vae.mean_64",
        &mean,
        &r["vae.mean_64"],
        NET_TOL,
    );
    let dec = sd.vae.decode(&r["vae.latent_64"]).unwrap();
    check(
        "legacy-named vae.decoded_64",
        &dec,
        &r["vae.decoded_64"],
        NET_TOL,
    );
}
