//! The tasks: a grid (walls, floor, traps, one goal, the agent's start),
//! its text form, and grid files.

use std::fmt;
use std::path::Path;

use super::{DOWN, LEFT, MAX_SIZE, RIGHT, UP};
use crate::env::{EnvError, Result};

/// One cell of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    Wall,
    Floor,
    Trap,
    Goal,
}

impl Cell {
    /// The cell's symbol in the text alphabet.
    pub fn symbol(self) -> char {
        match self {
            Cell::Wall => '#',
            Cell::Floor => ' ',
            Cell::Trap => '^',
            Cell::Goal => 'G',
        }
    }
}

/// A task: the board (walls, floor, traps, one goal) and the agent's start.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Grid {
    pub(super) width: usize,
    pub(super) height: usize,
    /// Row major, `height * width`.
    pub(super) cells: Vec<Cell>,
    pub(super) start: (usize, usize),
    pub(super) goal: (usize, usize),
}

impl Grid {
    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The agent's start as (row, column).
    pub fn start(&self) -> (usize, usize) {
        self.start
    }

    /// The goal as (row, column).
    pub fn goal(&self) -> (usize, usize) {
        self.goal
    }

    /// The cell at (row, column); outside the board, a wall. The start is
    /// floor.
    pub fn cell(&self, (row, col): (usize, usize)) -> Cell {
        if row < self.height && col < self.width {
            self.cells[row * self.width + col]
        } else {
            Cell::Wall
        }
    }

    /// The traps as (row, column), row major.
    pub fn traps(&self) -> Vec<(usize, usize)> {
        (0..self.height)
            .flat_map(|r| (0..self.width).map(move |c| (r, c)))
            .filter(|&p| self.cell(p) == Cell::Trap)
            .collect()
    }

    /// The cell one step from `pos` in direction `action`, if it is on the
    /// board.
    pub fn neighbour(&self, pos: (usize, usize), action: usize) -> Option<(usize, usize)> {
        let (r, c) = offset(pos, action)?;
        (r < self.height && c < self.width).then_some((r, c))
    }

    /// The grid as text with the agent at `agent`, rows joined by `\n`, no
    /// trailing newline.
    pub fn render(&self, agent: (usize, usize)) -> String {
        let mut s = String::with_capacity(self.height * (self.width + 1));
        for r in 0..self.height {
            if r > 0 {
                s.push('\n');
            }
            let row: String = (0..self.width)
                .map(|c| {
                    if (r, c) == agent {
                        '@'
                    } else {
                        self.cell((r, c)).symbol()
                    }
                })
                .collect();
            // A blank line separates grids in a file: keep this row visible.
            if row.chars().all(|ch| ch == ' ') {
                s.extend(std::iter::repeat_n('_', self.width));
            } else {
                s.push_str(&row);
            }
        }
        s
    }

    /// The grid as text with the agent at its start; parses back to an
    /// equal grid, and equals the observation text after a reset.
    pub fn to_text(&self) -> String {
        self.render(self.start)
    }

    /// A stable task id: 16 hex digits of the FNV-1a 64-bit hash of
    /// [`Grid::to_text`], independent of the file the grid came from.
    pub fn task_id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_text().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// A grid from its rows; on error, the 0-based row at fault and what is
    /// wrong.
    fn from_rows(rows: &[&str]) -> std::result::Result<Grid, (usize, String)> {
        if rows.len() > MAX_SIZE {
            return Err((
                MAX_SIZE,
                format!("{} rows: a grid has at most {MAX_SIZE}", rows.len()),
            ));
        }
        let width = rows[0].chars().count();
        let mut cells = Vec::with_capacity(rows.len() * width);
        let (mut start, mut goal) = (None, None);
        for (r, row) in rows.iter().enumerate() {
            let n = row.chars().count();
            if n > MAX_SIZE {
                return Err((r, format!("{n} columns: a grid has at most {MAX_SIZE}")));
            }
            if n != width {
                return Err((
                    r,
                    format!(
                        "ragged row of {n} cells, the first row has {width} (rows must be equally wide)"
                    ),
                ));
            }
            for (c, ch) in row.chars().enumerate() {
                let cell = match ch {
                    '#' => Cell::Wall,
                    ' ' | '_' => Cell::Floor,
                    '^' => Cell::Trap,
                    'G' => {
                        if goal.replace((r, c)).is_some() {
                            return Err((r, "a second `G`: a grid has exactly one goal".into()));
                        }
                        Cell::Goal
                    }
                    '@' => {
                        if start.replace((r, c)).is_some() {
                            return Err((r, "a second `@`: a grid has exactly one agent".into()));
                        }
                        Cell::Floor
                    }
                    other => {
                        return Err((
                            r,
                            format!(
                                "unknown symbol {other:?} at column {c} (expected `#`, ` `, `_`, `^`, `G` or `@`)"
                            ),
                        ));
                    }
                };
                cells.push(cell);
            }
        }
        let start = start.ok_or((0, "no `@`: a grid needs the agent's start".to_string()))?;
        let goal = goal.ok_or((0, "no `G`: a grid needs a goal".to_string()))?;
        Ok(Grid {
            width,
            height: rows.len(),
            cells,
            start,
            goal,
        })
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Grid {}x{} {}", self.width, self.height, self.task_id())?;
        f.write_str(&self.to_text())
    }
}

