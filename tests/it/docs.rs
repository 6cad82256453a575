//! The docs cannot drift from the code: every relative link in README.md and
//! docs/ resolves (file and heading), every page is in the book's summary,
//! every `leafe …` / `cargo run -- …` command in a code block parses with the
//! CLI's own definition, the configuration reference equals the configs'
//! defaults, and the query and table references list what `queries/` and
//! `schemas/` hold. Each failure names the file, the line and what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of the book, as (path relative to the root, text).
fn pages() -> Vec<(String, String)> {
    let mut out = vec![("README.md".to_string(), read("README.md"))];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let rel = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        out.push((rel.clone(), read(&rel)));
    }
    out
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A fenced code block: its info string, first content line (1-based) and lines.
struct Block {
    lang: String,
    line: usize,
    lines: Vec<String>,
}

/// The fenced code blocks of a page, and its prose lines (code blocks blanked).
fn split(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            Some((fence, block)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim() == fence.as_str() {
                    blocks.push(open.take().unwrap().1);
                } else {
                    block.lines.push(line.to_string());
                }
            }
            None => {
                if let Some(fence) = ["```", "~~~"].iter().find(|f| trimmed.starts_with(**f)) {
                    let n = trimmed
                        .chars()
                        .take_while(|c| *c == fence.chars().next().unwrap())
                        .count();
                    let fence: String = trimmed[..n].to_string();
                    let lang = trimmed[n..].trim().to_string();
                    open = Some((
                        fence,
                        Block {
                            lang,
                            line: i + 2,
                            lines: Vec::new(),
                        },
                    ));
                } else {
                    prose.push((i + 1, line.to_string()));
                }
            }
        }
    }
    (blocks, prose)
}

