//! The repository stands alone: a clone in a folder with nothing beside
//! it names nothing outside itself, and fetches all its test data (the
//! real-driver corpus, checked against tests/corpus/expected.tsv, and the
//! SARIF schema) with its own script.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_clone_with_nothing_beside_it_fetches_its_test_data() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = tempfile::tempdir().expect("scratch folder");
    let clone = scratch.path().join("civ");
    run(Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(&repo)
        .arg(&clone));
    // Nothing beside the clone, and no file in it names a folder beside it.
    let beside: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["civ"]);
    // The needles are spelled in two pieces so this file does not match.
    let (up, ours) = (format!("..{}shared", '/'), format!("/work{}shared", '/'));
    let named = Command::new("git")
        .args(["grep", "-l", "-F", "-e", &up, "-e", &ours])
        .current_dir(&clone)
        .output()
        .expect("git grep");
    assert!(
        named.stdout.is_empty(),
        "files name a folder outside the repository:\n{}",
        String::from_utf8_lossy(&named.stdout)
    );
    let corpus = scratch.path().join("corpus");
    let schema = scratch.path().join("schema/sarif-2.1.0-rtm.5.json");
    let said = run(Command::new("bash")
        .arg("scripts/fetch-test-data.sh")
        .current_dir(&clone)
        .env("CIV_CORPUS", &corpus)
        .env("CIV_SARIF_SCHEMA", &schema));
    assert!(said.contains("corpus complete in"), "{said}");
    let expected = std::fs::read_to_string(clone.join("tests/corpus/expected.tsv")).unwrap();
    let files: Vec<&str> = expected
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(files.len() >= 6);
    for f in files {
        assert!(corpus.join(f).is_file(), "{f} not fetched");
    }
    let schema_text = std::fs::read_to_string(&schema).expect("the SARIF schema");
    assert!(schema_text.contains("\"$schema\""), "not a JSON schema");
}
