//! Fused CPU f32 kernels for the pixel U-Net ([`super::unet`]): GroupNorm + scale/shift + SiLU
//! in one kernel, and convolutions as a parallel im2col plus one `gemm` per tile that
//! accumulates onto the bias (and a residual) in place.
//!
//! candle's CPU `conv2d` converts its input to NHWC on one thread and gathers its im2col tiles
//! value by value, and its GroupNorm, SiLU and broadcast affine are separate full passes, each
//! allocating; these kernels do the same arithmetic in fewer, parallel passes.
//!
//! Deterministic: every sum runs in a fixed order inside one task (the rayon split decides
//! only who computes which output, never how a value is reduced), and `gemm` splits its
//! work over output tiles, so the result is bit for bit the same on any number of threads.
//! The callers keep candle's ops as the reference path and for other devices and dtypes.
use candle_core::{DType, Device, Result, Storage, Tensor, bail};
use gemm::Parallelism;
use rayon::prelude::*;

/// Whether the fast kernels apply: a CPU tensor of f32.
pub fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Runs `f` on the contiguous f32 values of a CPU tensor (borrowed, no copy when the tensor is
/// already contiguous).
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("fast U-Net kernel: tensor is not on the CPU")
    };
    let data = cpu.as_slice::<f32>()?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fast U-Net kernel: tensor is not contiguous")
    };
    f(&data[start..end])
}

/// `silu(y)` with `y = x·a_c + b_c` per channel, where `(a_c, b_c)` fold GroupNorm's
/// mean/rstd, its affine `gamma`/`beta` and the optional resblock modulation
/// `y·(1 + scale) + shift`. `x`: (B, C, H, W); `gamma`, `beta`: (C,); `scale`, `shift`:
/// (B, C) when given. Statistics in f64, two passes (mean, then centred squares) in a
/// fixed order, like candle's GroupNorm (biased variance, `eps` inside the square root).
pub fn group_norm_silu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    scale_shift: Option<(&Tensor, &Tensor)>,
    silu: bool,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        bail!("GroupNorm: {groups} groups do not divide {c} channels");
    }
    if gamma.elem_count() != c || beta.elem_count() != c {
        bail!(
            "GroupNorm: affine weights of {} values for {c} channels",
            gamma.elem_count()
        );
    }
    let hw = h * w;
    let gamma = gamma
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let beta = beta.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let (scale, shift) = match scale_shift {
        Some((s, t)) => {
            if s.elem_count() != b * c || t.elem_count() != b * c {
                bail!("GroupNorm: scale/shift must have {b}×{c} values");
            }
            let s = s.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let t = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            (Some(s), Some(t))
        }
        None => (None, None),
    };
    let cpg = c / groups;
    let out = with_f32(x, |xs| {
        let n = (cpg * hw) as f64;
        // per (batch, group): mean and 1/sqrt(var + eps)
        let stats: Vec<(f64, f64)> = if hw == 0 {
            vec![(0.0, 0.0); b * groups]
        } else {
            xs.par_chunks(cpg * hw)
                .map(|g| {
                    let mean = sum_f64(g, |v| v) / n;
                    let var = sum_f64(g, |v| (v - mean) * (v - mean)) / n;
                    (mean, 1.0 / (var + eps).sqrt())
                })
                .collect()
        };
        // per (batch, channel): y = x·a + b
        let coef: Vec<(f32, f32)> = (0..b * c)
            .map(|bc| {
                let ch = bc % c;
                let (mean, rstd) = stats[(bc / c) * groups + ch / cpg];
                let a = rstd * gamma[ch];
                let mut off = beta[ch] - mean * a;
                let mut a = a;
                if let (Some(s), Some(t)) = (&scale, &shift) {
                    let m = 1.0 + s[bc];
                    a *= m;
                    off = off * m + t[bc];
                }
                (a as f32, off as f32)
            })
            .collect();
        let mut out = vec![0f32; xs.len()];
        if hw > 0 {
            out.par_chunks_mut(hw)
                .zip(xs.par_chunks(hw))
                .zip(coef.par_iter())
                .for_each(|((o, xi), &(a, off))| {
                    for (o, &v) in o.iter_mut().zip(xi) {
                        let y = v * a + off;
                        *o = if silu { y / (1.0 + (-y).exp()) } else { y };
                    }
                });
        }
        Ok(out)
    })?;
    Tensor::from_vec(out, (b, c, h, w), &Device::Cpu)
}

