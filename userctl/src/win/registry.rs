//! civ's Parameters key through the `windows-registry` crate: read raw (the
//! engine's parser judges the values), write what `enable` decided, remove
//! what `disable` / `reset` remove.

use crate::control::host::{
    Clear, ERROR_ACCESS_DENIED, HostError, PARAMETERS_KEY, ParamValues, RawParams, SERVICE_KEY,
};
use windows_registry::{Key, LOCAL_MACHINE};
use windows_result::Error;

/// ERROR_FILE_NOT_FOUND: no such key or value.
const ERROR_FILE_NOT_FOUND: u32 = 2;

/// The Win32 error inside a registry HRESULT (0x8007xxxx).
fn win32(e: &Error) -> u32 {
    let h = e.code().0 as u32;
    if h & 0xFFFF_0000 == 0x8007_0000 {
        h & 0xFFFF
    } else {
        h
    }
}

fn fail(what: &str, path: &str, e: &Error) -> HostError {
    match win32(e) {
        ERROR_ACCESS_DENIED => HostError::AccessDenied,
        code => HostError::Os {
            what: format!("{what} HKLM\\{path}"),
            code,
        },
    }
}

/// Opens a key; `None` when it does not exist.
fn open(path: &str, write: bool) -> Result<Option<Key>, HostError> {
    let mut options = LOCAL_MACHINE.options();
    options.read();
    if write {
        options.write();
    }
    match options.open(path) {
        Ok(k) => Ok(Some(k)),
        Err(e) if win32(&e) == ERROR_FILE_NOT_FOUND => Ok(None),
        Err(e) => Err(fail("cannot open", path, &e)),
    }
}

/// Does the service `civ` exist (its key has a Type or an ImagePath)?
/// `enable` may have created the key with only Parameters under it.
pub fn service_installed() -> Result<bool, HostError> {
    Ok(open(SERVICE_KEY, false)?
        .is_some_and(|k| k.get_type("Type").is_ok() || k.get_type("ImagePath").is_ok()))
}

fn raw(key: &Key, name: &str) -> Result<Option<(u32, Vec<u8>)>, HostError> {
    match key.get_value(name) {
        Ok(v) => Ok(Some((u32::from(v.ty()), v.to_vec()))),
        Err(e) if win32(&e) == ERROR_FILE_NOT_FOUND => Ok(None),
        Err(e) => Err(fail(&format!("cannot read {name} of"), PARAMETERS_KEY, &e)),
    }
}

/// The three values, raw; all `None` when the key does not exist.
pub fn read_params() -> Result<RawParams, HostError> {
    let Some(key) = open(PARAMETERS_KEY, false)? else {
        return Ok(RawParams::default());
    };
    Ok(RawParams {
        level: raw(&key, "VerifyDriverLevel")?,
        drivers: raw(&key, "VerifyDrivers")?,
        action: raw(&key, "ViolationAction")?,
    })
}

/// Creates the key if needed and writes the three values.
pub fn write_params(v: &ParamValues) -> Result<(), HostError> {
    let key = LOCAL_MACHINE
        .create(PARAMETERS_KEY)
        .map_err(|e| fail("cannot create", PARAMETERS_KEY, &e))?;
    fn written(name: &'static str) -> impl Fn(Error) -> HostError {
        move |e| fail(&format!("cannot write {name} to"), PARAMETERS_KEY, &e)
    }
    key.set_u32("VerifyDriverLevel", v.level)
        .map_err(written("VerifyDriverLevel"))?;
    key.set_string("VerifyDrivers", &v.drivers)
        .map_err(written("VerifyDrivers"))?;
    key.set_u32("ViolationAction", v.action)
        .map_err(written("ViolationAction"))?;
    Ok(())
}

/// Removes civ's three values, or every value; returns how many there were.
pub fn clear_params(which: Clear) -> Result<usize, HostError> {
    let Some(key) = open(PARAMETERS_KEY, true)? else {
        return Ok(0);
    };
    let names: Vec<String> = match which {
        Clear::Settings => ["VerifyDriverLevel", "VerifyDrivers", "ViolationAction"]
            .map(String::from)
            .to_vec(),
        Clear::All => key
            .values()
            .map_err(|e| fail("cannot list the values of", PARAMETERS_KEY, &e))?
            .map(|(name, _)| name)
            .collect(),
    };
    let mut removed = 0;
    for name in names {
        match key.remove_value(&name) {
            Ok(()) => removed += 1,
            Err(e) if win32(&e) == ERROR_FILE_NOT_FOUND => {}
            Err(e) => {
                return Err(fail(
                    &format!("cannot remove {name} from"),
                    PARAMETERS_KEY,
                    &e,
                ));
            }
        }
    }
    Ok(removed)
}
