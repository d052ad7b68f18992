//! Link arguments of a kernel driver for the WDM build (the KMDF build on
//! Windows gets its own from wdk-build).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let msvc = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "msvc");
    let kmdf = std::env::var_os("CARGO_FEATURE_KMDF").is_some();
    if msvc && !kmdf {
        for arg in [
            "/SUBSYSTEM:NATIVE",
            "/DRIVER",
            "/ENTRY:DriverEntry",
            "/NODEFAULTLIB",
            "/RELEASE",
        ] {
            println!("cargo::rustc-link-arg-cdylib={arg}");
        }
    }
}