/// Σ f(v) over `xs` in f64, eight interleaved partial sums combined in a fixed order (the
/// order depends only on the data's length, never on threads).
fn sum_f64(xs: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v as f64);
        }
    }
    for (a, &v) in acc.iter_mut().zip(it.remainder()) {
        *a += f(v as f64);
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Output pixels per im2col tile (rounded to whole output rows): the column buffer stays
/// near 16 MB at the widest layer, and each `gemm` is still large.
const TILE_PIXELS: usize = 8192;

/// 2-D convolution (square kernel `k`, `stride`, zero `padding`, no dilation or groups) of
/// `x`: (B, C_in, H, W) with `weight`: (C_out, C_in, k, k) and `bias`: (C_out,), plus
/// `add`: (B, C_out, OH, OW) when given (a residual, fused into the output). The output
/// starts as bias + `add` and `gemm` accumulates `weight · im2col(x)` onto it, tile by tile
/// of output rows. The im2col is pixel-major (each pixel's k²·C_in taps contiguous): with the
/// NCHW output that is the orientation `gemm` runs at full rate on several threads (the
/// channel-major one ran about 3× slower on two). It is built from a pixel-major copy of the
/// input, so each tap is one contiguous copy of C_in values; a 1×1 stride-1 convolution
/// multiplies that copy directly.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    add: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, cin, h, w) = x.dims4()?;
    let (cout, wcin, kh, kw) = weight.dims4()?;
    if wcin != cin || kh != kw || stride == 0 {
        bail!(
            "conv2d: weight {:?} does not fit input {:?} (stride {stride})",
            weight.dims(),
            x.dims()
        );
    }
    let k = kh;
    if h + 2 * padding < k || w + 2 * padding < k {
        bail!("conv2d: input {h}×{w} smaller than the {k}×{k} kernel");
    }
    let oh = (h + 2 * padding - k) / stride + 1;
    let ow = (w + 2 * padding - k) / stride + 1;
    let ohw = oh * ow;
    let kk = cin * k * k;
    // output = bias + add
    let mut out = match add {
        Some(a) => {
            if a.dims4()? != (b, cout, oh, ow) {
                bail!("conv2d: residual {:?} does not match the output", a.dims());
            }
            with_f32(a, |v| Ok(v.to_vec()))?
        }
        None => vec![0f32; b * cout * ohw],
    };
    if let Some(bias) = bias {
        let bias = bias.flatten_all()?.to_vec1::<f32>()?;
        if bias.len() != cout {
            bail!("conv2d: bias of {} values for {cout} channels", bias.len());
        }
        if ohw > 0 {
            out.par_chunks_mut(ohw)
                .enumerate()
                .for_each(|(i, o)| o.iter_mut().for_each(|v| *v += bias[i % cout]));
        }
    }
    if ohw == 0 || cout == 0 || kk == 0 {
        return Tensor::from_vec(out, (b, cout, oh, ow), &Device::Cpu);
    }
    // weights with the taps in im2col order: wt[co][(ky·k + kx)·C_in + ci]
    let wt = with_f32(weight, |wsrc| {
        let mut wt = vec![0f32; cout * kk];
        for (co, row) in wt.chunks_exact_mut(kk).enumerate() {
            for ci in 0..cin {
                for t in 0..k * k {
                    row[t * cin + ci] = wsrc[(co * cin + ci) * k * k + t];
                }
            }
        }
        Ok(wt)
    })?;
    let direct = k == 1 && stride == 1 && padding == 0;
    with_f32(x, |xs| {
        let rows = (TILE_PIXELS / ow).clamp(1, oh);
        let mut col = if direct {
            Vec::new()
        } else {
            vec![0f32; kk * rows * ow]
        };
        for bi in 0..b {
            let img = to_pixel_major(&xs[bi * cin * h * w..(bi + 1) * cin * h * w], cin);
            let dst = &mut out[bi * cout * ohw..(bi + 1) * cout * ohw];
            let mut y0 = 0;
            while y0 < oh {
                let y1 = (y0 + rows).min(oh);
                let n = (y1 - y0) * ow;
                let col: &[f32] = if direct {
                    &img[y0 * ow * cin..y1 * ow * cin]
                } else {
                    let col = &mut col[..kk * n];
                    im2col(&img, (cin, h, w), k, stride, padding, (y0, ow), col);
                    col
                };
                // dst (cout × n, rows ohw apart) += wt (cout × kk) · col (kk × n, pixel-major)
                let d = &mut dst[y0 * ow..];
                gemm_acc(cout, n, kk, (d, (ohw, 1)), (&wt, (kk, 1)), (col, (1, kk)))?;
                y0 = y1;
            }
        }
        Ok(())
    })?;
    Tensor::from_vec(out, (b, cout, oh, ow), &Device::Cpu)
}

