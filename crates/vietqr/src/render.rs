//! Rendering a payload as a QR code: error correction level M, a four-module
//! quiet zone, dark modules black on white.
//!
//! The `qrcode` crate computes the module matrix; PNG bytes are written with
//! the `png` crate (1-bit greyscale) and SVG text by hand, so neither needs
//! `qrcode`'s optional `image` or `svg` features.

use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol, as ISO/IEC 18004 requires.
pub const QUIET_ZONE: usize = 4;
/// Largest accepted module size in pixels (keeps images under ~12,000 px square).
pub const MAX_MODULE_PX: u32 = 64;

/// Why a payload could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The payload does not fit in a QR code at level M.
    #[error("payload does not fit in a QR code at error correction level M: {0}")]
    Qr(QrError),
    /// `module_px` was 0 or above [`MAX_MODULE_PX`].
    #[error("module size must be 1..={MAX_MODULE_PX} pixels, got {0}")]
    ModuleSize(u32),
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The module matrix with its quiet zone: `true` is dark.
struct Matrix {
    size: usize,
    dark: Vec<bool>,
}

impl Matrix {
    fn new(payload: &str) -> Result<Self, RenderError> {
        let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
            .map_err(RenderError::Qr)?;
        let inner = code.width();
        let size = inner + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        for (i, color) in code.to_colors().into_iter().enumerate() {
            let (row, col) = (i / inner + QUIET_ZONE, i % inner + QUIET_ZONE);
            if let Some(cell) = dark.get_mut(row * size + col) {
                *cell = color == Color::Dark;
            }
        }
        Ok(Self { size, dark })
    }

    fn is_dark(&self, row: usize, col: usize) -> bool {
        self.dark
            .get(row * self.size + col)
            .copied()
            .unwrap_or(false)
    }
}

/// A PNG (1-bit greyscale) of `payload`, each module `module_px` pixels square.
pub fn render_png(payload: &str, module_px: u32) -> Result<Vec<u8>, RenderError> {
    if !(1..=MAX_MODULE_PX).contains(&module_px) {
        return Err(RenderError::ModuleSize(module_px));
    }
    let matrix = Matrix::new(payload)?;
    let scale = module_px as usize;
    let side = matrix.size * scale;
    let side_u32 = u32::try_from(side).map_err(|_| RenderError::ModuleSize(module_px))?;

    // Each pixel row packed 8 pixels per byte, most significant bit first;
    // in greyscale a 1 bit is white.
    let row_bytes = side.div_ceil(8);
    let mut pixels = Vec::with_capacity(row_bytes * side);
    for row in 0..matrix.size {
        let mut packed = vec![0u8; row_bytes];
        for x in 0..side {
            if !matrix.is_dark(row, x / scale) {
                if let Some(byte) = packed.get_mut(x / 8) {
                    *byte |= 0x80 >> (x % 8);
                }
            }
        }
        for _ in 0..scale {
            pixels.extend_from_slice(&packed);
        }
    }

    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// An SVG of `payload`: one unit per module, drawn 8 px per module by default.
pub fn render_svg(payload: &str) -> Result<String, RenderError> {
    let matrix = Matrix::new(payload)?;
    let n = matrix.size;
    let mut path = String::new();
    for row in 0..n {
        let mut col = 0;
        while col < n {
            if matrix.is_dark(row, col) {
                let start = col;
                while col < n && matrix.is_dark(row, col) {
                    col += 1;
                }
                let run = col - start;
                path.push_str(&format!("M{start} {row}h{run}v1h-{run}z"));
            } else {
                col += 1;
            }
        }
    }
    let px = n * 8;
    Ok(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" "#,
            r#"width="{px}" height="{px}" viewBox="0 0 {n} {n}" shape-rendering="crispEdges">"#,
            r##"<rect width="{n}" height="{n}" fill="#ffffff"/>"##,
            r##"<path fill="#000000" d="{path}"/></svg>"##,
            "\n"
        ),
        px = px,
        n = n,
        path = path
    ))
}

/// `payload` as text for a terminal, two module rows per line in Unicode half blocks, light
/// modules drawn (as `qrencode -t UTF8` does: for a dark terminal background).
pub fn render_text(payload: &str) -> Result<String, RenderError> {
    let matrix = Matrix::new(payload)?;
    let n = matrix.size;
    let mut out = String::with_capacity((n + 1) * n.div_ceil(2) * 3);
    for row in (0..n).step_by(2) {
        for col in 0..n {
            let top = !matrix.is_dark(row, col);
            let bottom = row + 1 < n && !matrix.is_dark(row + 1, col);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_two_module_rows_per_line_and_a_light_quiet_zone() {
        let text = render_text("hello").unwrap();
        let n = Matrix::new("hello").unwrap().size;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == n));
        // The quiet zone is light: the first line is all full blocks.
        assert!(lines[0].chars().all(|c| c == '█'));
    }

    #[test]
    fn quiet_zone_is_light_and_symbol_has_finder() {
        let m = Matrix::new("hello").unwrap();
        // Version 1 is 21 modules wide.
        assert_eq!(m.size, 21 + 2 * QUIET_ZONE);
        for i in 0..m.size {
            for q in 0..QUIET_ZONE {
                assert!(!m.is_dark(q, i) && !m.is_dark(i, q));
                assert!(!m.is_dark(m.size - 1 - q, i) && !m.is_dark(i, m.size - 1 - q));
            }
        }
        // Top-left finder pattern corner.
        assert!(m.is_dark(QUIET_ZONE, QUIET_ZONE));
    }

    #[test]
    fn png_and_svg_are_well_formed() {
        let png = render_png("hello", 3).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = render_svg("hello").unwrap();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r#"viewBox="0 0 29 29""#));
    }

    #[test]
    fn bad_module_size_and_oversized_payload_are_errors() {
        assert!(matches!(
            render_png("x", 0),
            Err(RenderError::ModuleSize(0))
        ));
        assert!(matches!(
            render_png("x", MAX_MODULE_PX + 1),
            Err(RenderError::ModuleSize(_))
        ));
        let huge = "9".repeat(8000);
        assert!(matches!(render_svg(&huge), Err(RenderError::Qr(_))));
    }
}
