//! Administrators' SQL expressions — check constraints and row-level
//! security policies — vetted by parsing them with `sqlparser` and
//! rendered back from the parsed tree, so what reaches the database is
//! exactly one expression and never text riding along with it.
//!
//! Every expression is tokenized first: `;`, comments, NUL and
//! placeholders (`$1`, `?`) are refused; then it must parse as **one**
//! expression with nothing after it (statements cannot parse as an
//! expression). A check expression is further held to a closed set of
//! forms: the table's own columns, literals (numbers, `'strings'`,
//! booleans, NULL), arithmetic, comparison and logical operators, `IS
//! [NOT] NULL`, `[NOT] IN (list)`, `BETWEEN`, `LIKE`, `CASE`, `CAST` to a
//! few types and a few pure functions; subqueries, `EXISTS`, qualified
//! names and everything else are refused. Identifiers are rewritten to the
//! column's exact name, double-quoted.

use goforward_core::sea_orm::DbBackend;
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, UnaryOperator, Value,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use super::error::{MetaError, Result};

/// The longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4000;
/// How deeply an expression may nest.
const MAX_DEPTH: usize = 40;
/// Functions a check constraint may call (pure, on both backends).
const FUNCTIONS: [&str; 12] = [
    "abs", "coalesce", "nullif", "length", "lower", "upper", "trim", "ltrim", "rtrim", "round",
    "substr", "replace",
];

fn dialect(backend: DbBackend) -> Box<dyn Dialect> {
    match backend {
        DbBackend::Postgres => Box::new(PostgreSqlDialect {}),
        _ => Box::new(SQLiteDialect {}),
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> MetaError {
    MetaError::InvalidRequest(format!("{field}: {why}"))
}

/// Tokenizes and parses exactly one expression.
fn parse_one(field: &str, text: &str, backend: DbBackend) -> Result<Expr> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_LEN {
        return Err(bad(field, format!("must be 1-{MAX_LEN} bytes")));
    }
    if text.contains('\0') {
        return Err(bad(field, "must not contain NUL"));
    }
    let d = dialect(backend);
    let tokens = Tokenizer::new(d.as_ref(), text)
        .tokenize()
        .map_err(|_| bad(field, "is not a valid SQL expression"))?;
    for t in &tokens {
        match t {
            Token::SemiColon => return Err(bad(field, "must not contain `;`")),
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {
                return Err(bad(field, "must not contain comments"));
            }
            Token::Placeholder(_) => return Err(bad(field, "must not contain placeholders")),
            _ => {}
        }
    }
    let mut parser = Parser::new(d.as_ref())
        .with_recursion_limit(MAX_DEPTH)
        .with_tokens(tokens);
    let expr = parser
        .parse_expr()
        .map_err(|_| bad(field, "is not a valid SQL expression"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(bad(field, "must be a single expression"));
    }
    Ok(expr)
}

/// A row-level security policy expression (`using` / `with_check`,
/// PostgreSQL): one expression — subqueries and function calls allowed, as
/// policies need them — rendered from its parse tree.
///
/// # Errors
/// [`MetaError::InvalidRequest`] naming `field`.
pub fn policy_expression(field: &str, text: &str) -> Result<String> {
    Ok(parse_one(field, text, DbBackend::Postgres)?.to_string())
}

/// A vetted check expression: the SQL to put inside `CHECK (…)` and the
/// columns it reads (in order of first use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckExpr {
    /// Rendered from the parse tree.
    pub sql: String,
    /// Columns referenced.
    pub columns: Vec<String>,
}

/// Vets a check constraint expression over a table with `columns`.
///
/// # Errors
/// [`MetaError::InvalidRequest`] naming `field` for anything outside the
/// closed set described in the module docs, or an unknown column.
pub fn check_expression(
    field: &str,
    text: &str,
    backend: DbBackend,
    columns: &[String],
) -> Result<CheckExpr> {
    let mut expr = parse_one(field, text, backend)?;
    let mut v = Vetter {
        columns,
        backend,
        used: Vec::new(),
    };
    v.vet(&mut expr).map_err(|why| bad(field, why))?;
    Ok(CheckExpr {
        sql: expr.to_string(),
        columns: v.used,
    })
}

struct Vetter<'a> {
    columns: &'a [String],
    backend: DbBackend,
    used: Vec<String>,
}