/// (C, H·W) → (H·W, C): each pixel's channels contiguous. Blocks of 64 pixels, so the
/// strided writes stay in cache.
fn to_pixel_major(img: &[f32], c: usize) -> Vec<f32> {
    const P: usize = 64;
    let hw = img.len().checked_div(c).unwrap_or(0);
    let mut out = vec![0f32; img.len()];
    if hw == 0 {
        return out;
    }
    out.par_chunks_mut(P * c).enumerate().for_each(|(bi, blk)| {
        let p0 = bi * P;
        let np = blk.len() / c;
        for ci in 0..c {
            let src = &img[ci * hw + p0..ci * hw + p0 + np];
            for (j, &v) in src.iter().enumerate() {
                blk[j * c + ci] = v;
            }
        }
    });
    out
}

/// Pixel-major im2col of the output rows from `y0` (width `ow`) that `col` has room for,
/// from the pixel-major input `img` (H·W × C_in): `col[p·K + (ky·k + kx)·C_in + ci]`
/// (K = k²·C_in) is the input value output pixel p sees through tap (ky, kx) of channel ci,
/// 0 in the padding. Every value of `col` is written; parallel over output rows.
fn im2col(
    img: &[f32],
    (cin, h, w): (usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    (y0, ow): (usize, usize),
    col: &mut [f32],
) {
    let kk = cin * k * k;
    col.par_chunks_mut(ow * kk)
        .enumerate()
        .for_each(|(i, blk)| {
            let oy = y0 + i;
            for (ox, px) in blk.chunks_exact_mut(kk).enumerate() {
                for (t, o) in px.chunks_exact_mut(cin).enumerate() {
                    // wrapping: a tap in the padding has a huge index
                    let iy = (oy * stride + t / k).wrapping_sub(pad);
                    let ix = (ox * stride + t % k).wrapping_sub(pad);
                    if iy < h && ix < w {
                        let s = (iy * w + ix) * cin;
                        o.copy_from_slice(&img[s..s + cin]);
                    } else {
                        o.fill(0.0);
                    }
                }
            }
        });
}

/// Whether an r×c matrix with strides `(rs, cs)` fits in `len` values.
fn fits(len: usize, r: usize, c: usize, (rs, cs): (usize, usize)) -> bool {
    (r - 1)
        .checked_mul(rs)
        .and_then(|a| (c - 1).checked_mul(cs).and_then(|b| a.checked_add(b)))
        .is_some_and(|last| last < len)
}

/// `dst += lhs · rhs`: `lhs` m×k, `rhs` k×n, `dst` m×n, each given with its (row, column)
/// strides. An error if a slice is too short for its shape, which keeps the unsafe `gemm`
/// call sound.
fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    (dst, ds): (&mut [f32], (usize, usize)),
    (lhs, ls): (&[f32], (usize, usize)),
    (rhs, rs): (&[f32], (usize, usize)),
) -> Result<()> {
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    if !fits(dst.len(), m, n, ds) || !fits(lhs.len(), m, k, ls) || !fits(rhs.len(), k, n, rs) {
        bail!("gemm: operands too short for {m}×{k} · {k}×{n}");
    }
    // SAFETY: `fits` keeps every element gemm touches inside the three slices, and dst is
    // borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds.1 as isize,
            ds.0 as isize,
            true,
            lhs.as_ptr(),
            ls.1 as isize,
            ls.0 as isize,
            rhs.as_ptr(),
            rs.1 as isize,
            rs.0 as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            Parallelism::Rayon(rayon::current_num_threads()),
        )
    }
    Ok(())
}

