//! Which Meridian source the run measured: the commit of the checkout the binary was built
//! in, and whether that checkout's sources had changes, since the binary is built from
//! whatever was checked out there.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The checkout `binary` sits in (`target/release/meridian` of some clone), else this
/// benchmark's own workspace.
fn checkout(binary: &Path) -> PathBuf {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    binary
        .canonicalize()
        .ok()
        .and_then(|b| {
            let dir = b.parent()?.to_path_buf();
            git(&dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from)
        })
        .unwrap_or(own)
}

/// `commit abc1234`, with a note when Meridian's sources differ from it, and the checkout
/// when it is not this one; `None` outside a git checkout.
pub fn describe(binary: &Path) -> Option<String> {
    let root = checkout(binary);
    let commit = git(&root, &["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&root, &["status", "--porcelain", "--", "src"]).is_some_and(|s| !s.is_empty());
    let own = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .ok();
    let elsewhere = match (root.canonicalize().ok(), own) {
        (Some(r), Some(o)) if r != o => format!(", checkout {}", r.display()),
        _ => String::new(),
    };
    Some(if dirty {
        format!("commit {commit}{elsewhere}, with uncommitted changes under src/")
    } else {
        format!("commit {commit}{elsewhere}")
    })
}
