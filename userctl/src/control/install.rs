//! `install` and `uninstall`: the WDM civ.sys as the kernel service `civ`,
//! for machines where the INF is not used.

use super::commands::{Io, OK, REBOOT, io_error};
use super::host::{Host, HostError, InstallSpec, SERVICE_NAME};

/// `civctl install`: the WDM civ.sys as a kernel service.
pub fn install(host: &mut dyn Host, spec: &InstallSpec, io: &mut Io<'_>) -> Result<u8, HostError> {
    let done = host.install(spec)?;
    writeln!(
        io.out,
        "installed service {SERVICE_NAME}: kernel driver, start {}, group \"{}\", ImagePath {} ({})\n\
         next: civctl enable --driver NAME.sys, then sc start {SERVICE_NAME} (or reboot)",
        spec.start.name(),
        spec.group,
        done.image_path,
        done.file
    )
    .map_err(io_error)?;
    Ok(OK)
}

/// `civctl uninstall`: stops and deletes the service. A civ.sys that has
/// hooked drivers stops checking new ones but stays in memory, recording
/// their calls, until reboot: it says so.
pub fn uninstall(host: &mut dyn Host, io: &mut Io<'_>) -> Result<u8, HostError> {
    let pinned = match host.open_device()? {
        Some(mut device) => super::client::status(device.as_mut())?.0.pinned,
        None => false,
    };
    let done = host.uninstall()?;
    if done.stopped {
        writeln!(io.out, "stopped civ.sys").map_err(io_error)?;
    }
    writeln!(io.out, "deleted service {SERVICE_NAME}").map_err(io_error)?;
    if let Some(file) = &done.file_left {
        writeln!(io.err, "civctl uninstall: note: {file}").map_err(io_error)?;
    }
    if let Some(why) = &done.stop_failed {
        writeln!(
            io.out,
            "civ.sys could not be stopped ({why}): the service is deleted, and the next reboot removes civ.sys"
        )
        .map_err(io_error)?;
        return Ok(REBOOT);
    }
    if pinned {
        writeln!(
            io.out,
            "civ.sys had hooked drivers: it stays in memory, recording their calls, until the next reboot removes it"
        )
        .map_err(io_error)?;
        return Ok(REBOOT);
    }
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeHost, run, running_driver};
    use super::super::host::StartType;
    use super::*;

    #[test]
    fn install_and_uninstall() {
        let mut host = FakeHost::default();
        let spec = InstallSpec {
            sys: "C:\\civ\\civ.sys".into(),
            start: StartType::Demand,
            group: "Boot Bus Extender".into(),
        };
        let (r, out, _) = run(|io| install(&mut host, &spec, io));
        assert_eq!(r, Ok(OK));
        assert!(
            out.contains("start demand, group \"Boot Bus Extender\""),
            "{out}"
        );
        let (r, ..) = run(|io| install(&mut host, &spec, io));
        assert_eq!(r, Err(HostError::AlreadyInstalled));
        host.driver = Some(running_driver());
        let (r, out, _) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Ok(OK));
        assert!(
            out.contains("stopped civ.sys") && out.contains("deleted service civ"),
            "{out}"
        );
        assert!(!out.contains("stays in memory"), "{out}");
        let (r, ..) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Err(HostError::NotInstalled));
    }

    #[test]
    fn uninstalling_a_pinned_civ_says_it_stays_until_reboot() {
        let driver = running_driver();
        driver.borrow_mut().head = Some(civ_engine::protocol::StatusHead {
            verify_level: 0x0200_0000,
            action: civ_engine::settings::Action::Log,
            started_time: 0,
            flags: civ_engine::protocol::StatusHead::PINNED,
        });
        let mut host = FakeHost {
            installed: true,
            driver: Some(driver),
            ..FakeHost::default()
        };
        let (r, out, _) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(
            out.contains("stopped civ.sys")
                && out.contains("stays in memory, recording their calls, until the next reboot")
                && out.contains("deleted service civ"),
            "{out}"
        );
    }

    #[test]
    fn a_stop_that_fails_says_the_next_reboot_removes_civ() {
        let mut host = FakeHost {
            installed: true,
            driver: Some(running_driver()),
            stop_refused: Some("the service cannot accept control messages".into()),
            ..FakeHost::default()
        };
        let (r, out, _) = run(|io| uninstall(&mut host, io));
        assert_eq!(r, Ok(REBOOT));
        assert!(out.contains("deleted service civ"), "{out}");
        assert!(!out.contains("stopped civ.sys"), "{out}");
        assert!(out.contains("the next reboot removes civ.sys"), "{out}");
    }
}