/// `skip + upsample_nearest_2x(t)`: `t` (B, C, H, W), `skip` (B, C, 2H, 2W).
pub fn upsample2_add(t: &Tensor, skip: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = t.dims4()?;
    if skip.dims4()? != (b, c, 2 * h, 2 * w) {
        bail!(
            "upsample-add: skip {:?} is not twice {:?}",
            skip.dims(),
            t.dims()
        );
    }
    let mut out = with_f32(skip, |s| Ok(s.to_vec()))?;
    with_f32(t, |ts| {
        if h * w > 0 {
            out.par_chunks_mut(4 * h * w)
                .zip(ts.par_chunks(h * w))
                .for_each(|(o, ti)| {
                    for (y2, orow) in o.chunks_exact_mut(2 * w).enumerate() {
                        let trow = &ti[(y2 / 2) * w..(y2 / 2 + 1) * w];
                        for (x2, v) in orow.iter_mut().enumerate() {
                            *v += trow[x2 / 2];
                        }
                    }
                });
        }
        Ok(())
    })?;
    Tensor::from_vec(out, (b, c, 2 * h, 2 * w), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;

    /// Deterministic pseudo-random values in `[lo, hi)` (a 64-bit LCG), so failures reproduce.
    pub(crate) fn rnd(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// max |a − b| ÷ max(1, max |b|).
    pub(crate) fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let d = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        d / scale
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn gn_reference(
        x: &Tensor,
        g: &Tensor,
        b: &Tensor,
        groups: usize,
        ss: Option<(&Tensor, &Tensor)>,
    ) -> Tensor {
        let c = x.dim(1).unwrap();
        let gn = candle_nn::GroupNorm::new(g.clone(), b.clone(), c, groups, 1e-5).unwrap();
        let h = gn.forward(x).unwrap();
        let h = match ss {
            Some((s, t)) => {
                let bs = x.dim(0).unwrap();
                let s = (s.reshape((bs, c, 1, 1)).unwrap() + 1.0).unwrap();
                h.broadcast_mul(&s)
                    .unwrap()
                    .broadcast_add(&t.reshape((bs, c, 1, 1)).unwrap())
                    .unwrap()
            }
            None => h,
        };
        h.silu().unwrap()
    }

    #[test]
    fn group_norm_silu_matches_candle() {
        for (i, &(b, c, h, w, groups)) in [
            (1, 16, 8, 8, 4),
            (2, 24, 5, 7, 8),
            (1, 64, 32, 32, 8),
            (3, 8, 1, 3, 2),
        ]
        .iter()
        .enumerate()
        {
            let s = i as u64 * 10;
            // an offset and a spread, as activations have
            let x = rnd(&[b, c, h, w], s, -3.0, 5.0);
            let g = rnd(&[c], s + 1, 0.5, 1.5);
            let be = rnd(&[c], s + 2, -0.5, 0.5);
            let sc = rnd(&[b, c], s + 3, -0.5, 0.5);
            let sh = rnd(&[b, c], s + 4, -0.5, 0.5);
            for ss in [None, Some((&sc, &sh))] {
                let fast = group_norm_silu(&x, &g, &be, groups, 1e-5, ss, true).unwrap();
                let want = gn_reference(&x, &g, &be, groups, ss);
                let e = rel_err(&fast, &want);
                assert!(
                    e < 1e-5,
                    "{:?} scale/shift {}: {e:e}",
                    x.dims(),
                    ss.is_some()
                );
            }
        }
    }

    #[test]
    fn group_norm_rejects_bad_groups() {
        let x = rnd(&[1, 6, 2, 2], 0, -1.0, 1.0);
        let g = rnd(&[6], 1, 0.0, 1.0);
        assert!(group_norm_silu(&x, &g, &g, 4, 1e-5, None, true).is_err());
        assert!(group_norm_silu(&x, &g, &g, 0, 1e-5, None, true).is_err());
        let g5 = rnd(&[5], 1, 0.0, 1.0);
        assert!(group_norm_silu(&x, &g5, &g5, 3, 1e-5, None, true).is_err());
    }

    #[test]
    fn conv2d_matches_candle() {
        // (batch, c_in, h, w, c_out, k, stride, padding); the 100×100 one spans two tiles
        for (i, &(b, cin, h, w, cout, k, stride, pad)) in [
            (1, 16, 12, 10, 24, 3, 1, 1),
            (2, 8, 9, 7, 12, 3, 2, 1),
            (1, 24, 8, 8, 16, 1, 1, 0),
            (2, 6, 5, 6, 4, 1, 2, 0),
            (1, 4, 100, 100, 8, 3, 1, 1),
            (1, 64, 32, 32, 64, 3, 1, 1),
            (1, 3, 4, 4, 5, 3, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            let s = 100 + i as u64 * 10;
            let x = rnd(&[b, cin, h, w], s, -2.0, 2.0);
            let wt = rnd(&[cout, cin, k, k], s + 1, -0.3, 0.3);
            let bias = rnd(&[cout], s + 2, -1.0, 1.0);
            let want = x
                .conv2d(&wt, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap())
                .unwrap();
            let add = rnd(want.dims(), s + 3, -1.0, 1.0);
            let got = conv2d(&x, &wt, Some(&bias), stride, pad, None).unwrap();
            let e = rel_err(&got, &want);
            assert!(e < 1e-5, "case {i}: {e:e}");
            let got = conv2d(&x, &wt, Some(&bias), stride, pad, Some(&add)).unwrap();
            let e = rel_err(&got, &(&want + &add).unwrap());
            assert!(e < 1e-5, "case {i} with residual: {e:e}");
            let nobias = x.conv2d(&wt, pad, stride, 1, 1).unwrap();
            let e = rel_err(&conv2d(&x, &wt, None, stride, pad, None).unwrap(), &nobias);
            assert!(e < 1e-5, "case {i} without bias: {e:e}");
        }
    }

    #[test]
    fn conv2d_rejects_mismatched_shapes() {
        let x = rnd(&[1, 4, 6, 6], 0, -1.0, 1.0);
        let wt = rnd(&[8, 3, 3, 3], 1, -1.0, 1.0);
        assert!(conv2d(&x, &wt, None, 1, 1, None).is_err());
        let wt = rnd(&[8, 4, 3, 3], 1, -1.0, 1.0);
        let bad_bias = rnd(&[7], 2, -1.0, 1.0);
        assert!(conv2d(&x, &wt, Some(&bad_bias), 1, 1, None).is_err());
        let bad_add = rnd(&[1, 8, 5, 5], 3, -1.0, 1.0);
        assert!(conv2d(&x, &wt, None, 1, 1, Some(&bad_add)).is_err());
        assert!(conv2d(&x, &wt, None, 0, 1, None).is_err());
        let tiny = rnd(&[1, 4, 1, 1], 4, -1.0, 1.0);
        assert!(conv2d(&tiny, &wt, None, 1, 0, None).is_err());
    }

    #[test]
    fn upsample2_add_matches_candle() {
        let t = rnd(&[2, 5, 3, 4], 7, -1.0, 1.0);
        let skip = rnd(&[2, 5, 6, 8], 8, -1.0, 1.0);
        let want = (t.upsample_nearest2d(6, 8).unwrap() + &skip).unwrap();
        assert_eq!(bits(&upsample2_add(&t, &skip).unwrap()), bits(&want));
        assert!(upsample2_add(&t, &t).is_err());
    }

    /// The kernels give the same bits on 1 and 2 threads.
    #[test]
    fn kernels_are_thread_count_invariant() {
        let x = rnd(&[1, 64, 96, 96], 1, -2.0, 3.0);
        let g = rnd(&[64], 2, 0.5, 1.5);
        let be = rnd(&[64], 3, -0.5, 0.5);
        let wt = rnd(&[64, 64, 3, 3], 4, -0.1, 0.1);
        let bias = rnd(&[64], 5, -0.1, 0.1);
        let run = || {
            let h = group_norm_silu(&x, &g, &be, 8, 1e-5, None, true).unwrap();
            let c = conv2d(&h, &wt, Some(&bias), 1, 1, Some(&x)).unwrap();
            let d = conv2d(&c, &wt, Some(&bias), 2, 1, None).unwrap();
            (bits(&h), bits(&c), bits(&d))
        };
        let one = in_pool(1, run);
        let two = in_pool(2, run);
        assert!(one == two, "results differ between 1 and 2 threads");
    }
}
