//! Compiles the SQLite functions that are C varargs (which stable Rust
//! cannot define), exports them, and gives the library the soname
//! programs link against.

fn main() {
    for f in [
        "c/printf.c",
        "c/config.c",
        "include/sqlite3.h",
        "exports.map",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    cc::Build::new()
        .files(["c/printf.c", "c/config.c"])
        .include("include")
        .warnings(true)
        .extra_warnings(true)
        .link_lib_modifier("+whole-archive")
        .compile("sqldvarargs");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsqlite3.so.0");
}
