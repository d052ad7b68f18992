//! The KMDF build takes its configuration from wdk-build (which runs only
//! on Windows with the WDK); the WDM build gets a kernel driver's link
//! arguments here, for rust-lld or link.exe alike.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "kmdf")]
    if let Err(e) = wdk_build::configure_wdk_binary_build() {
        panic!("wdk-build could not configure the KMDF build: {e:?}");
    }
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
