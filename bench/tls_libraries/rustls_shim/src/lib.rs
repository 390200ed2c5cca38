// Re-exports rustls-ffi's C functions, so that they are in this static library.
pub use rustls_ffi::*;
