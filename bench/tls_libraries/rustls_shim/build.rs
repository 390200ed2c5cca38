// Copies rustls-ffi's C header (its build script says where it is) to
// CHATWS_RUSTLS_INCLUDE_DIR, where the C++ tool includes it from.
fn main() {
    println!("cargo:rerun-if-env-changed=CHATWS_RUSTLS_INCLUDE_DIR");
    let (Ok(from), Ok(to)) = (std::env::var("DEP_RUSTLS_FFI_INCLUDE"), std::env::var("CHATWS_RUSTLS_INCLUDE_DIR")) else {
        return;
    };
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(format!("{from}/rustls.h"), format!("{to}/rustls.h")).unwrap();
}
