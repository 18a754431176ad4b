//! bpf-linker is an undeclared dependency of this crate: tell cargo to rebuild when it
//! changes (the same trick as aya-template).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
