//! The machine's drivers, gathered from the three places Windows keeps
//! them: the services of driver type (registry), the Driver Store
//! packages, and (live) the modules loaded now. Each driver image is one
//! [`Candidate`], with every service that loads it, the package it came
//! from, and whether it is loaded.

use super::layout::Layout;
use super::registry::{Registry, Service};
use super::store::{self, Package};
use std::path::{Path, PathBuf};

/// Everything the audit found on the machine, before the files are read.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The installation's folders.
    pub layout: Layout,
    /// Services and HvciDisallowedImages.
    pub registry: Registry,
    /// Driver Store packages.
    pub packages: Vec<Package>,
    /// The modules loaded now (live only), as the system names them.
    pub loaded: Option<Vec<String>>,
    /// What could not be read, for the report.
    pub notes: Vec<String>,
}

/// One driver image and how the machine knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// The file's name.
    pub name: String,
    /// The file (it may not exist: a service can point at a missing file).
    pub path: PathBuf,
    /// The services that load it.
    pub services: Vec<Service>,
    /// The Driver Store package it belongs to (index into the packages).
    pub package: Option<usize>,
    /// Loaded now (live only).
    pub loaded: Option<bool>,
    /// Where it was found: `service`, `driver-store`, `loaded`.
    pub sources: Vec<&'static str>,
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn same_path(a: &Path, b: &Path) -> bool {
    a.to_string_lossy()
        .eq_ignore_ascii_case(&b.to_string_lossy())
}

impl Inventory {
    /// Gathers the inventory: the registry given, the Driver Store read
    /// from the layout.
    pub fn gather(layout: Layout, registry: Registry, loaded: Option<Vec<String>>) -> Inventory {
        let mut notes = Vec::new();
        let packages = store::read(&layout, &mut notes);
        Inventory {
            layout,
            registry,
            packages,
            loaded,
            notes,
        }
    }

    /// The driver images, each once: the services' images first (by
    /// service name), then the Driver Store's images no service loads,
    /// then loaded modules known nowhere else.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for s in &self.registry.services {
            let path = self.layout.resolve_image(&s.image());
            match out.iter_mut().find(|c| same_path(&c.path, &path)) {
                Some(c) => c.services.push(s.clone()),
                None => out.push(Candidate {
                    name: file_name(&path),
                    path,
                    services: vec![s.clone()],
                    sources: vec!["service"],
                    ..Candidate::default()
                }),
            }
        }
        for (i, p) in self.packages.iter().enumerate() {
            for image in &p.images {
                let name = file_name(image);
                // The service runs the store's copy, or a copy the INF
                // installed elsewhere (its AddService names the service and
                // the binary).
                let installed = out.iter().position(|c| {
                    same_path(&c.path, image)
                        || c.services.iter().any(|s| {
                            p.services.iter().any(|is| {
                                is.name.eq_ignore_ascii_case(&s.name)
                                    && is
                                        .binary_name()
                                        .is_some_and(|b| b.eq_ignore_ascii_case(&name))
                            })
                        }) && c.name.eq_ignore_ascii_case(&name)
                });
                match installed {
                    Some(at) => {
                        let c = &mut out[at];
                        c.package.get_or_insert(i);
                        if !c.sources.contains(&"driver-store") {
                            c.sources.push("driver-store");
                        }
                    }
                    None => out.push(Candidate {
                        name,
                        path: image.clone(),
                        package: Some(i),
                        sources: vec!["driver-store"],
                        ..Candidate::default()
                    }),
                }
            }
        }
        if let Some(loaded) = &self.loaded {
            for c in out.iter_mut() {
                c.loaded = Some(false);
            }
            for m in loaded {
                let path = self.layout.resolve_image(m);
                let name = file_name(&path);
                // A loaded module is the service's image of that name
                // (the system reports the path it loaded from).
                let at = out
                    .iter()
                    .position(|c| same_path(&c.path, &path))
                    .or_else(|| {
                        out.iter().position(|c| {
                            !c.services.is_empty() && c.name.eq_ignore_ascii_case(&name)
                        })
                    });
                match at {
                    Some(at) => {
                        let c = &mut out[at];
                        c.loaded = Some(true);
                        if !c.sources.contains(&"loaded") {
                            c.sources.push("loaded");
                        }
                    }
                    None => out.push(Candidate {
                        name,
                        path,
                        loaded: Some(true),
                        sources: vec!["loaded"],
                        ..Candidate::default()
                    }),
                }
            }
        }
        out
    }
}
