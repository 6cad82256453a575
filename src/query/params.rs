//! Query files and their parameters: the header's `@param` and `@input`
//! lines, typed substitution of values as SQL literals, and the dialects
//! literals are written in.

use super::*;

/// A parameter type in a query header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A 64-bit integer.
    Int,
    /// A float.
    Float,
    /// A string (substituted as a quoted SQL literal).
    String,
    /// true or false.
    Bool,
}

impl ParamType {
    /// The name a query header uses for it.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
        }
    }
}

/// A parameter declared in a query file's header.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    /// Name, used as `${name}` in the body.
    pub name: String,
    /// Its type.
    pub param_type: ParamType,
    /// Default value (as written), if any.
    pub default: Option<String>,
    /// What it means.
    pub doc: String,
}

/// A query: SQL text with its declared parameters.
#[derive(Debug, Clone)]
pub struct QueryText {
    /// Where it came from (file path or `command line`).
    pub source_name: String,
    /// The SQL, header included.
    pub sql: String,
    /// Declared parameters.
    pub params: Vec<ParamDecl>,
}

/// A query with its parameters substituted, ready to run.
#[derive(Debug, Clone)]
pub struct BoundQuery {
    /// Where it came from.
    pub source_name: String,
    /// The SQL to run.
    pub sql: String,
}

impl QueryText {
    /// SQL given inline (no parameters declared).
    pub fn inline(sql: &str) -> QueryText {
        QueryText::parse("command line", sql).unwrap_or_else(|_| QueryText {
            source_name: "command line".into(),
            sql: sql.to_string(),
            params: Vec::new(),
        })
    }

    /// Reads a query file.
    pub fn from_file(path: &std::path::Path) -> Result<QueryText> {
        let sql = std::fs::read_to_string(path).map_err(|source| QueryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        QueryText::parse(&path.display().to_string(), &sql)
    }

    /// Parses the `-- @param` lines of a query's header.
    pub fn parse(source_name: &str, sql: &str) -> Result<QueryText> {
        let mut params = Vec::new();
        for line in sql.lines() {
            let Some(rest) = line.trim().strip_prefix("--").map(str::trim) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix("@param") else {
                continue;
            };
            let bad = |problem: String| QueryError::BadParam {
                source_name: source_name.to_string(),
                name: rest.split_whitespace().next().unwrap_or("?").to_string(),
                problem,
            };
            let mut words = rest.split_whitespace();
            let name = words
                .next()
                .ok_or_else(|| bad("`@param` needs a name".into()))?
                .to_string();
            let param_type = match words.next() {
                Some("int") => ParamType::Int,
                Some("float") => ParamType::Float,
                Some("string") => ParamType::String,
                Some("bool") => ParamType::Bool,
                other => {
                    return Err(bad(format!(
                        "unknown type {other:?} (int, float, string, bool)"
                    )));
                }
            };
            let mut rest: Vec<&str> = words.collect();
            let default = if rest.first() == Some(&"=") && rest.len() >= 2 {
                let d = rest[1].to_string();
                rest.drain(..2);
                Some(d)
            } else {
                None
            };
            params.push(ParamDecl {
                name,
                param_type,
                default,
                doc: rest.join(" "),
            });
        }
        Ok(QueryText {
            source_name: source_name.to_string(),
            sql: sql.to_string(),
            params,
        })
    }

    /// The queries this one reads as tables: the names of its
    /// `-- @input NAME  description` lines, in order.
    pub fn inputs(&self) -> Vec<&str> {
        self.sql
            .lines()
            .filter_map(|line| {
                line.trim()
                    .strip_prefix("--")?
                    .trim()
                    .strip_prefix("@input")
            })
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect()
    }

    /// Substitutes parameter values (given ones over defaults) into the body,
    /// as literals of standard SQL (DataFusion's, DuckDB's, Trino's).
    pub fn bind(&self, values: &BTreeMap<String, String>) -> Result<BoundQuery> {
        self.bind_for(values, Dialect::Standard)
    }

    /// [`QueryText::bind`] with string literals written for `dialect`.
    pub fn bind_for(
        &self,
        values: &BTreeMap<String, String>,
        dialect: Dialect,
    ) -> Result<BoundQuery> {
        for name in values.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let declared = if self.params.is_empty() {
                    "none".to_string()
                } else {
                    self.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(QueryError::UnknownParam {
                    source_name: self.source_name.clone(),
                    name: name.clone(),
                    declared,
                });
            }
        }
        let mut literals: BTreeMap<&str, String> = BTreeMap::new();
        for p in &self.params {
            let bad = |problem: String| QueryError::BadParam {
                source_name: self.source_name.clone(),
                name: p.name.clone(),
                problem,
            };
            let value = values.get(&p.name).or(p.default.as_ref()).ok_or_else(|| {
                bad("no value given and no default (pass --param NAME=VALUE)".into())
            })?;
            let literal = match p.param_type {
                ParamType::Int => value
                    .parse::<i64>()
                    .map(|v| v.to_string())
                    .map_err(|_| bad(format!("`{value}` is not an integer")))?,
                ParamType::Float => match value.parse::<f64>() {
                    Ok(v) if v.is_finite() => format!("{v:?}"),
                    _ => return Err(bad(format!("`{value}` is not a finite number"))),
                },
                ParamType::Bool => match value.as_str() {
                    "true" | "false" => value.clone(),
                    _ => return Err(bad(format!("`{value}` is not true or false"))),
                },
                ParamType::String => dialect.string_literal(value),
            };
            literals.insert(&p.name, literal);
        }
        // One pass over the text: a value that itself reads `${other}` stays
        // inside its literal instead of being substituted again. Header
        // lines hold `${…}` in docs only if the author wrote them; an
        // unresolved one in the body is an error the engine reports itself.
        let mut sql = String::with_capacity(self.sql.len());
        let mut rest = self.sql.as_str();
        while let Some(at) = rest.find("${") {
            sql.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match after
                .find('}')
                .and_then(|end| literals.get(&after[..end]).map(|l| (end, l)))
            {
                Some((end, literal)) => {
                    sql.push_str(literal);
                    rest = &after[end + 1..];
                }
                None => {
                    sql.push_str("${");
                    rest = after;
                }
            }
        }
        sql.push_str(rest);
        Ok(BoundQuery {
            source_name: self.source_name.clone(),
            sql,
        })
    }
}

/// The SQL dialect a bound query is written for. Only string literals
/// differ: the query files use SQL that DataFusion, DuckDB and Spark share.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Standard SQL string literals (`'o''brien'`, backslash is a plain
    /// character): DataFusion, DuckDB, Trino, PostgreSQL.
    #[default]
    Standard,
    /// Spark SQL: backslash escapes inside literals (`'o\'brien'`), since
    /// Spark reads `'a''b'` as two adjacent literals, `ab`.
    Spark,
}

impl Dialect {
    /// `value` as a string literal of this dialect.
    pub fn string_literal(self, value: &str) -> String {
        match self {
            Dialect::Standard => format!("'{}'", value.replace('\'', "''")),
            Dialect::Spark => {
                let mut out = String::with_capacity(value.len() + 2);
                out.push('\'');
                for c in value.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                out
            }
        }
    }
}

/// Escapes a run id for use as an exact SQL LIKE pattern (a `run` parameter
/// that matches that one run).
pub fn like_exact(run_id: &str) -> String {
    run_id
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
