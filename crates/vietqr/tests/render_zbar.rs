//! Rendered PNGs must scan: decode them with `zbarimg` (Debian package zbar-tools).
//!
//! Fails when zbarimg is missing, unless PAYMESH_SKIP_ZBAR=1.

use std::path::PathBuf;
use std::process::Command;

use vietqr::{VietQrBuilder, render_png, render_svg};

const VECTOR: &str = "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN62340107NPS68690819thanh toan don hang63042E2E";

/// True when zbarimg can run; panics with instructions when it cannot,
/// unless PAYMESH_SKIP_ZBAR=1.
fn zbarimg_available() -> bool {
    match Command::new("zbarimg").arg("--version").output() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("PAYMESH_SKIP_ZBAR").as_deref() == Ok("1") {
                eprintln!("zbarimg not runnable ({e}); skipped because PAYMESH_SKIP_ZBAR=1");
                false
            } else {
                panic!(
                    "zbarimg is not installed or not runnable ({e}). Install it with \
                     `apt-get update && apt-get install -y zbar-tools`, \
                     or set PAYMESH_SKIP_ZBAR=1 to skip this test."
                );
            }
        }
    }
}

/// Removes the file when dropped, also when an assertion fails.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scan(payload: &str, module_px: u32, name: &str) -> String {
    let png = render_png(payload, module_px).expect("renders");
    let file = TempFile(std::env::temp_dir().join(format!(
        "vietqr-{}-{name}-{module_px}.png",
        std::process::id()
    )));
    std::fs::write(&file.0, png).expect("write temp PNG");
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&file.0)
        .output()
        .expect("run zbarimg");
    assert!(
        out.status.success(),
        "zbarimg failed on {} ({}): {}",
        file.0.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("zbarimg prints UTF-8");
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

#[test]
fn png_of_vector_scans_back_with_zbarimg() {
    if !zbarimg_available() {
        return;
    }
    for module_px in [2, 3, 8] {
        assert_eq!(scan(VECTOR, module_px, "vector"), VECTOR);
    }
}

#[test]
fn png_with_vietnamese_text_scans_back_with_zbarimg() {
    if !zbarimg_available() {
        return;
    }
    let payload = VietQrBuilder::new("970415", "0011001932418")
        .amount_vnd(120_000)
        .merchant_name("Cửa hàng Bánh mì")
        .merchant_city("Hà Nội")
        .purpose("ủng hộ lũ lụt")
        .build()
        .expect("builds");
    assert_eq!(scan(&payload, 3, "viet"), payload);
}

#[test]
fn svg_has_quiet_zone_and_modules() {
    let svg = render_svg(VECTOR).expect("renders");
    // n × n modules, n = symbol width + 2 × 4 quiet modules (version ≥ 2 at
    // level M for 145 characters: symbol width ≥ 25).
    let view_box = svg
        .split(r#"viewBox="0 0 "#)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("viewBox");
    let n: usize = view_box.parse().expect("viewBox size");
    assert!(n >= 25 + 8 && (n - 8 - 17) % 4 == 0, "bad symbol size {n}");
    // Nothing is drawn in the quiet zone: every run starts at x ≥ 4 and y ≥ 4.
    let d = svg
        .split(r#" d=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("path data");
    for cmd in d.split('M').filter(|c| !c.is_empty()) {
        // "X YhRv1h-Rz": a run of R dark modules from (X, Y).
        let parse = |t: &str| t.parse::<usize>().expect("number");
        let (x, rest) = cmd.split_once(' ').expect("x");
        let (y, rest) = rest.split_once('h').expect("y");
        let (run, _) = rest.split_once('v').expect("run");
        let (x, y, run) = (parse(x), parse(y), parse(run));
        assert!(x >= 4 && y >= 4 && x + run <= n - 4 && y < n - 4, "{cmd}");
    }
}