impl Vetter<'_> {
    fn ident(&mut self, id: &mut Ident) -> Result<(), String> {
        let found = if id.quote_style.is_some() {
            self.columns.iter().find(|c| **c == id.value)
        } else {
            self.columns
                .iter()
                .find(|c| **c == id.value)
                .or_else(|| match self.backend {
                    // PostgreSQL folds unquoted names to lower case.
                    DbBackend::Postgres => {
                        let lower = id.value.to_lowercase();
                        self.columns.iter().find(|c| **c == lower)
                    }
                    // SQLite compares names case-insensitively.
                    _ => self
                        .columns
                        .iter()
                        .find(|c| c.eq_ignore_ascii_case(&id.value)),
                })
        };
        let Some(col) = found else {
            return Err(format!("the table has no column {:?}", id.value));
        };
        if !self.used.contains(col) {
            self.used.push(col.clone());
        }
        *id = Ident::with_quote('"', col.clone());
        Ok(())
    }

    fn vet(&mut self, e: &mut Expr) -> Result<(), String> {
        match e {
            Expr::Identifier(id) => self.ident(id),
            Expr::CompoundIdentifier(_) => Err("qualified names are not allowed".into()),
            Expr::Value(v) => match &v.value {
                Value::Number(..)
                | Value::SingleQuotedString(_)
                | Value::Boolean(_)
                | Value::Null => Ok(()),
                _ => Err("only numbers, 'strings', booleans and NULL may be literals".into()),
            },
            Expr::BinaryOp { left, op, right } => {
                use BinaryOperator as B;
                match op {
                    B::Plus
                    | B::Minus
                    | B::Multiply
                    | B::Divide
                    | B::Modulo
                    | B::StringConcat
                    | B::Gt
                    | B::Lt
                    | B::GtEq
                    | B::LtEq
                    | B::Eq
                    | B::NotEq
                    | B::And
                    | B::Or => {}
                    other => return Err(format!("operator {other} is not allowed")),
                }
                self.vet(left)?;
                self.vet(right)
            }
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus => self.vet(expr),
                other => Err(format!("operator {other} is not allowed")),
            },
            Expr::Nested(x)
            | Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotFalse(x) => self.vet(x),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.vet(a)?;
                self.vet(b)
            }
            Expr::InList { expr, list, .. } => {
                self.vet(expr)?;
                list.iter_mut().try_for_each(|x| self.vet(x))
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.vet(expr)?;
                self.vet(low)?;
                self.vet(high)
            }
            Expr::Like {
                any: false,
                expr,
                pattern,
                escape_char,
                ..
            } => {
                if !matches!(escape_char, None | Some(Value::SingleQuotedString(_))) {
                    return Err("ESCAPE takes a 'string'".into());
                }
                self.vet(expr)?;
                self.vet(pattern)
            }
            Expr::ILike {
                any: false,
                expr,
                pattern,
                escape_char,
                ..
            } if self.backend == DbBackend::Postgres => {
                if !matches!(escape_char, None | Some(Value::SingleQuotedString(_))) {
                    return Err("ESCAPE takes a 'string'".into());
                }
                self.vet(expr)?;
                self.vet(pattern)
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                array: false,
                format: None,
            } => {
                let ok = matches!(
                    data_type,
                    SqlType::Int(None)
                        | SqlType::Integer(None)
                        | SqlType::BigInt(None)
                        | SqlType::SmallInt(None)
                        | SqlType::Text
                        | SqlType::Real
                        | SqlType::DoublePrecision
                        | SqlType::Numeric(_)
                        | SqlType::Decimal(_)
                        | SqlType::Boolean
                        | SqlType::Bool
                        | SqlType::Date
                );
                if !ok {
                    return Err(format!("CAST to {data_type} is not allowed"));
                }
                // `CAST(x AS t)`, which both backends read.
                *kind = CastKind::Cast;
                self.vet(expr)
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.vet(o)?;
                }
                for w in conditions.iter_mut() {
                    self.vet(&mut w.condition)?;
                    self.vet(&mut w.result)?;
                }
                if let Some(x) = else_result {
                    self.vet(x)?;
                }
                Ok(())
            }
            Expr::Function(f) => {
                let name = match f.name.0.as_slice() {
                    [part] => part
                        .as_ident()
                        .filter(|i| i.quote_style.is_none())
                        .map(|i| i.value.to_lowercase()),
                    _ => None,
                };
                let Some(name) = name.filter(|n| FUNCTIONS.contains(&n.as_str())) else {
                    return Err(format!(
                        "function {} is not allowed (allowed: {})",
                        f.name,
                        FUNCTIONS.join(", ")
                    ));
                };
                let plain = f.filter.is_none()
                    && f.over.is_none()
                    && f.null_treatment.is_none()
                    && f.within_group.is_empty()
                    && matches!(f.parameters, FunctionArguments::None);
                let FunctionArguments::List(list) = &mut f.args else {
                    return Err(format!("{name} takes a plain argument list"));
                };
                if !plain || list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(format!("{name} takes a plain argument list"));
                }
                f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name.clone())]);
                for arg in list.args.iter_mut() {
                    match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => self.vet(x)?,
                        _ => return Err(format!("{name} takes a plain argument list")),
                    }
                }
                Ok(())
            }
            _ => Err(
                "only column comparisons, arithmetic, IN, BETWEEN, LIKE, CASE, CAST and simple \
                 functions are allowed (no subqueries or statements)"
                    .into(),
            ),
        }
    }
}

