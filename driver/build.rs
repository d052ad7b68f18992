//! civ.sys's link setup. The KMDF build (feature `kmdf`) takes its own from
//! wdk-build, which runs only on Windows with the WDK (and on Linux in
//! scripts/kmdf-check.sh, from an edited copy), and puts the kernel's
//! libraries first ([`kmdf_link_order`]); the WDM build gets a kernel
//! driver's link arguments here, for rust-lld or link.exe alike.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "kmdf")]
    if let Err(e) = wdk_build::configure_wdk_binary_build() {
        panic!("wdk-build could not configure the KMDF build: {e:?}");
    }
    let msvc = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "msvc");
    let kmdf = std::env::var_os("CARGO_FEATURE_KMDF").is_some();
    if kmdf {
        kmdf_link_order();
    } else if msvc {
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
    if msvc {
        // Kernel-mode hardware-enforced stack protection (shadow stacks)
        // runs only drivers marked CET-compatible; civ's code keeps every
        // return address where a call put it (the stubs jump, never ret
        // to somewhere else). link.exe and lld-link both take this.
        println!("cargo::rustc-link-arg-cdylib=/CETCOMPAT");
    }
}

/// The libraries the KMDF image names before any other.
pub const KMDF_FIRST_LIBRARIES: [&str; 2] = ["WdfDriverEntry", "ntoskrnl"];

/// Binds the KMDF image's kernel routines to ntoskrnl.exe.
///
/// windows-sys' rlib holds ntdll.dll import members for RtlCopyUnicodeString,
/// DbgPrintEx, the Zw* routines and more, and rustc puts it before wdk-sys'
/// ntoskrnl.lib (or, with LTO, right after WdfDriverEntry.lib), so
/// FxDriverEntry's `__imp_RtlCopyUnicodeString` would bind to ntdll.dll and
/// the driver would not load. Named as civ's own libraries, WdfDriverEntry.lib
/// and then ntoskrnl.lib come right after civ's objects, ahead of every rlib:
/// link.exe looks for what a library member needs in that library and then
/// in the ones after it, and lld-link takes the first library that defines a
/// name, so both find ntoskrnl.lib first. (wdk-sys names both again later,
/// which changes nothing: the members needed are in by then.)
pub fn kmdf_link_order() {
    for lib in KMDF_FIRST_LIBRARIES {
        println!("cargo::rustc-link-lib={lib}");
    }
}
