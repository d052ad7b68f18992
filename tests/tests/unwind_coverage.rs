//! civ.sys's unwind data covers its code (issue 10): every x64 function
//! that calls another needs a RUNTIME_FUNCTION, or a stack walk (a crash
//! dump's `k`, `!analyze`, RtlVirtualUnwind) stops at it or goes wrong, and
//! a 0xC4 bug check raised from civ's entry stubs would be blamed on civ
//! instead of the target driver that made the call. Checked on the built
//! WDM image: every call instruction lies inside a RUNTIME_FUNCTION, every
//! RUNTIME_FUNCTION's unwind information reads, and at every instruction
//! of every function the unwinder's rules find the return address where
//! the code has left it.

use civ_fixtures::unwind::{Analysis, walk};

#[test]
fn every_call_in_civ_sys_lies_inside_a_runtime_function() {
    let a = Analysis::of_civ_sys();
    assert!(
        a.code.call_instructions.len() > 100,
        "the disassembly finds civ.sys's calls"
    );
    let outside: Vec<String> = a
        .code
        .call_instructions
        .iter()
        .filter(|&&at| a.image.runtime_function_at(at).is_none())
        .map(|&at| format!("  rva {at:#x} in {}", a.name(at)))
        .collect();
    assert!(
        outside.is_empty(),
        "{} call instruction(s) outside every RUNTIME_FUNCTION: a stack walk cannot pass \
         these frames\n{}",
        outside.len(),
        outside.join("\n")
    );
}

#[test]
fn every_runtime_function_of_civ_sys_is_well_formed() {
    let a = Analysis::of_civ_sys();
    let table = &a.image.runtime_functions;
    assert!(!table.is_empty(), "civ.sys has a .pdata table");
    let mut problems = Vec::new();
    for (i, rf) in table.iter().enumerate() {
        if rf.begin >= rf.end || !a.image.is_code(rf.begin) || !a.image.is_code(rf.end - 1) {
            problems.push(format!("{rf:x?}: not a range of code"));
        }
        // The unwinder's lookup is a binary search over sorted, disjoint
        // ranges.
        if let Some(next) = table.get(i + 1)
            && next.begin < rf.end
        {
            problems.push(format!(
                "{rf:x?} and {next:x?}: out of order or overlapping"
            ));
        }
        match a.image.unwind(*rf) {
            Ok(chain) => {
                if chain.infos[0].prolog_size as u32 > rf.end - rf.begin {
                    problems.push(format!("{rf:x?}: prolog longer than the range"));
                }
            }
            Err(e) => problems.push(format!("{rf:x?} ({}): {e}", a.name(rf.begin))),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_stack_walk_finds_the_return_address_at_every_instruction_of_civ_sys() {
    let a = Analysis::of_civ_sys();
    let report = walk::check(&a.image, &a.code);
    // Nearly all code is reached from function starts (not code after a
    // jump through a table, or padding): the check is not vacuous.
    let total: usize = a
        .code
        .functions
        .values()
        .map(|f| f.instructions.len())
        .sum();
    assert!(
        report.checked * 10 >= total * 9,
        "only {} of {total} instructions reached",
        report.checked
    );
    let shown: Vec<String> = report
        .mismatches
        .iter()
        .map(|m| format!("  {} at rva {:#x}: {}", a.name(m.function), m.at, m.why))
        .collect();
    assert!(
        shown.is_empty(),
        "{} instruction(s) where an unwinder would not find the return address:\n{}",
        shown.len(),
        shown.join("\n")
    );
}