/// Whether `sql` (SQL the database stored: a check expression, a trigger)
/// mentions `column` as a word. Conservative: an unparsable text, or the
/// name of another table's column spelled the same, counts as a mention.
pub fn mentions(sql: &str, backend: DbBackend, column: &str) -> bool {
    let d = dialect(backend);
    match Tokenizer::new(d.as_ref(), sql).tokenize() {
        Ok(tokens) => tokens.iter().any(|t| match t {
            Token::Word(w) if w.quote_style.is_some() => w.value == column,
            Token::Word(w) => w.value.eq_ignore_ascii_case(column),
            _ => false,
        }),
        Err(_) => true,
    }
}

/// What a SQLite `CREATE TABLE` text declares beyond the pragmas: its check
/// constraints and whether its key is `AUTOINCREMENT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteTableText {
    /// Check constraints as `(name, expression)`: the declared name, else
    /// `<table>_<column>_check` (column-level) / `<table>_<first column
    /// read>_check` (table-level; `<table>_check` when it reads none), made
    /// unique with a counter suffix (`…_check1`) in declaration order.
    pub checks: Vec<(String, String)>,
    /// The integer primary key is declared `AUTOINCREMENT`.
    pub autoincrement: bool,
}

/// Parses the `CREATE TABLE` text SQLite stored for `table`; `None` when
/// sqlparser cannot read it.
pub fn sqlite_table(table: &str, sql: &str) -> Option<SqliteTableText> {
    use sqlparser::ast::{ColumnOption, Statement, TableConstraint};
    let d = SQLiteDialect {};
    let autoincrement = Tokenizer::new(&d, sql)
        .tokenize()
        .ok()?
        .iter()
        .any(|t| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("autoincrement")));
    let mut parsed = Parser::parse_sql(&d, sql).ok()?;
    let Some(Statement::CreateTable(create)) = parsed.pop() else {
        return None;
    };
    let first_word = |expr: &Expr| -> Option<String> {
        let text = expr.to_string();
        let cols: Vec<&str> = create
            .columns
            .iter()
            .map(|c| c.name.value.as_str())
            .collect();
        Tokenizer::new(&d, &text)
            .tokenize()
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                Token::Word(w) => cols
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(&w.value))
                    .map(|c| (*c).to_owned()),
                _ => None,
            })
    };
    let mut raw: Vec<(Option<String>, String, String)> = Vec::new();
    for c in &create.columns {
        for o in &c.options {
            if let ColumnOption::Check(ck) = &o.option {
                let name = o
                    .name
                    .as_ref()
                    .or(ck.name.as_ref())
                    .map(|n| n.value.clone());
                raw.push((
                    name,
                    format!("{table}_{}_check", c.name.value),
                    ck.expr.to_string(),
                ));
            }
        }
    }
    for tc in &create.constraints {
        if let TableConstraint::Check(ck) = tc {
            let base = match first_word(&ck.expr) {
                Some(col) => format!("{table}_{col}_check"),
                None => format!("{table}_check"),
            };
            raw.push((
                ck.name.as_ref().map(|n| n.value.clone()),
                base,
                ck.expr.to_string(),
            ));
        }
    }
    let mut checks: Vec<(String, String)> = Vec::new();
    for (given, base, expr) in raw {
        let name = match given {
            Some(n) => n,
            None => unique_name(&base, |n| checks.iter().any(|(x, _)| x == n)),
        };
        checks.push((name, expr));
    }
    Some(SqliteTableText {
        checks,
        autoincrement,
    })
}