/// Removes inline code spans from a line of prose.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = &rest[start..start + ticks];
        match rest[start + ticks..].find(fence) {
            Some(end) => rest = &rest[start + ticks + end + ticks..],
            None => {
                rest = &rest[start + ticks..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of a line of prose: `[text](target)` and `![alt](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(p) = line[i..].find("](") {
        let start = i + p + 2;
        let mut depth = 1;
        let mut end = start;
        while end < bytes.len() {
            match bytes[end] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            end += 1;
        }
        if end < bytes.len() {
            let target = line[start..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_string());
        }
        i = end.min(bytes.len());
        if i >= line.len() {
            break;
        }
    }
    out
}

/// mdBook's (and GitHub's) id of a heading: lower case, spaces to `-`,
/// everything but letters, digits, `-` and `_` dropped.
fn heading_id(text: &str) -> String {
    let mut plain = String::new();
    // [text](url) -> text
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](") {
            Some(mid) => {
                let close = rest[open + mid..].find(')').map(|c| open + mid + c);
                plain.push_str(&rest[..open]);
                plain.push_str(&rest[open + 1..open + mid]);
                rest = match close {
                    Some(c) => &rest[c + 1..],
                    None => "",
                };
            }
            None => break,
        }
    }
    plain.push_str(rest);
    plain
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The heading ids of a page (repeats get `-1`, `-2`, … as in mdBook).
fn heading_ids(text: &str) -> BTreeSet<String> {
    let (_, prose) = split(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose {
        let t = line.trim_start();
        if !t.starts_with('#') {
            continue;
        }
        let level = t.chars().take_while(|c| *c == '#').count();
        if level > 6 || !t[level..].starts_with(' ') {
            continue;
        }
        let id = heading_id(&t[level..].replace(['`', '*'], ""));
        let n = seen.entry(id.clone()).or_insert(0);
        out.insert(if *n == 0 {
            id.clone()
        } else {
            format!("{id}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut problems = Vec::new();
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (page, text) in pages() {
        let dir = root().join(&page).parent().unwrap().to_path_buf();
        let (_, prose) = split(&text);
        for (line_no, line) in prose {
            for target in link_targets(&line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path = if file.is_empty() {
                    root().join(&page)
                } else {
                    dir.join(file)
                };
                if !path.exists() {
                    problems.push(format!("{page}:{line_no}: link `{target}`: no file {file}"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if path.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let known = ids
                    .entry(path.clone())
                    .or_insert_with(|| heading_ids(&std::fs::read_to_string(&path).unwrap()));
                if !known.contains(anchor) {
                    problems.push(format!(
                        "{page}:{line_no}: link `{target}`: {} has no heading #{anchor} (it has: {})",
                        if file.is_empty() { page.as_str() } else { file },
                        known.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_page_of_docs_is_in_the_summary() {
    let summary = read("docs/SUMMARY.md");
    let (_, prose) = split(&summary);
    let listed: BTreeSet<String> = prose
        .iter()
        .flat_map(|(_, l)| link_targets(l))
        .map(|t| t.split('#').next().unwrap().to_string())
        .collect();
    let mut problems = Vec::new();
    for (page, _) in pages() {
        let Some(name) = page.strip_prefix("docs/") else {
            continue;
        };
        if name != "SUMMARY.md" && !listed.contains(name) {
            problems.push(format!(
                "docs/SUMMARY.md: {page} is not listed, so `mdbook build docs` leaves it out"
            ));
        }
    }
    for name in &listed {
        if !root().join("docs").join(name).exists() {
            problems.push(format!(
                "docs/SUMMARY.md: lists {name}, which does not exist"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Shell words of a command line, with quotes removed; `$VAR`, `${VAR}` and
/// `$(…)` become `1` (any value does for parsing).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => cur.push(c),
            (Some('"'), '"') => quote = None,
            (_, '$') if quote != Some('\'') => {
                has = true;
                match chars.peek() {
                    Some('(') => {
                        let mut depth = 0;
                        for d in chars.by_ref() {
                            match d {
                                '(' => depth += 1,
                                ')' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Some('{') => {
                        for d in chars.by_ref() {
                            if d == '}' {
                                break;
                            }
                        }
                    }
                    _ => {
                        while chars
                            .peek()
                            .is_some_and(|d| d.is_alphanumeric() || *d == '_')
                        {
                            chars.next();
                        }
                    }
                }
                cur.push('1');
            }
            (Some('"'), '\\') => {
                if let Some(d) = chars.next() {
                    cur.push(d);
                }
            }
            (Some(_), _) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(d) = chars.next() {
                    cur.push(d);
                    has = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has {
                    words.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        words.push(cur);
    }
    words
}

/// Splits a shell line at `|`, `&&`, `||`, `;` and a trailing `&` outside
/// quotes, and drops a `#` comment.
fn shell_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '#') if prev.is_whitespace() => break,
            (None, '|' | ';' | '&') => {
                if matches!(chars.peek(), Some('|' | '&')) {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
        prev = c;
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The `leafe` argument lists of a code block, each with its line: lines
/// that run `leafe …` or `cargo run -- …` (after `VAR=value` assignments),
/// continuation lines joined.
fn leafe_commands(block: &Block) -> Vec<(usize, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < block.lines.len() {
        let start = i;
        let mut line = block.lines[i].clone();
        while line.trim_end().ends_with('\\') && i + 1 < block.lines.len() {
            line = format!(
                "{} {}",
                line.trim_end().trim_end_matches('\\'),
                block.lines[i + 1]
            );
            i += 1;
        }
        i += 1;
        for cmd in shell_commands(&line) {
            let words = shell_words(&cmd);
            let mut w = words.as_slice();
            while w.first().is_some_and(|x| {
                x.contains('=')
                    && !x.starts_with('-')
                    && x.split('=')
                        .next()
                        .unwrap()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                w = &w[1..];
            }
            let args: Vec<String> = match w {
                [leafe, rest @ ..] if leafe == "leafe" => rest.to_vec(),
                [cargo, run, rest @ ..] if cargo == "cargo" && run == "run" => {
                    match rest.iter().position(|x| x == "--") {
                        Some(p) => rest[p + 1..].to_vec(),
                        None => continue,
                    }
                }
                _ => continue,
            };
            // A synopsis marks optional arguments `[--flag value]`: check them as given.
            let args = args
                .into_iter()
                .map(|a| {
                    let a = a.strip_prefix("[-").map_or(a.clone(), |r| format!("-{r}"));
                    match a.strip_suffix(']') {
                        Some(r) if !r.contains('[') => r.to_string(),
                        _ => a,
                    }
                })
                .collect();
            out.push((block.line + start, cmd.trim().to_string(), args));
        }
    }
    out
}

#[test]
fn every_command_in_the_docs_parses() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (page, text) in pages() {
        let (blocks, _) = split(&text);
        for block in blocks {
            if !matches!(
                block.lang.as_str(),
                "" | "sh" | "bash" | "shell" | "console"
            ) {
                continue;
            }
            for (line, cmd, args) in leafe_commands(&block) {
                checked += 1;
                let argv = std::iter::once("leafe".to_string()).chain(args);
                if let Err(e) = leafe::cli::Cli::try_parse_from(argv) {
                    let msg = e.to_string();
                    let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                    problems.push(format!("{page}:{line}: `{cmd}` does not parse: {first}"));
                }
            }
        }
    }
    assert!(
        checked >= 40,
        "found only {checked} commands in the docs' code blocks"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_command_parser_of_this_test_reads_shell_as_a_shell_does() {
    assert_eq!(
        shell_words(r#"sql "SELECT 'a' AS x" --param run=e$DAY% 'e%' a\ b"#),
        ["sql", "SELECT 'a' AS x", "--param", "run=e1%", "e%", "a b"]
    );
    assert_eq!(
        shell_commands("leafe a 'x # y' | head && leafe b # comment"),
        ["leafe a 'x # y' ", " head ", " leafe b "]
    );
    let block = Block {
        lang: "sh".into(),
        line: 10,
        lines: vec![
            "export X=1".into(),
            "LEAFE_PYTHON=tw/bin/python cargo run -- explore \\".into(),
            "  --levels games.txt &".into(),
            "leafe runs [--store DIR]".into(),
        ],
    };
    let found: Vec<(usize, Vec<String>)> = leafe_commands(&block)
        .into_iter()
        .map(|(l, _, a)| (l, a))
        .collect();
    assert_eq!(
        found,
        [
            (
                11,
                vec!["explore".into(), "--levels".into(), "games.txt".into()]
            ),
            (13, vec!["runs".into(), "--store".into(), "DIR".into()]),
        ]
    );
    assert!(leafe::cli::Cli::try_parse_from(["leafe", "no-such-command"]).is_err());
}

/// The `toml` block of docs/configuration.md marked `<!-- config: NAME -->`
/// on the line before it: (its first line, its text).
fn config_block(page: &str, text: &str, name: &str) -> (usize, String) {
    let marker = format!("<!-- config: {name} -->");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == marker)
        .unwrap_or_else(|| panic!("{page}: no `{marker}` followed by a ```toml block"));
    let fence = at + 1;
    assert!(
        lines.get(fence).is_some_and(|l| l.trim() == "```toml"),
        "{page}:{}: `{marker}` must be followed by a ```toml block",
        at + 1
    );
    let end = lines[fence + 1..]
        .iter()
        .position(|l| l.trim() == "```")
        .unwrap_or_else(|| panic!("{page}:{}: the toml block is not closed", fence + 1));
    (fence + 2, lines[fence + 1..fence + 1 + end].join("\n"))
}

/// The line of each key of a TOML text (`table.key` → 1-based line offset).
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut table = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        let commented = t.strip_prefix('#').map(str::trim);
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = h.to_string();
            out.insert(table.clone(), i);
        } else if let Some((k, _)) = commented.unwrap_or(t).split_once(" = ")
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let path = if table.is_empty() {
                k.to_string()
            } else {
                format!("{table}.{k}")
            };
            out.entry(path).or_insert(i);
        }
    }
    out
}

/// Every leaf of a JSON value by dotted path (nulls included).
fn leaves(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(x, &p, out);
            }
        }
        _ => {
            out.insert(path.to_string(), v.clone());
        }
    }
}

/// Checks one config block against `T::default()`: it parses as `T`
/// (unknown keys refused), equals the default, and shows every field (an
/// optional field unset by default as a commented `# key = …` line), each
/// key with a comment line before it.
fn check_config<T>(name: &str) -> Vec<String>
where
    T: Serialize + DeserializeOwned + Default + PartialEq + Debug,
{
    let page = "docs/configuration.md";
    let text = read(page);
    let (first, block) = config_block(page, &text, name);
    let mut problems = Vec::new();
    let lines = key_lines(&block);
    let line_of = |path: &str| {
        let mut p = path.to_string();
        loop {
            if let Some(l) = lines.get(&p) {
                return first + l;
            }
            match p.rsplit_once('.') {
                Some((head, _)) => p = head.to_string(),
                None => return first,
            }
        }
    };
    let parsed: T = match toml::from_str(&block) {
        Ok(v) => v,
        Err(e) => {
            return vec![format!(
                "{page}:{first}: the `{name}` block does not parse as the config: {}",
                e.to_string().lines().next().unwrap_or("")
            )];
        }
    };
    let mut want = BTreeMap::new();
    leaves(&serde_json::to_value(T::default()).unwrap(), "", &mut want);
    let mut got = BTreeMap::new();
    leaves(&serde_json::to_value(&parsed).unwrap(), "", &mut got);
    for (path, w) in &want {
        if got.get(path) != Some(w) {
            problems.push(format!(
                "{page}:{}: [{name}] `{path}` is {} in the page but {} in the code's default",
                line_of(path),
                got.get(path)
                    .map_or("absent".to_string(), |g| g.to_string()),
                w
            ));
        }
        if !lines.contains_key(path) {
            problems.push(format!(
                "{page}:{first}: [{name}] `{path}` is not shown (write it{})",
                if w.is_null() {
                    " as a commented `# key = …` line: unset by default"
                } else {
                    ""
                }
            ));
        }
    }
    if parsed != T::default() && problems.is_empty() {
        problems.push(format!(
            "{page}:{first}: [{name}] the block differs from the default"
        ));
    }
    let block_lines: Vec<&str> = block.lines().collect();
    for (path, &i) in &lines {
        let line = block_lines[i].trim();
        let is_key = !line.starts_with('[');
        let prev = i.checked_sub(1).map(|j| block_lines[j].trim());
        let documented = prev.is_some_and(|p| p.starts_with('#'));
        if is_key && !line.starts_with('#') && !documented {
            problems.push(format!(
                "{page}:{}: [{name}] `{path}` has no comment line saying what it does",
                first + i
            ));
        }
    }
    problems
}

#[test]
fn the_configuration_reference_is_the_code_s_defaults() {
    let mut problems = Vec::new();
    problems.extend(check_config::<leafe::experiment::ExperimentConfig>(
        "experiment",
    ));
    problems.extend(check_config::<leafe::explore::ExploreConfig>("explore"));
    problems.extend(check_config::<leafe::train::PretrainConfig>("pretrain"));
    problems.extend(check_config::<leafe::train::text::TextPretrainConfig>(
        "pretrain_text",
    ));
    problems.extend(check_config::<leafe::train::distill::DistillConfig>(
        "distill",
    ));
    problems.extend(check_config::<leafe::train::grpo::GrpoConfig>("grpo"));
    problems.extend(check_config::<leafe::experiment::text::TextArena>("text"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_shipped_experiment_config_is_the_default() {
    let shipped: leafe::experiment::ExperimentConfig =
        toml::from_str(&read("src/experiment/default.toml")).unwrap();
    assert_eq!(
        shipped,
        leafe::experiment::ExperimentConfig::default(),
        "src/experiment/default.toml differs from ExperimentConfig::default(), which docs/configuration.md shows"
    );
}

/// The text of the section under `heading` (up to the next heading of the
/// same or a higher level), with the line of the heading.
fn section<'a>(text: &'a str, heading: &str) -> Option<(usize, String)> {
    let lines: Vec<&'a str> = text.lines().collect();
    let at = lines.iter().position(|l| l.trim() == heading)?;
    let level = heading.chars().take_while(|c| *c == '#').count();
    let end = lines[at + 1..]
        .iter()
        .position(|l| {
            let n = l.chars().take_while(|c| *c == '#').count();
            n > 0 && n <= level && l[n..].starts_with(' ')
        })
        .map_or(lines.len(), |e| at + 1 + e);
    Some((at + 1, lines[at + 1..end].join("\n")))
}

#[test]
fn the_query_reference_lists_every_query_and_parameter() {
    let page = "docs/queries.md";
    let text = read(page);
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let heading = format!("### `{name}`");
        let Some((line, body)) = section(&text, &heading) else {
            problems.push(format!("{page}: queries/{name} has no section `{heading}`"));
            continue;
        };
        let q = leafe::query::QueryText::from_file(&path).unwrap();
        for p in &q.params {
            let default = p.default.clone().unwrap_or_default();
            let row = format!("| `{}` | {} | `{default}` |", p.name, p.param_type.name());
            if !body.contains(&row) {
                problems.push(format!(
                    "{page}:{line}: `{name}`: parameter `{}` missing or out of date (want a row starting `{row}`)",
                    p.name
                ));
            }
        }
        let rows = body.lines().filter(|l| l.starts_with("| `")).count();
        if rows != q.params.len() {
            problems.push(format!(
                "{page}:{line}: `{name}` lists {rows} parameters, the file declares {}",
                q.params.len()
            ));
        }
        for input in q.inputs() {
            if !body.contains(&format!("`{input}.sql`")) {
                problems.push(format!(
                    "{page}:{line}: `{name}` reads `{input}.sql`, not said"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_table_reference_lists_every_column_of_every_schema() {
    let page = "docs/store.md";
    let text = read(page);
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let schema: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let table = schema["table"].as_str().unwrap();
        let version = schema["version"].as_integer().unwrap();
        let heading = format!("### `{table}` (version {version})");
        let Some((line, body)) = section(&text, &heading) else {
            problems.push(format!("{page}: no section `{heading}` for {}", rel(&path)));
            continue;
        };
        let want: Vec<String> = schema["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "| `{}` | {} | {} |",
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    if c["nullable"].as_bool().unwrap() {
                        "yes"
                    } else {
                        "no"
                    }
                )
            })
            .collect();
        let got: Vec<String> = body
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.splitn(5, '|').take(4).collect::<Vec<_>>().join("|") + "|")
            .map(|l| l.replace("|  ", "| "))
            .collect();
        if got != want {
            problems.push(format!(
                "{page}:{line}: `{table}`'s columns differ from {}:\n  page:   {got:?}\n  schema: {want:?}",
                rel(&path)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// `mdbook build docs` builds the book (from `$LEAFE_MDBOOK`, or `mdbook` on
/// the path), and every relative `href`/`src` in the pages it writes points
/// at a file it wrote: the site a user browses has no dead link. Without
/// mdbook the test says so and skips, except under CI (`.ci/run` installs it).
#[test]
fn the_book_builds_and_its_pages_link_only_to_what_it_wrote() {
    let mdbook = std::env::var("LEAFE_MDBOOK").unwrap_or_else(|_| "mdbook".into());
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(&mdbook)
        .arg("build")
        .arg(root().join("docs"))
        .arg("--dest-dir")
        .arg(out.path())
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must build the book: `{mdbook}` does not run ({e}; see .ci/run)"
            );
            eprintln!(
                "note: `{mdbook}` does not run ({e}); the book build is skipped (.ci/run installs mdbook)"
            );
            return;
        }
    };
    assert!(
        run.status.success(),
        "mdbook build docs failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mut html = Vec::new();
    let mut dirs = vec![out.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                html.push(p);
            }
        }
    }
    let summary_pages = read("docs/SUMMARY.md").matches(".md)").count();
    assert!(
        html.len() > summary_pages,
        "the book has {} HTML pages for {summary_pages} pages in SUMMARY.md",
        html.len()
    );
    let mut dead = Vec::new();
    for page in &html {
        let text = std::fs::read_to_string(page).unwrap();
        for attr in ["href=\"", "src=\""] {
            for (i, _) in text.match_indices(attr) {
                let rest = &text[i + attr.len()..];
                let target = &rest[..rest.find('"').unwrap_or(0)];
                let file = target.split(['#', '?']).next().unwrap_or("");
                let external = file.contains(':') || file.starts_with("//");
                if file.is_empty() || external {
                    continue;
                }
                if !page.parent().unwrap().join(file).exists() {
                    dead.push(format!(
                        "{}: {target}",
                        page.strip_prefix(out.path()).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        dead.is_empty(),
        "dead links in the built book:\n{}",
        dead.join("\n")
    );
}