/// (row, column) one step in direction `action`, unless it leaves the
/// top or left edge.
pub(super) fn offset((r, c): (usize, usize), action: usize) -> Option<(usize, usize)> {
    match action {
        UP => Some((r.checked_sub(1)?, c)),
        DOWN => Some((r + 1, c)),
        LEFT => Some((r, c.checked_sub(1)?)),
        RIGHT => Some((r, c + 1)),
        _ => None,
    }
}

/// Parses a file of grids separated by blank lines or `;` header lines (as
/// in Boxoban files). `source` names the input in errors.
///
/// # Errors
/// [`EnvError::Parse`] naming the grid and line for an unknown symbol, no
/// `@` or several, no `G` or several, ragged rows, more than 10 rows or
/// columns, a header with no grid; [`EnvError::NoLevels`] when there is no
/// grid at all.
pub fn parse_grids(text: &str, source: &str) -> Result<Vec<Grid>> {
    let mut grids = Vec::new();
    // Rows of the grid being read, with their 1-based line numbers.
    let mut rows: Vec<(usize, &str)> = Vec::new();
    // Line of a `;` header whose grid has not started yet.
    let mut header: Option<usize> = None;
    let finish =
        |grids: &mut Vec<Grid>, rows: &mut Vec<(usize, &str)>, header: &mut Option<usize>| {
            if rows.is_empty() {
                return match header.take() {
                    Some(line) => Err(EnvError::Parse {
                        file: source.to_string(),
                        level: grids.len(),
                        line,
                        message: "empty grid: a header with no grid".into(),
                    }),
                    None => Ok(()),
                };
            }
            let text: Vec<&str> = rows.iter().map(|(_, r)| *r).collect();
            let grid = Grid::from_rows(&text).map_err(|(row, message)| EnvError::Parse {
                file: source.to_string(),
                level: grids.len(),
                line: rows[row.min(rows.len() - 1)].0,
                message,
            })?;
            grids.push(grid);
            rows.clear();
            *header = None;
            Ok(())
        };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with(';') {
            finish(&mut grids, &mut rows, &mut header)?;
            header = Some(i + 1);
        } else if line.trim().is_empty() {
            finish(&mut grids, &mut rows, &mut header)?;
        } else {
            rows.push((i + 1, line));
        }
    }
    finish(&mut grids, &mut rows, &mut header)?;
    if grids.is_empty() {
        return Err(EnvError::NoLevels {
            file: source.to_string(),
        });
    }
    Ok(grids)
}

/// The text of a grid file: `; i` headers, grids, blank lines.
pub fn grids_to_text(grids: &[Grid]) -> String {
    let mut s = String::new();
    for (i, grid) in grids.iter().enumerate() {
        s.push_str(&format!("; {i}\n{grid}\n\n"));
    }
    s
}

/// Reads and parses a grid file. Bytes that are not UTF-8 become U+FFFD and
/// are reported as unknown symbols.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be read, else as [`parse_grids`].
pub fn read_grid_file(path: impl AsRef<Path>) -> Result<Vec<Grid>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_grids(
        &String::from_utf8_lossy(&bytes),
        &path.display().to_string(),
    )
}

/// Writes `grids` as a grid file. The file appears whole: it is written
/// next to `path` under a temporary name and renamed into place.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be written.
pub fn write_grid_file(path: impl AsRef<Path>, grids: &[Grid]) -> Result<()> {
    let path = path.as_ref();
    let io = |error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, grids_to_text(grids)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
