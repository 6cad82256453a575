//! The board geometry and the immutable [`Level`].
//!
//! A board lives in a fixed 16×16 cell grid (row stride 16) so that a cell
//! is a `u8` and a set of cells is a 256-bit [`Bits`]: the whole dynamic
//! state of a Sokoban episode is a few words and `Copy`. A level of width w
//! and height h occupies cells `(x + 1, y + 1)`; the outer ring of the grid
//! (and everything beyond the level) is wall. That ring is the invariant
//! that makes moves branch-free: a step is `pos ± 1` or `pos ± 16` and can
//! never wrap into another row or leave the grid, because no reachable
//! square touches the ring. Hence levels are at most [`MAX_SIZE`] = 14 wide
//! and high.

use std::fmt;

use super::deadlock;

/// The largest width and height of a level.
pub const MAX_SIZE: usize = 14;
/// Row stride of the internal grid.
pub const STRIDE: usize = 16;
/// Cells of the internal grid.
pub const CELLS: usize = STRIDE * STRIDE;

/// Cell offsets of the four actions, in action order: up, down, left, right.
pub const DIR_OFFSETS: [i16; 4] = [-(STRIDE as i16), STRIDE as i16, -1, 1];
/// Action names, in action order.
pub const DIR_NAMES: [&str; 4] = ["up", "down", "left", "right"];
/// Move letters of a plan, in action order.
pub const DIR_LETTERS: [char; 4] = ['u', 'd', 'l', 'r'];

/// The cell next to `pos` in direction `dir` (an action index).
#[inline(always)]
pub fn step_pos(pos: u8, dir: usize) -> u8 {
    (pos as i16 + DIR_OFFSETS[dir]) as u8
}

/// The internal cell of level coordinates (column x, row y).
#[inline]
pub fn cell(x: usize, y: usize) -> u8 {
    ((y + 1) * STRIDE + x + 1) as u8
}

/// Level coordinates (column x, row y) of an internal cell.
#[inline]
pub fn coords(pos: u8) -> (usize, usize) {
    let p = pos as usize;
    (p % STRIDE - 1, p / STRIDE - 1)
}

/// A set of cells of the internal grid.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Bits(pub [u64; 4]);

impl Bits {
    /// The empty set.
    pub const EMPTY: Bits = Bits([0; 4]);

    /// Whether `p` is in the set.
    #[inline(always)]
    pub fn get(&self, p: u8) -> bool {
        (self.0[(p >> 6) as usize] >> (p & 63)) & 1 != 0
    }

    /// Add `p`.
    #[inline(always)]
    pub fn set(&mut self, p: u8) {
        self.0[(p >> 6) as usize] |= 1 << (p & 63);
    }

    /// Remove `p`.
    #[inline(always)]
    pub fn clear(&mut self, p: u8) {
        self.0[(p >> 6) as usize] &= !(1 << (p & 63));
    }

    /// The number of cells in the set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Intersection.
    #[inline]
    pub fn and(&self, o: &Bits) -> Bits {
        Bits(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }

    /// Union.
    #[inline]
    pub fn or(&self, o: &Bits) -> Bits {
        Bits(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    /// The cells in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    None
                } else {
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    Some((i * 64) as u8 + b as u8)
                }
            })
        })
    }
}

impl fmt::Debug for Bits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(coords)).finish()
    }
}

/// A Sokoban level: walls, targets, the initial boxes and player, and the
/// dead squares derived from them. Immutable once built; every constructor
/// checks one player, as many boxes as targets (at least one), and a size of
/// at most [`MAX_SIZE`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Level {
    width: usize,
    height: usize,
    walls: Bits,
    targets: Bits,
    boxes: Bits,
    player: u8,
    /// Non-target floor squares from which no push sequence reaches a target.
    dead: Bits,
}

/// What is wrong with a grid: `row` is 0-based within the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GridError {
    pub row: usize,
    pub message: String,
}

