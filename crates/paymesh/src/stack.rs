//! Finding or starting the private PostgreSQL and Redis for `paymesh dev`.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The repository root: the nearest folder above the current one with `infra/stack.sh`.
pub fn repo_root() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        if dir.join("infra/stack.sh").is_file() {
            return Some(dir);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Runs `infra/stack.sh up <name>` and returns the variables it prints
/// (`PAYMESH_DATABASE_URL`, `PAYMESH_REDIS_URL`, …).
pub fn ensure_up(root: &Path, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let script = root.join("infra/stack.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("up")
        .arg(name)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} up {name} failed",
        script.display()
    );
    Ok(parse_exports(&String::from_utf8_lossy(&out.stdout)))
}

/// `export A=1 B=2` lines to pairs.
pub fn parse_exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .flat_map(|rest| rest.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_parsed() {
        let v = parse_exports(
            "export PAYMESH_DATABASE_URL=postgres://x@127.0.0.1:1/p\nexport A=1 B=\"2\"\nnoise\n",
        );
        assert_eq!(v.len(), 3);
        assert_eq!(v[2], ("B".to_string(), "2".to_string()));
    }
}
