//! Decoded pictures and comparison sheets.
//!
//! Picture files are named after the image (`.png` added unless it is one already):
//! - `images/original/<image>.png`: the original (or its centred crop, `--image-crop N`);
//! - `images/<codec>/<target>/<image>.png`: the decoded image, cropped the same way;
//! - `sheets/<image>.png`: one row per target rate, the original then every codec side by
//!   side, with the codec, the real bpp and the PSNR (of the whole image) under each tile.
//!   A row whose picture is missing (e.g. resumed without pictures) gets an empty tile.
use super::{Row, fmt_bpp};
use crate::eval::font::{self, CELL};
use crate::image_io::{Image, Shape};
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Picture runs keep by default up to this many images (`--save-images` / `--no-images`
/// override).
pub const DEFAULT_MAX_IMAGES: usize = 50;

/// A picture's file name: the image's own name when it is a `.png`, else with `.png` added.
pub fn png_name(image: &str) -> String {
    if image.to_ascii_lowercase().ends_with(".png") {
        image.to_string()
    } else {
        format!("{image}.png")
    }
}

pub fn original_path(out: &Path, image: &str) -> PathBuf {
    out.join("images").join("original").join(png_name(image))
}

pub fn decoded_path(out: &Path, codec: &str, target: f64, image: &str) -> PathBuf {
    out.join("images")
        .join(codec)
        .join(fmt_bpp(target))
        .join(png_name(image))
}

pub fn sheet_path(out: &Path, image: &str) -> PathBuf {
    out.join("sheets").join(png_name(image))
}

/// The centred `n × n` crop (each side clamped to the image); `None`: the whole image.
pub fn crop_centre(img: &Image, n: Option<usize>) -> Image {
    let Some(n) = n else { return img.clone() };
    let Shape { c, h, w } = img.shape;
    let (ch, cw) = (n.min(h).max(1), n.min(w).max(1));
    if (ch, cw) == (h, w) {
        return img.clone();
    }
    let (y0, x0) = ((h - ch) / 2, (w - cw) / 2);
    let mut out = Image::zeros(Shape::new(c, ch, cw));
    for k in 0..c {
        for y in 0..ch {
            let src = (k * h + y0 + y) * w + x0;
            let dst = (k * ch + y) * cw;
            out.data[dst..dst + cw].copy_from_slice(&img.data[src..src + cw]);
        }
    }
    out
}

const MARGIN: u32 = 8;
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([20, 20, 20]);
const EMPTY: Rgb<u8> = Rgb([200, 200, 200]);

fn load_rgb(p: &Path) -> Option<RgbImage> {
    image::open(p).ok().map(|i| i.to_rgb8())
}

/// Writes `sheets/<image>.png` for every image that has its original picture; returns the
/// image names that got a sheet, sorted.
pub fn write_sheets(out: &Path, rows: &[Row]) -> Result<Vec<String>> {
    let codecs: BTreeSet<&str> = rows.iter().map(|r| r.codec.as_str()).collect();
    let codecs: Vec<&str> = codecs.into_iter().collect();
    let mut targets: Vec<f64> = rows.iter().map(|r| r.target_bpp).collect();
    targets.sort_by(f64::total_cmp);
    targets.dedup();
    let mut by_image: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_image.entry(r.image.as_str()).or_default().push(r);
    }
    let mut done = Vec::new();
    for (image, rs) in by_image {
        let Some(orig) = load_rgb(&original_path(out, image)) else {
            continue;
        };
        let sheet = sheet(out, image, &orig, &rs, &codecs, &targets);
        let p = sheet_path(out, image);
        std::fs::create_dir_all(p.parent().unwrap())?;
        let mut png = Vec::new();
        sheet
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .with_context(|| format!("encoding {}", p.display()))?;
        crate::image_io::write_atomic(&p, &png)?;
        done.push(image.to_string());
    }
    Ok(done)
}

fn sheet(
    out: &Path,
    image: &str,
    orig: &RgbImage,
    rows: &[&Row],
    codecs: &[&str],
    targets: &[f64],
) -> RgbImage {
    let (tw, th) = (orig.width().max(64), orig.height());
    let scale = if tw >= 512 { 2 } else { 1 };
    let line = CELL * scale + 2;
    let max_chars = (tw / (CELL * scale)) as usize;
    // The name's lines, then bpp, PSNR and a possible "(no picture)".
    let label_lines = codecs
        .iter()
        .map(|c| font::wrap(c, max_chars).len())
        .max()
        .unwrap_or(1)
        + 3;
    let cell_h = th + MARGIN / 2 + label_lines as u32 * line + MARGIN;
    let header = line + MARGIN;
    let cols = codecs.len() as u32 + 1;
    let width = MARGIN + cols * (tw + MARGIN);
    let height = MARGIN + header + targets.len() as u32 * cell_h;
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    font::draw_text(
        &mut img,
        MARGIN as i64,
        MARGIN as i64,
        &format!("{image}: original and decoded, one row per target rate"),
        scale,
        INK,
    );
    for (ri, &t) in targets.iter().enumerate() {
        let y0 = MARGIN + header + ri as u32 * cell_h;
        let mut tile = |col: u32, pic: Option<&RgbImage>, lines: Vec<String>| {
            let x0 = MARGIN + col * (tw + MARGIN);
            match pic {
                Some(p) => image::imageops::replace(&mut img, p, x0 as i64, y0 as i64),
                None => {
                    for y in y0..y0 + th {
                        for x in x0..x0 + tw {
                            img.put_pixel(x, y, EMPTY);
                        }
                    }
                }
            }
            for (k, l) in lines.iter().enumerate() {
                let ly = y0 + th + MARGIN / 2 + k as u32 * line;
                font::draw_text(&mut img, x0 as i64, ly as i64, l, scale, INK);
            }
        };
        tile(
            0,
            Some(orig),
            vec!["original".into(), format!("target {} bpp", fmt_bpp(t))],
        );
        for (ci, codec) in codecs.iter().enumerate() {
            let row = rows
                .iter()
                .find(|r| r.codec == *codec && r.target_bpp.to_bits() == t.to_bits());
            let mut lines = font::wrap(codec, max_chars);
            let pic = match row {
                Some(r) => {
                    lines.push(format!("{:.4} bpp", r.bpp));
                    lines.push(format!("{:.2} dB", r.psnr));
                    load_rgb(&decoded_path(out, codec, t, image))
                }
                None => {
                    lines.push("(no row)".into());
                    None
                }
            };
            if row.is_some() && pic.is_none() {
                lines.push("(no picture)".into());
            }
            tile(ci as u32 + 1, pic.as_ref(), lines);
        }
    }
    img
}