impl Level {
    /// Build a level from grid rows in the Boxoban alphabet (`#` wall,
    /// space floor, `.` target, `$` box, `*` box on target, `@` player,
    /// `+` player on target).
    pub(crate) fn from_rows(rows: &[&str]) -> std::result::Result<Level, GridError> {
        let err = |row: usize, message: String| GridError { row, message };
        if rows.is_empty() {
            return Err(err(0, "empty level: no grid rows".into()));
        }
        let width = rows[0].chars().count();
        if rows.len() > MAX_SIZE || width > MAX_SIZE {
            return Err(err(
                0,
                format!(
                    "board is {width}x{} but at most {MAX_SIZE}x{MAX_SIZE} is supported",
                    rows.len()
                ),
            ));
        }
        let mut walls = Bits::EMPTY;
        let mut targets = Bits::EMPTY;
        let mut boxes = Bits::EMPTY;
        let mut player = None;
        for (y, row) in rows.iter().enumerate() {
            let n = row.chars().count();
            if n != width {
                return Err(err(
                    y,
                    format!("ragged rows: this row has {n} columns, the first has {width}"),
                ));
            }
            for (x, ch) in row.chars().enumerate() {
                let p = cell(x, y);
                match ch {
                    '#' => walls.set(p),
                    ' ' => {}
                    '.' => targets.set(p),
                    '$' => boxes.set(p),
                    '*' => {
                        boxes.set(p);
                        targets.set(p);
                    }
                    '@' | '+' => {
                        if ch == '+' {
                            targets.set(p);
                        }
                        if let Some(q) = player {
                            let (px, py) = coords(q);
                            return Err(err(
                                y,
                                format!(
                                    "two players: at column {} and at row {} column {}",
                                    x + 1,
                                    py + 1,
                                    px + 1
                                ),
                            ));
                        }
                        player = Some(p);
                    }
                    other => {
                        return Err(err(
                            y,
                            format!("unknown character {other:?} at column {}", x + 1),
                        ));
                    }
                }
            }
        }
        let Some(player) = player else {
            return Err(err(0, "no player ('@' or '+')".into()));
        };
        let (nb, nt) = (boxes.count(), targets.count());
        if nb != nt {
            return Err(err(0, format!("{nb} boxes but {nt} targets")));
        }
        if nb == 0 {
            return Err(err(0, "no boxes".into()));
        }
        Ok(Level::from_parts(
            width,
            rows.len(),
            walls,
            targets,
            boxes,
            player,
        ))
    }

    /// Assemble a level from checked parts; fills the ring and everything
    /// outside `width × height` with walls and derives the dead squares.
    pub(crate) fn from_parts(
        width: usize,
        height: usize,
        mut walls: Bits,
        targets: Bits,
        boxes: Bits,
        player: u8,
    ) -> Level {
        debug_assert!(width <= MAX_SIZE && height <= MAX_SIZE);
        for p in 0..CELLS {
            let (x, y) = (p % STRIDE, p / STRIDE);
            if x == 0 || y == 0 || x > width || y > height {
                walls.set(p as u8);
            }
        }
        let dead = deadlock::dead_squares(&walls, &targets);
        Level {
            width,
            height,
            walls,
            targets,
            boxes,
            player,
            dead,
        }
    }

    /// Width in squares.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in squares.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of boxes (= number of targets).
    pub fn num_boxes(&self) -> usize {
        self.targets.count() as usize
    }

    /// Wall cells (including the ring around the level).
    pub fn walls(&self) -> &Bits {
        &self.walls
    }

    /// Target cells.
    pub fn targets(&self) -> &Bits {
        &self.targets
    }

    /// Initial box cells.
    pub fn boxes(&self) -> &Bits {
        &self.boxes
    }

    /// Initial player cell.
    pub fn player(&self) -> u8 {
        self.player
    }

    /// Dead squares: floor, not a target, and no push sequence (ignoring
    /// other boxes and the player's reach) takes a box from there to a target.
    pub fn dead_squares(&self) -> &Bits {
        &self.dead
    }

    /// A stable task id: 16 hex digits of the FNV-1a 64-bit hash of the
    /// grid text ([`Level::to_boxoban_string`]). Independent of the file and
    /// index the level came from, so results join across runs and files.
    pub fn task_id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_boxoban_string().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The grid in the Boxoban alphabet, rows joined by `\n`, no header and
    /// no trailing newline. Parses back to an equal level.
    pub fn to_boxoban_string(&self) -> String {
        render_grid(self, &self.boxes, self.player)
    }
}

/// Render walls/targets of `level` with the given boxes and player in the
/// Boxoban alphabet.
pub(crate) fn render_grid(level: &Level, boxes: &Bits, player: u8) -> String {
    let mut s = String::with_capacity((level.width + 1) * level.height);
    for y in 0..level.height {
        if y > 0 {
            s.push('\n');
        }
        for x in 0..level.width {
            let p = cell(x, y);
            let t = level.targets.get(p);
            s.push(if level.walls.get(p) {
                '#'
            } else if boxes.get(p) {
                if t { '*' } else { '$' }
            } else if p == player {
                if t { '+' } else { '@' }
            } else if t {
                '.'
            } else {
                ' '
            });
        }
    }
    s
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_boxoban_string())
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Level {}x{} {}", self.width, self.height, self.task_id())?;
        f.write_str(&self.to_boxoban_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_iterate_every_cell_including_the_extremes() {
        let mut b = Bits::EMPTY;
        for p in [0u8, 63, 64, 200, 255] {
            b.set(p);
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 63, 64, 200, 255]);
        assert_eq!(b.count(), 5);
        b.clear(64);
        assert!(!b.get(64) && b.get(63));
    }

    #[test]
    fn cells_and_coords_invert_and_leave_a_wall_ring() {
        for y in 0..MAX_SIZE {
            for x in 0..MAX_SIZE {
                let p = cell(x, y);
                assert_eq!(coords(p), (x, y));
                // Every neighbour stays inside the 16x16 grid without wrapping.
                for d in 0..4 {
                    let (nx, ny) = (
                        step_pos(p, d) as usize % STRIDE,
                        step_pos(p, d) as usize / STRIDE,
                    );
                    assert!(nx.abs_diff(x + 1) + ny.abs_diff(y + 1) == 1);
                }
            }
        }
    }
}
