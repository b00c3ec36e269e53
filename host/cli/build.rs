//! Embeds the example plugins (built by `reyna-artifacts`) in the binary:
//! copies each component into OUT_DIR and writes `examples.rs`, a table of
//! `(name, include_bytes!(..))` that `reyna serve` registers on first start.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let mut table = String::from(
        "/// The example plugins, by manifest name.\npub const EXAMPLES: &[(&str, &[u8])] = &[\n",
    );
    for name in reyna_artifacts::examples() {
        let src = reyna_artifacts::plugin(name);
        let dst = out.join(format!("{name}.wasm"));
        if let Err(e) = std::fs::copy(&src, &dst) {
            // A missing component is a broken artifacts build; say which.
            println!(
                "cargo::error=cannot copy example plugin {}: {e}",
                src.display()
            );
            continue;
        }
        println!("cargo::rerun-if-changed={}", src.display());
        let _ = writeln!(
            table,
            "    ({name:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}.wasm\"))),"
        );
    }
    table.push_str("];\n");
    if let Err(e) = std::fs::write(out.join("examples.rs"), table) {
        println!("cargo::error=cannot write examples.rs: {e}");
    }
}
