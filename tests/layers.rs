//! The folder tree is a picture of the layers, and the layers import only downward:
//! core ← shared ← handle ← registry ← driver ← adapters. Reads every file under
//! `src/<layer>/` and checks each `crate::` path in its code (doc comments and
//! comments aside) names its own layer or one below — and never a name re-exported
//! at the crate root, which would hide which layer it comes from.

use std::fs;
use std::path::Path;

const LAYERS: [&str; 6] = ["core", "shared", "handle", "registry", "driver", "adapters"];

/// The code of a line: nothing after `//` (doc comments and comments are prose; a
/// doc link to a higher layer is not an import).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Every `crate::<segment>` in `text`.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let segment: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // `$crate::` in a macro is the same crate.
        found.push(segment);
        rest = after;
    }
    found
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The violations in the files of `layer`: (file, line number, what it imports).
fn violations(src: &Path, layer: usize) -> Vec<(String, usize, String)> {
    let mut paths = Vec::new();
    files(&src.join(LAYERS[layer]), &mut paths);
    let mut bad = Vec::new();
    for path in paths {
        let text = fs::read_to_string(&path).expect("readable source file");
        for (n, line) in text.lines().enumerate() {
            for segment in crate_paths(code(line)) {
                let ok = match LAYERS.iter().position(|l| *l == segment) {
                    Some(target) => target <= layer,
                    // A name through the crate root hides its layer.
                    None => false,
                };
                if !ok {
                    bad.push((path.display().to_string(), n + 1, segment));
                }
            }
        }
    }
    bad
}

#[test]
fn layers_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    for (layer, name) in LAYERS.iter().enumerate() {
        assert!(src.join(name).is_dir(), "src/{name}/ is a layer folder");
        all.extend(violations(&src, layer));
    }
    assert!(
        all.is_empty(),
        "imports that point up the layers (or through the crate root): {all:#?}"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // The scanner itself: an upward path and a root path are found, prose is not.
    assert_eq!(
        crate_paths(code("use crate::registry::Registry; // crate::driver")),
        ["registry"]
    );
    assert_eq!(
        crate_paths(code("/// [`x`](crate::driver::X)")),
        Vec::<String>::new()
    );
    assert_eq!(
        crate_paths(code("let x = crate::Message::text(\"\");")),
        ["Message"]
    );
}
