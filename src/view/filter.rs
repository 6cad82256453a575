//! The tasks page's free condition: one boolean expression over episode
//! columns (`depth >= 2 AND NOT success`), never a statement.
//!
//! The text is parsed as a single SQL expression; anything after it, a
//! subquery, or a name that is not a column of `episodes` is refused in one
//! line. What runs is the parsed expression printed back, so the text a
//! user typed can never change the structure of the query around it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::store::{PARTITION_COLUMN, Table};

/// Longest condition accepted, in bytes.
const MAX_LEN: usize = 2000;

/// Checks a condition and returns it as it will run, or one line saying why
/// it is refused.
pub fn check_condition(text: &str) -> Result<String, String> {
    let refuse = |why: String| Err(format!("condition `{}`: {why}", text.trim()));
    if text.len() > MAX_LEN {
        return Err(format!(
            "the condition is {} bytes long; at most {MAX_LEN}",
            text.len()
        ));
    }
    let dialect = GenericDialect {};
    let mut parser = match Parser::new(&dialect).try_with_sql(text) {
        Ok(p) => p,
        Err(e) => return refuse(format!("does not parse: {e}")),
    };
    let expr = match parser.parse_expr() {
        Ok(e) => e,
        Err(e) => return refuse(format!("is not an expression: {e}")),
    };
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return refuse(format!(
            "is not one condition: `{}` after the expression (a condition is a boolean expression over episode columns, not a statement)",
            next.token
        ));
    }
    let columns: Vec<String> = Table::Episodes
        .schema()
        .columns
        .iter()
        .map(|c| c.name.clone())
        .chain([PARTITION_COLUMN.to_string()])
        .collect();
    let found = visit_expressions(&expr, |e| {
        let problem = match e {
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                Some("contains a subquery; only episode columns may be read".to_string())
            }
            Expr::Identifier(id) if !columns.contains(&id.value.to_lowercase()) => Some(format!(
                "`{}` is not a column of episodes ({})",
                id.value,
                columns.join(", ")
            )),
            Expr::CompoundIdentifier(ids) => Some(format!(
                "`{}`: name columns without a table ({})",
                ids.iter()
                    .map(|i| i.value.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
                columns.join(", ")
            )),
            _ => None,
        };
        match problem {
            Some(p) => ControlFlow::Break(p),
            None => ControlFlow::Continue(()),
        }
    });
    if let ControlFlow::Break(why) = found {
        return refuse(why);
    }
    Ok(expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boolean_expression_over_episode_columns_passes() {
        assert_eq!(
            check_condition("depth >= 2 and not success").unwrap(),
            "depth >= 2 AND NOT success"
        );
        assert!(check_condition("policy LIKE 'llm%' OR length > 10").is_ok());
    }

    #[test]
    fn statements_subqueries_and_other_names_are_refused_in_one_line() {
        for bad in [
            "1=1; DROP TABLE episodes",
            "success) UNION SELECT * FROM steps --",
            "depth > 1 UNION SELECT 1",
            "episode_id IN (SELECT episode_id FROM steps)",
            "EXISTS (SELECT 1)",
            "observation = 'x'",
            "s.depth = 1",
            "depth >",
            "",
        ] {
            let e = check_condition(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        let e = check_condition("observation = 'x'").unwrap_err();
        assert!(
            e.contains("`observation` is not a column of episodes"),
            "{e}"
        );
    }
}
