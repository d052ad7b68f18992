//! The live inventory on Windows: the services of driver type and
//! HvciDisallowedImages from the registry (windows-registry), the Driver
//! Store under `%SystemRoot%`, and the modules loaded now
//! (K32EnumDeviceDrivers / K32GetDeviceDriverFileNameW).

use super::inventory::Inventory;
use super::layout::Layout;
use super::registry::{CI_KEY, HVCI_DISALLOWED, Registry, SERVICES, Service};
use std::path::PathBuf;
use windows_registry::LOCAL_MACHINE;
use windows_sys::Win32::System::ProcessStatus::{
    K32EnumDeviceDrivers, K32GetDeviceDriverFileNameW,
};

/// The control set in force.
const CURRENT: &str = "SYSTEM\\CurrentControlSet";

/// This machine's inventory.
pub fn inventory() -> Result<Inventory, String> {
    let windows = std::env::var_os("SystemRoot")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("C:\\Windows"));
    let root = windows
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("C:\\"));
    let layout = Layout { root, windows };
    let registry = registry()?;
    Ok(Inventory::gather(layout, registry, Some(loaded_modules())))
}

/// The services of driver type and HvciDisallowedImages.
fn registry() -> Result<Registry, String> {
    let path = format!("{CURRENT}\\{SERVICES}");
    let services = LOCAL_MACHINE
        .open(&path)
        .map_err(|e| format!("cannot open HKLM\\{path}: {e}"))?;
    let mut out = Registry {
        source: format!("HKLM\\{CURRENT}"),
        ..Registry::default()
    };
    let names = services
        .keys()
        .map_err(|e| format!("cannot list HKLM\\{path}: {e}"))?;
    for name in names {
        let Ok(key) = services.open(&name) else {
            continue;
        };
        let s = Service {
            service_type: key.get_u32("Type").unwrap_or(0),
            start: key.get_u32("Start").ok(),
            group: key.get_string("Group").ok().filter(|g| !g.is_empty()),
            image_path: key.get_string("ImagePath").ok(),
            name,
        };
        if s.is_driver() {
            out.services.push(s);
        }
    }
    out.services.sort_by_key(|s| s.name.to_ascii_lowercase());
    if let Ok(ci) = LOCAL_MACHINE.open(format!("{CURRENT}\\{CI_KEY}")) {
        out.disallowed = ci.get_multi_string(HVCI_DISALLOWED).unwrap_or_default();
    }
    Ok(out)
}

/// The file names of the kernel modules loaded now.
fn loaded_modules() -> Vec<String> {
    let mut bases: Vec<*mut core::ffi::c_void> = vec![core::ptr::null_mut(); 1024];
    let mut needed = 0u32;
    loop {
        let bytes = (bases.len() * size_of::<*mut core::ffi::c_void>()) as u32;
        // SAFETY: the buffer holds `bytes` bytes of pointers; `needed` is a
        // valid out pointer.
        let ok = unsafe { K32EnumDeviceDrivers(bases.as_mut_ptr(), bytes, &mut needed) };
        if ok == 0 {
            return Vec::new();
        }
        if needed <= bytes {
            break;
        }
        bases.resize(
            needed as usize / size_of::<*mut core::ffi::c_void>() + 16,
            core::ptr::null_mut(),
        );
    }
    let count = needed as usize / size_of::<*mut core::ffi::c_void>();
    let mut names = Vec::new();
    for &base in bases.iter().take(count) {
        let mut buf = [0u16; 1024];
        // SAFETY: `buf` holds `buf.len()` UTF-16 units; the base is one the
        // system returned (a stale one only makes the call fail).
        let n = unsafe { K32GetDeviceDriverFileNameW(base, buf.as_mut_ptr(), buf.len() as u32) };
        if n > 0
            && let Some(units) = buf.get(..n as usize)
        {
            names.push(String::from_utf16_lossy(units));
        }
    }
    names
}
