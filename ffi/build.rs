//! The shared library's SONAME: programs linked against `libtidings.so`
//! record `libtidings.so.0` (the ABI's major version), which `make install`
//! lays as a link to the versioned file, so a future incompatible ABI can be
//! installed beside this one.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtidings.so.0");
    }
}
