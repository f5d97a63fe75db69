//! include/tidings.h must be exactly what cbindgen generates from ffi/src.
//! `make header` (TIDINGS_UPDATE_HEADER=1) rewrites it.

use std::path::Path;

#[test]
fn the_committed_header_is_current() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(crate_dir).join("cbindgen.toml"))
        .expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let header = Path::new(crate_dir).join("../include/tidings.h");
    if std::env::var_os("TIDINGS_UPDATE_HEADER").is_some() {
        std::fs::write(&header, &generated).expect("write include/tidings.h");
        return;
    }
    let committed = std::fs::read(&header).unwrap_or_default();
    assert!(
        committed == generated,
        "include/tidings.h differs from what ffi/src generates: run `make header` and commit it"
    );
}
