//! Boxoban level files: parsing, reading, writing.
//!
//! The DeepMind format: each level is a `; N` header line followed by the
//! grid rows, levels separated by blank lines. Grid alphabet: `#` wall,
//! space floor, `.` target, `$` box, `*` box on target, `@` player, `+`
//! player on target. The parser also accepts grids without a header
//! (separated by blank lines), so [`Level`]'s `Display` output parses back.
//!
//! Invariant: the parser never panics, whatever the bytes; every defect is an
//! [`EnvError::Parse`] whose one-line message names the file, the 0-based
//! level number (its position in the file, equal to the Boxoban `; N`) and
//! the 1-based line.

use std::path::Path;

use super::board::Level;
use crate::env::{EnvError, Result};

/// Parse every level of `text`; `source` names the input in errors.
///
/// # Errors
/// [`EnvError::Parse`] at the first malformed level (unknown character,
/// ragged rows, no or two players, boxes ≠ targets, no boxes, empty level,
/// board over [`super::MAX_SIZE`]); [`EnvError::NoLevels`] when there is none.
pub fn parse_levels(text: &str, source: &str) -> Result<Vec<Level>> {
    let mut levels = Vec::new();
    // Rows of the level being read, with their 1-based line numbers.
    let mut rows: Vec<(usize, &str)> = Vec::new();
    // Line of a `;` header whose grid has not started yet.
    let mut header: Option<usize> = None;
    let finish = |levels: &mut Vec<Level>,
                  rows: &mut Vec<(usize, &str)>,
                  header: &mut Option<usize>|
     -> Result<()> {
        if rows.is_empty() {
            if let Some(line) = header.take() {
                return Err(EnvError::Parse {
                    file: source.to_string(),
                    level: levels.len(),
                    line,
                    message: "empty level: a header with no grid".into(),
                });
            }
            return Ok(());
        }
        let grid: Vec<&str> = rows.iter().map(|(_, r)| *r).collect();
        let level = Level::from_rows(&grid).map_err(|e| EnvError::Parse {
            file: source.to_string(),
            level: levels.len(),
            line: rows[e.row.min(rows.len() - 1)].0,
            message: e.message,
        })?;
        levels.push(level);
        rows.clear();
        *header = None;
        Ok(())
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with(';') {
            finish(&mut levels, &mut rows, &mut header)?;
            header = Some(i + 1);
        } else if line.trim().is_empty() {
            if !rows.is_empty() {
                finish(&mut levels, &mut rows, &mut header)?;
            }
        } else {
            rows.push((i + 1, line));
        }
    }
    finish(&mut levels, &mut rows, &mut header)?;
    if levels.is_empty() {
        return Err(EnvError::NoLevels {
            file: source.to_string(),
        });
    }
    Ok(levels)
}

/// Read and parse a level file. Bytes that are not UTF-8 become U+FFFD and
/// are reported as unknown characters.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be read, else as [`parse_levels`].
pub fn read_level_file(path: impl AsRef<Path>) -> Result<Vec<Level>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_levels(
        &String::from_utf8_lossy(&bytes),
        &path.display().to_string(),
    )
}

/// The Boxoban text of `levels`: `; i` headers, grids, blank lines.
pub fn to_boxoban_text(levels: &[Level]) -> String {
    let mut s = String::new();
    for (i, level) in levels.iter().enumerate() {
        s.push_str(&format!("; {i}\n{level}\n\n"));
    }
    s
}

/// Write `levels` as a Boxoban file. The file appears whole: it is written
/// next to `path` under a temporary name and renamed into place, so a
/// reader never sees half a file.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be written.
pub fn write_level_file(path: impl AsRef<Path>, levels: &[Level]) -> Result<()> {
    let path = path.as_ref();
    let io = |error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, to_boxoban_text(levels)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
