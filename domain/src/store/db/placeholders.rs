//! Statements joined into one SQL text (SQLite's anonymous `?`, PostgreSQL's
//! `$n` renumbered), and a numbered placeholder for either backend.

use sea_orm::{DbBackend, Statement};

/// PostgreSQL statements (`$n` placeholders) joined into one:
/// `WITH w0 AS (s0), w1 AS (s1) sN`, each one's placeholders renumbered
/// after the values of those before it.
pub(super) fn join_as_ctes(statements: Vec<Statement>) -> Statement {
    let n = statements.len();
    let mut sql = String::new();
    let mut values = Vec::new();
    for (i, s) in statements.into_iter().enumerate() {
        let part = renumber_placeholders(&s.sql, values.len());
        if let Some(v) = s.values {
            values.extend(v.0);
        }
        if i + 1 < n {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{i} AS ({part})"));
        } else {
            sql.push(' ');
            sql.push_str(&part);
        }
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// SQLite statements (anonymous `?` placeholders) as one text, with their
/// values in order.
pub(super) fn join_as_batch(statements: &[Statement]) -> (String, sea_orm::Values) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for s in statements {
        debug_assert!(
            !s.sql.contains("?1"),
            "numbered placeholders cannot be batched: {}",
            s.sql
        );
        sql.push_str(s.sql.trim_end().trim_end_matches(';'));
        sql.push_str(";\n");
        if let Some(v) = &s.values {
            values.extend(v.0.iter().cloned());
        }
    }
    (sql, sea_orm::Values(values))
}

/// `$n` becomes `$(n + offset)`, outside quoted strings and identifiers.
fn renumber_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n: usize = digits.parse().unwrap_or(0);
                out.push_str(&format!("${}", n + offset));
            }
            None => out.push(c),
        }
    }
    out
}

/// `$n` on PostgreSQL, `?n` on SQLite.
pub fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumber_placeholders(r#"UPDATE "t$1" SET a = $1, b = '$2' WHERE c = $12"#, 3),
            r#"UPDATE "t$1" SET a = $4, b = '$2' WHERE c = $15"#
        );
    }

    #[test]
    fn statements_join_as_ctes_with_their_values_in_order() {
        let a = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO a (x, y) VALUES ($1, $2)",
            [1i32.into(), 2i32.into()],
        );
        let b = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE b SET z = $1 WHERE id = $2",
            [3i32.into(), 4i32.into()],
        );
        let joined = join_as_ctes(vec![a, b]);
        assert_eq!(
            joined.sql,
            "WITH w0 AS (INSERT INTO a (x, y) VALUES ($1, $2)) UPDATE b SET z = $3 WHERE id = $4"
        );
        let values: Vec<sea_orm::Value> = joined.values.unwrap().0;
        assert_eq!(
            values,
            vec![1i32.into(), 2i32.into(), 3i32.into(), 4i32.into()]
        );
    }
}
