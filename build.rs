//! Records the git revision and the compiler version for `wolkvox_exporter_build_info`.

use std::process::Command;

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let revision = std::env::var("WOLKVOX_REVISION")
        .ok()
        .or_else(|| output_of("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output_of(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WOLKVOX_REVISION={revision}");
    println!("cargo:rustc-env=WOLKVOX_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=WOLKVOX_REVISION");
    // Where git keeps HEAD and the branches: in a worktree `.git` is a file and they live
    // elsewhere, and a path that does not exist would rerun this script (and rebuild) every time.
    if let Some(git_dir) = output_of("git", &["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
    }
    if let Some(common_dir) = output_of("git", &["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={common_dir}/refs/heads");
    }
}