/// `base`, or `base1`, `base2`… — the first that `taken` refuses not.
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_owned();
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        ["price", "qty", "Name", "order"].map(String::from).to_vec()
    }

    fn check(text: &str, backend: DbBackend) -> Result<CheckExpr> {
        check_expression("expression", text, backend, &cols())
    }

    #[test]
    fn good_checks_are_rendered_from_the_tree() {
        for b in [DbBackend::Sqlite, DbBackend::Postgres] {
            let c = check("price > 0 AND qty BETWEEN 1 AND 10", b).unwrap();
            assert_eq!(c.sql, "\"price\" > 0 AND \"qty\" BETWEEN 1 AND 10", "{b:?}");
            assert_eq!(c.columns, ["price", "qty"]);
            let c = check("\"order\" IN ('a', 'b''c') OR length(\"Name\") < 5", b).unwrap();
            assert_eq!(c.sql, "\"order\" IN ('a', 'b''c') OR length(\"Name\") < 5");
            assert_eq!(
                check("CAST(qty AS INTEGER) >= 0", b).unwrap().sql,
                "CAST(\"qty\" AS INTEGER) >= 0"
            );
        }
        assert_eq!(
            check("qty::integer >= 0", DbBackend::Postgres).unwrap().sql,
            "CAST(\"qty\" AS INTEGER) >= 0"
        );
    }

    #[test]
    fn injections_and_non_expressions_are_refused() {
        for text in [
            "price > 0); DROP TABLE t; --",
            "price > 0; DROP TABLE t",
            "price > 0 -- x",
            "price > 0 /* x */",
            "DROP TABLE t",
            "SELECT 1",
            "price > (SELECT max(price) FROM t)",
            "EXISTS (SELECT 1)",
            "price IN (SELECT 1)",
            "t.price > 0",
            "nope > 0",
            "pg_sleep(10) IS NULL",
            "price > $1",
            "price > 0 price",
            "",
            "price > 0)",
            "(price > 0",
            "price > 0\0",
            "count(*) > 0",
        ] {
            for b in [DbBackend::Sqlite, DbBackend::Postgres] {
                let err = check(text, b).expect_err(text);
                assert_eq!(err.code(), "meta.invalid_request", "{text}");
            }
        }
        let deep = format!("{}price{}", "(".repeat(200), ")".repeat(200));
        assert!(check(&deep, DbBackend::Postgres).is_err());
        assert!(check(&"x".repeat(MAX_LEN + 1), DbBackend::Sqlite).is_err());
    }

    #[test]
    fn policy_expressions_are_one_expression() {
        assert_eq!(
            policy_expression("using", "user_id = auth.uid()").unwrap(),
            "user_id = auth.uid()"
        );
        assert!(policy_expression("using", "EXISTS (SELECT 1 FROM m WHERE m.u = user_id)").is_ok());
        for text in [
            "true; DROP TABLE t",
            "true -- x",
            "true) OR (true",
            "(true",
            "true false",
        ] {
            assert!(policy_expression("using", text).is_err(), "{text}");
        }
    }

    #[test]
    fn sqlite_create_table_text_lists_checks() {
        let t = sqlite_table(
            "t",
            "CREATE TABLE \"t\" ( \"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
             \"a\" integer CHECK (a > 0), \"b\" text CONSTRAINT \"b_len\" CHECK (length(b) < 9), \
             CHECK (a < 100), CHECK (1 = 1), CONSTRAINT \"named\" CHECK (a <> 5), CHECK (a <> 6) )",
        )
        .unwrap();
        assert!(t.autoincrement);
        let names: Vec<&str> = t.checks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "t_a_check",
                "b_len",
                "t_a_check1",
                "t_check",
                "named",
                "t_a_check2"
            ]
        );
        assert_eq!(t.checks[0].1, "a > 0");
        let plain =
            sqlite_table("u", "CREATE TABLE u (id INTEGER PRIMARY KEY, x uuid_text)").unwrap();
        assert!(!plain.autoincrement);
        assert!(plain.checks.is_empty());
        // What sea-query writes for SQLite.
        let seaq = sqlite_table(
            "b",
            "CREATE TABLE \"b\" ( \"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \"u\" uuid_text, \
             \"at\" timestamp_text DEFAULT CURRENT_TIMESTAMP, \"n\" real DEFAULT 1.5, \"s\" text DEFAULT 'x''y', \
             \"j\" json_text, \"a\" integer NOT NULL, \"c\" integer UNIQUE, \
             UNIQUE (\"a\", \"c\"), CONSTRAINT \"b_a_fkey\" FOREIGN KEY (\"a\") REFERENCES \"authors\" (\"id\") \
             ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"k\" CHECK (\"a\" > 0) )",
        )
        .unwrap();
        assert_eq!(seaq.checks, [("k".to_owned(), "\"a\" > 0".to_owned())]);
    }

    #[test]
    fn mentions_finds_words() {
        assert!(mentions(
            "CREATE TRIGGER x AFTER UPDATE ON t BEGIN UPDATE t SET qty = 1; END",
            DbBackend::Sqlite,
            "qty"
        ));
        assert!(!mentions("\"price\" > 0", DbBackend::Sqlite, "qty"));
        assert!(mentions("\"Qty\" > 0", DbBackend::Sqlite, "Qty"));
    }
}
