//! Gives `libbxflow.so` its SONAME, `libbxflow.so.<ABI>`, with the ABI
//! version read from the header (its one home), so that programs linked
//! against one ABI never load a library of another.

fn main() {
    let header = "include/bxflow.h";
    println!("cargo:rerun-if-changed={header}");
    let text = std::fs::read_to_string(header).expect("capi/include/bxflow.h");
    let abi = text
        .lines()
        .find_map(|l| l.strip_prefix("#define BXFLOW_ABI_VERSION "))
        .map(|v| v.trim().to_string())
        .expect("BXFLOW_ABI_VERSION in the header");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbxflow.so.{abi}");
    }
}
