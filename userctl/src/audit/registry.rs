//! What the audit reads from the registry, wherever it comes from (the live
//! registry on Windows, or a SYSTEM hive file offline): the services of
//! driver type and the CI key's HvciDisallowedImages.

use serde::Serialize;

/// SERVICE_KERNEL_DRIVER.
pub const KERNEL_DRIVER: u32 = 0x1;
/// SERVICE_FILE_SYSTEM_DRIVER.
pub const FILE_SYSTEM_DRIVER: u32 = 0x2;
/// SERVICE_RECOGNIZER_DRIVER.
pub const RECOGNIZER_DRIVER: u32 = 0x8;

/// The services key under a control set.
pub const SERVICES: &str = "Services";
/// The CI key under a control set, and its value.
pub const CI_KEY: &str = "Control\\CI";
/// The REG_MULTI_SZ of images HVCI must not load.
pub const HVCI_DISALLOWED: &str = "HvciDisallowedImages";

/// One service key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The key's name.
    pub name: String,
    /// Type.
    pub service_type: u32,
    /// Start: 0 boot, 1 system, 2 automatic, 3 demand, 4 disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    /// Group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// ImagePath, as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_path: Option<String>,
}

impl Service {
    /// A kernel, file-system or recognizer driver (not a Win32 service).
    pub fn is_driver(&self) -> bool {
        self.service_type & (KERNEL_DRIVER | FILE_SYSTEM_DRIVER | RECOGNIZER_DRIVER) != 0
            && self.service_type & 0x30 == 0
    }

    /// The image path, or the default a driver without one loads from.
    pub fn image(&self) -> String {
        self.image_path
            .clone()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| format!("System32\\drivers\\{}.sys", self.name))
    }
}

/// The name `sc qc` shows for a start type.
pub fn start_name(start: Option<u32>) -> &'static str {
    match start {
        Some(0) => "boot",
        Some(1) => "system",
        Some(2) => "auto",
        Some(3) => "demand",
        Some(4) => "disabled",
        Some(_) => "other",
        None => "-",
    }
}

/// The registry's part of the inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    /// Where it was read (the hive file, or `HKLM\SYSTEM`), and the control set.
    pub source: String,
    /// The services of driver type.
    pub services: Vec<Service>,
    /// HvciDisallowedImages entries.
    pub disallowed: Vec<String>,
}
