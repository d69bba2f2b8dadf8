//! Which Meridian source the run measured: the commit, and whether the working tree had
//! changes, since the binary is built from whatever is checked out.

use std::path::Path;
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

/// `commit abc1234`, with a note when Meridian's sources differ from it; `None` outside a
/// git checkout.
pub fn describe() -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let commit = git(&root, &["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&root, &["status", "--porcelain", "--", "src"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("commit {commit}, with uncommitted changes under src/")
    } else {
        format!("commit {commit}")
    })
}
