//! The build script of every function (`build` in its Cargo.toml): a
//! release build for Linux is linked without unwind tables
//! (`no-unwind-tables.ld`, beside this file, says why). Other builds,
//! tests among them, keep them: there a panic unwinds.

use std::env;
use std::path::PathBuf;

fn main() {
    let script =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../no-unwind-tables.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
