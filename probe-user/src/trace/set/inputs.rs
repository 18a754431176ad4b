//! What `replay` and `export` were given, as files: a file as it is, a directory as the
//! files in it (not recursive; files that are not traces are skipped), a pattern
//! (`traces/*.trace*`, for shells that did not expand it) as the files it matches.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::trace::set::{PartSource, SetError};

/// One file to read.
#[derive(Clone, Debug)]
pub struct Input {
    /// The file as shown in messages.
    pub name: String,
    pub source: PartSource,
    /// Found in a directory argument: skipped, not refused, when it is not a trace.
    pub from_directory: bool,
}

impl Input {
    pub fn file(path: &Path) -> Self {
        Self {
            name: path.display().to_string(),
            source: PartSource::File(path.to_path_buf()),
            from_directory: false,
        }
    }

    /// A trace already in memory.
    pub fn memory(name: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            source: PartSource::Memory(bytes.into()),
            from_directory: false,
        }
    }
}

fn is_pattern(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.contains(['*', '?', '[']))
}

/// The files of a directory, by name, without hidden files and subdirectories.
fn directory(dir: &Path) -> Result<Vec<Input>, SetError> {
    let io = |error| SetError::Io {
        file: dir.display().to_string(),
        error,
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files
        .iter()
        .map(|path| Input {
            from_directory: true,
            ..Input::file(path)
        })
        .collect())
}

/// The inputs named by the arguments, in their order (a file named twice is read once).
pub fn expand(args: &[PathBuf]) -> Result<Vec<Input>, SetError> {
    let mut inputs: Vec<Input> = Vec::new();
    for arg in args {
        let found = if arg.is_dir() {
            directory(arg)?
        } else if is_pattern(arg) && !arg.exists() {
            let pattern = arg.to_str().unwrap_or_default();
            let mut matched: Vec<PathBuf> = glob::glob(pattern)
                .map_err(|e| SetError::Input(format!("{pattern}: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(SetError::Input(format!("{pattern}: no file matches")));
            }
            matched.sort();
            matched.iter().map(|p| Input::file(p)).collect()
        } else {
            vec![Input::file(arg)]
        };
        for input in found {
            let seen = inputs.iter().any(|i| match (&i.source, &input.source) {
                (PartSource::File(a), PartSource::File(b)) => a == b,
                _ => false,
            });
            if !seen {
                inputs.push(input);
            }
        }
    }
    Ok(inputs)
}
