//! Text on 8-bit RGB pictures with the public-domain 8×8 bitmap font of `font8x8` (basic
//! Latin: every printable ASCII character). A leaf: it knows nothing of the harness.
use image::{Rgb, RgbImage};

/// Glyph cell size at scale 1 (pixels).
pub const CELL: u32 = 8;

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a `scale × scale`
/// square; pixels outside the picture are clipped. Characters outside ASCII draw as `?`.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: Rgb<u8>) {
    let s = scale.max(1) as i64;
    for (k, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let x0 = x + k as i64 * CELL as i64 * s;
        for (gy, row) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if row & (1 << gx) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let (px, py) = (x0 + gx as i64 * s + dx, y + gy as i64 * s + dy);
                        if px >= 0
                            && py >= 0
                            && (px as u32) < img.width()
                            && (py as u32) < img.height()
                        {
                            img.put_pixel(px as u32, py as u32, color);
                        }
                    }
                }
            }
        }
    }
}

/// Splits `text` into lines of at most `max_chars` characters (at least 1), breaking at
/// the last `-`, `@`, `_`, `/` or space within the limit when there is one.
pub fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    let mut out = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while rest.len() > max {
        let cut = rest[..max]
            .iter()
            .rposition(|c| matches!(c, '-' | '@' | '_' | '/' | ' '))
            .map(|i| i + 1)
            .filter(|&i| i >= max / 2)
            .unwrap_or(max);
        out.push(
            rest[..cut]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string(),
        );
        rest.drain(..cut);
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest.into_iter().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_draw_inside_their_cells() {
        let mut img = RgbImage::from_pixel(40, 10, Rgb([255, 255, 255]));
        draw_text(&mut img, 1, 1, "A.b", 1, Rgb([0, 0, 0]));
        let dark = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (0..10).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y)[0] == 0)
                .count()
        };
        assert!(dark(1, 9) > 10, "A");
        assert!(dark(9, 17) > 0 && dark(9, 17) < 8, "'.' is a few pixels");
        assert!(dark(17, 25) > 10, "b");
        assert_eq!(dark(25, 40), 0, "nothing after the text");
    }

    #[test]
    fn wrap_breaks_at_separators() {
        assert_eq!(
            wrap("diffc-f@photo-unet-m2-wiener-bands", 16),
            vec!["diffc-f@photo-", "unet-m2-wiener-", "bands"]
        );
        assert_eq!(wrap("jpeg", 16), vec!["jpeg"]);
        assert_eq!(wrap("", 5), vec![""]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }
}
