//! `civctl status --format verifier`: the status in the text form of
//! `verifier /query`, so that the scripts written for Driver Verifier (the
//! DG_Readiness tool and its kin) read civ's counters unchanged.
//!
//! What those parsers rely on: each verified driver starts with a
//! `Module: NAME (...)` line, its counters follow a `Code Integrity
//! Statistics:` line as `LABEL: N` with DV's labels, and that block ends
//! the module (they take every `x: y` line after it as a counter). So the
//! header above the first module never says "module:", and nothing with a
//! colon follows a module's counters.

use super::report::StatusView;
use civ_engine::code::Counter;

/// DV's label of a counter in `verifier /query`: `Execute Pool Type Count`,
/// ..., `Section Alignment Failures`.
pub fn dv_query_label(c: Counter) -> String {
    let label = c.label();
    if label.ends_with("Failures") {
        label.to_string()
    } else {
        format!("{label} Count")
    }
}

/// The `verifier /query` text of a status.
pub fn to_verifier_query(view: &StatusView) -> String {
    let mut s = format!("Verify Level {:x} ... enabled options are:\n", view.flags);
    if view.code_integrity {
        s.push_str("  Code integrity checks\n");
    }
    s.push_str("\nVerified Drivers:\n");
    for t in &view.targets {
        s.push_str(&format!(
            "\nModule: {} (load: 1 / unload: {})\n  Code Integrity Statistics:\n",
            t.name,
            u8::from(t.unloaded)
        ));
        for c in Counter::ALL {
            s.push_str(&format!(
                "    {}: {}\n",
                dv_query_label(c),
                t.counters.0[c as usize]
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use civ_engine::protocol::{StatusHead, StatusReply, TargetRecord, Version};
    use civ_engine::settings::Action;

    /// The DG_Readiness way: lower-case the text, split it on `module:`,
    /// take the name before ` (`, then every `label: value` line after
    /// `code integrity statistics:`; a driver fails on a non-zero value.
    fn dg_readiness(text: &str) -> Vec<(String, Option<String>)> {
        let lower = text.to_lowercase();
        let Some(first) = lower.find("module:") else {
            return Vec::new();
        };
        lower[first..]
            .split("module:")
            .filter(|m| !m.trim().is_empty())
            .filter_map(|m| {
                let name = m[..m.find('(')?].trim().to_string();
                let stats = &m[m.find("code integrity statistics:")?..];
                let stats = &stats[stats.find("execute pool type count:")?..];
                let failing = stats
                    .lines()
                    .find(|l| {
                        let parts: Vec<&str> = l.split(':').collect();
                        parts.len() == 2 && parts[1].trim() != "0"
                    })
                    .map(|l| l.trim().to_string());
                Some((name, failing))
            })
            .collect()
    }

    fn view(targets: &[TargetRecord]) -> StatusView {
        let head = StatusHead {
            verify_level: 0x0200_0000,
            action: Action::Log,
            started_time: 0,
            flags: 0,
        };
        let mut buf = vec![0u8; 8192];
        let n = civ_engine::protocol::write_status(&head, targets.iter().copied(), &mut buf)
            .unwrap()
            .bytes;
        let reply: StatusReply<'_> = civ_engine::protocol::decode_reply_status(&buf[..n]).unwrap();
        StatusView::new(&Version::new(0, 1, 0, 0), &reply)
    }

    #[test]
    fn dg_readiness_style_parsing_reads_each_module_and_its_failing_counter() {
        let clean = TargetRecord::new("clean.sys");
        let mut bad = TargetRecord::new("bad.sys");
        bad.counters[Counter::ExecuteWriteSection as usize] = 1;
        let mut pool = TargetRecord::new("pool.sys");
        pool.counters[Counter::ExecutePoolType as usize] = 3;
        let text = to_verifier_query(&view(&[clean, bad, pool]));
        assert_eq!(
            dg_readiness(&text),
            [
                ("clean.sys".to_string(), None),
                (
                    "bad.sys".to_string(),
                    Some("execute-write section count: 1".to_string())
                ),
                (
                    "pool.sys".to_string(),
                    Some("execute pool type count: 3".to_string())
                ),
            ]
        );
        for c in Counter::ALL {
            assert!(
                text.contains(&format!("{}: 0", dv_query_label(c))),
                "{text}"
            );
        }
        assert!(text.contains("Section Alignment Failures: 0"), "{text}");
        assert!(
            text.contains("IAT in Executable Section Count: 0"),
            "{text}"
        );
        // No driver: no module, and nothing the parser takes for one.
        assert!(dg_readiness(&to_verifier_query(&view(&[]))).is_empty());
    }
}
