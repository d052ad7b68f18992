//! The README's Linux examples run as shown: every `$ command` of its
//! ```console blocks (the tour first, which fetches the corpus and builds
//! civctl), in order and in one shell from the repository's root, exits as
//! the block says (0 unless the line ends `# exits N: ...`), and every line
//! the block shows under a command (but those with `...`) is in what it
//! printed. Windows examples are in other blocks.

use std::path::Path;
use std::process::Command;

/// One command of the tour and what the README says of it.
#[derive(Debug)]
struct Step {
    command: String,
    exit: i32,
    shown: Vec<String>,
}

/// The steps of the README's console blocks, in order.
fn examples(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in readme.lines() {
        match line.trim_end() {
            "```console" => in_console = true,
            "```" if in_console => in_console = false,
            l if in_console => {
                if let Some(cmd) = l.strip_prefix("$ ") {
                    let (command, exit) = match cmd.split_once("# exits ") {
                        Some((c, e)) => (
                            c.trim().to_string(),
                            e.split(':')
                                .next()
                                .unwrap()
                                .trim()
                                .parse()
                                .expect("exit code"),
                        ),
                        None => (cmd.trim().to_string(), 0),
                    };
                    steps.push(Step {
                        command,
                        exit,
                        shown: Vec::new(),
                    });
                } else if !l.trim().is_empty() && !l.contains("...") {
                    steps
                        .last_mut()
                        .expect("output follows a command")
                        .shown
                        .push(l.trim_end().to_string());
                }
            }
            _ => {}
        }
    }
    steps
}

#[test]
fn the_examples_read_as_a_list_of_commands() {
    let steps = examples(
        "# x\n## A five-minute tour\n```console\n$ a b   # exits 1: why\nout 1\n  ...\n$ c\n```\ntext\n```sh\n$ not this\n```\n## Next\n```console\n$ d\n```\n```bat\n$ nor this\n```\n",
    );
    assert_eq!(steps.len(), 3);
    assert_eq!((steps[0].command.as_str(), steps[0].exit), ("a b", 1));
    assert_eq!(steps[0].shown, ["out 1"]);
    assert_eq!((steps[1].command.as_str(), steps[1].exit), ("c", 0));
    assert_eq!(steps[2].command, "d");
}

#[test]
fn the_readme_examples_run_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let steps = examples(&readme);
    assert!(steps.len() >= 7, "the README has its examples: {steps:?}");
    // One shell for the whole tour (an `export` carries over); each
    // command's output and status between markers.
    let mut script = String::from("set +e\n");
    for (i, s) in steps.iter().enumerate() {
        script.push_str(&format!(
            "echo '@@@ begin {i}'\n{} 2>&1\necho \"@@@ end {i} $?\"\n",
            s.command
        ));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&root)
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for (i, s) in steps.iter().enumerate() {
        let begin = format!("@@@ begin {i}\n");
        let from = text
            .find(&begin)
            .map(|p| p + begin.len())
            .unwrap_or_else(|| panic!("step {i} ({}) never ran:\n{text}", s.command));
        let end_marker = format!("@@@ end {i} ");
        let to = from + text[from..].find(&end_marker).expect("end marker");
        let output = &text[from..to];
        let rc: i32 = text[to + end_marker.len()..]
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("exit status");
        assert_eq!(
            rc, s.exit,
            "`{}` exited {rc}, the README says {}:\n{output}",
            s.command, s.exit
        );
        for line in &s.shown {
            assert!(
                output.lines().any(|o| o.trim_end().contains(line.trim())),
                "`{}` did not print the README's line\n  {line}\nit printed:\n{output}",
                s.command
            );
        }
    }
}
