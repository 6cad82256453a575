//! Memory limits of a query session: the pool DataFusion's operators hold,
//! where they spill, and the sizes the command line reads and prints.

/// How much memory queries may use, and where they spill beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes DataFusion's operators may hold (sorts, aggregations, joins'
    /// build sides, the recursive CTEs' work tables); sorts and aggregations
    /// spill to disk beyond it, the rest fails with [`QueryError::OutOfMemory`].
    pub limit: usize,
    /// Directory for spill files (None: the OS temporary directory).
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for MemoryLimits {
    /// A quarter of the machine's memory, at most 2 GiB, at least 256 MiB.
    fn default() -> Self {
        let physical = physical_memory().unwrap_or(8 << 30);
        MemoryLimits {
            limit: (physical / 4).clamp(256 << 20, 2 << 30),
            spill_dir: None,
        }
    }
}

impl MemoryLimits {
    /// The limits every session of this process uses unless told otherwise:
    /// those set by [`MemoryLimits::set_process_default`] (the CLI's
    /// `--memory-limit` / `--spill-dir`), else [`MemoryLimits::default`].
    pub fn process_default() -> MemoryLimits {
        PROCESS_LIMITS.get().cloned().unwrap_or_default()
    }

    /// Sets the process-wide limits (once; later calls are ignored).
    pub fn set_process_default(limits: MemoryLimits) {
        let _ = PROCESS_LIMITS.set(limits);
    }

    pub(super) fn spill_dir_text(&self) -> String {
        self.spill_dir.as_ref().map_or_else(
            || std::env::temp_dir().display().to_string(),
            |d| d.display().to_string(),
        )
    }
}

static PROCESS_LIMITS: std::sync::OnceLock<MemoryLimits> = std::sync::OnceLock::new();

/// The machine's physical memory in bytes, where the OS says.
pub(super) fn physical_memory() -> Option<usize> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it returns -1 when unknown.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return Some(pages as usize * size as usize);
        }
    }
    None
}

/// Parses a size: `512M`, `2G`, `1.5GiB`, `1048576` (bytes).
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512M, 2G or 1073741824"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        other => return Err(format!("`{s}`: unknown unit `{other}` (K, M, G, T)")),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < (16 << 20) as f64 || bytes > 1e15 {
        return Err(format!(
            "`{s}`: a memory limit must lie between 16M and 1000T"
        ));
    }
    Ok(bytes as usize)
}

/// Spill files one merge pass of a sort reads at once (DataFusion's
/// default: all of them).
pub const SPILL_MERGE_FAN_IN: usize = 16;

/// Rows per batch in the last attempt of [`QuerySession::stream`]
/// (DataFusion's default is 8,192).
pub const SMALL_BATCH_ROWS: usize = 1024;

/// A size for people: `512 MiB`, `2.0 GiB`.
pub fn format_size(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Whether DataFusion ran out of its memory pool.
pub(super) fn is_out_of_memory(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    ) || e.to_string().contains("Resources exhausted")
}
