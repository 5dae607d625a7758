//! Reading and writing images; the one place that knows about pixel formats.
//!
//! Inside diffc an image is planar CHW `f32` in [-1, 1] (`v / 127.5 - 1`).
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::Path;

/// Largest accepted side and pixel count: refuses absurd sizes before allocating.
pub const MAX_SIDE: u32 = 16384;
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Channels × height × width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn pixels(&self) -> usize {
        self.h * self.w
    }
}

/// A planar image or latent, values nominally in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Image {
    pub fn zeros(shape: Shape) -> Self {
        Image {
            shape,
            data: vec![0.0; shape.len()],
        }
    }

    /// From interleaved 8-bit RGB.
    pub fn from_rgb8(w: usize, h: usize, rgb: &[u8]) -> Self {
        let shape = Shape::new(3, h, w);
        let mut data = vec![0.0f32; shape.len()];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = px[c] as f32 / 127.5 - 1.0;
            }
        }
        Image { shape, data }
    }

    /// To interleaved 8-bit RGB (rounded, clamped). Needs 3 channels.
    pub fn to_rgb8(&self) -> Vec<u8> {
        let Shape { c, h, w } = self.shape;
        assert_eq!(c, 3, "to_rgb8 needs 3 channels");
        let mut out = vec![0u8; h * w * 3];
        for i in 0..h * w {
            for ch in 0..3 {
                out[i * 3 + ch] = to_u8(self.data[ch * h * w + i]);
            }
        }
        out
    }

    /// Quantise to the 8-bit grid in place (what a decoder writes to PNG).
    pub fn quantize_u8(&mut self) {
        for v in &mut self.data {
            *v = to_u8(*v) as f32 / 127.5 - 1.0;
        }
    }
}

/// [-1, 1] → 0..=255 with rounding and clamping.
pub fn to_u8(v: f32) -> u8 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// Loads a PNG/JPEG (path, or `-` for stdin) as 8-bit RGB.
///
/// Grayscale is expanded to RGB, 16-bit is rounded to 8-bit, and alpha is refused
/// unless fully opaque (a realism codec has no meaning for transparency).
pub fn load(path: &Path) -> Result<Image> {
    let bytes = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading image from stdin")?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    decode_bytes(&bytes).with_context(|| format!("decoding image {}", path.display()))
}

/// Decodes image bytes, with the size checks of [`load`].
pub fn decode_bytes(bytes: &[u8]) -> Result<Image> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .context("unrecognised image format")?;
    let (w, h) = reader
        .into_dimensions()
        .context("unreadable image header")?;
    check_size(w, h)?;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8 + (1 << 20));
    reader.limits(limits);
    let img = reader
        .decode()
        .context("corrupt or unsupported image data")?;
    if img.color().has_alpha() {
        let rgba = img.to_rgba16();
        if rgba.pixels().any(|p| p.0[3] != u16::MAX) {
            bail!(
                "image has transparency (alpha channel): flatten it first; diffc codes opaque RGB only"
            );
        }
    }
    let rgb = img.to_rgb8();
    Ok(Image::from_rgb8(w as usize, h as usize, rgb.as_raw()))
}

/// Refuses empty or absurdly large images.
pub fn check_size(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("image is empty ({w}×{h})");
    }
    if w > MAX_SIDE || h > MAX_SIDE || (w as u64) * (h as u64) > MAX_PIXELS {
        bail!("image {w}×{h} is too large (max side {MAX_SIDE}, max {MAX_PIXELS} pixels)");
    }
    Ok(())
}

/// Encodes an image as PNG bytes.
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    let Shape { c, h, w } = img.shape;
    if c != 3 {
        bail!("can only write 3-channel images, got {c}");
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &img.to_rgb8(),
            w as u32,
            h as u32,
            image::ExtendedColorType::Rgb8,
        )
        .context("PNG encoding")?;
    Ok(out)
}

/// Writes a PNG (path, or `-` for stdout); atomically for paths.
pub fn save_png(img: &Image, path: &Path) -> Result<()> {
    let bytes = encode_png(img)?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary file and rename, so no reader ever sees a
/// half-written output; `-` writes to stdout. The temporary file is registered with
/// [`crate::interrupt`], so a SIGINT or SIGTERM meanwhile removes it (and never comes between
/// the rename and the unregistering): an interrupted command leaves neither the output nor a
/// stray temporary file.
///
/// Test hook: with `DIFFC_TEST_WRITE_PAUSE_MS=N` in the environment, the write pauses N ms
/// between the finished temporary file and the rename (tests interrupt it there).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (mut tmp, reg) = crate::interrupt::critical(|| -> Result<_> {
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let reg = crate::interrupt::register(tmp.path());
        Ok((tmp, reg))
    })?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all().ok();
    if let Some(ms) = std::env::var("DIFFC_TEST_WRITE_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    crate::interrupt::critical(move || {
        let r = tmp.persist(path);
        drop(reg);
        r
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

use image::ImageEncoder;
