//! The search filter language: MLflow's, plus `OR` and parentheses.
//!
//! ```text
//! expr       := and_expr ( OR and_expr )*
//! and_expr   := term ( AND term )*
//! term       := '(' expr ')' | comparison
//! comparison := identifier op value | identifier IS [NOT] NULL | identifier [NOT] IN '(' values ')'
//! identifier := entity '.' key | attribute      entity := metrics | params | tags | attributes (and singulars)
//! ```
//! Keys may be quoted with backticks or double quotes when they contain spaces or operators.
//! Errors name the character position (0-based) where parsing failed.

use super::{DomainError, DomainResult};

/// What a comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// The latest value of a metric.
    Metric,
    /// A parameter.
    Param,
    /// A tag.
    Tag,
    /// A column of the object itself (status, start_time, name, ...).
    Attribute,
    /// A dataset the run used (`datasets.name`, `datasets.digest`, `datasets.context`).
    Dataset,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards)
    Like,
    /// `ILIKE` (case-insensitive)
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
}

impl Op {
    /// Whether this operator compares numbers or orders values.
    pub fn is_ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
    /// SQL spelling of the simple binary operators.
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number literal.
    Number(f64),
    /// A quoted string.
    Text(String),
    /// A parenthesized list of strings (for IN).
    List(Vec<String>),
    /// Nothing (IS NULL / IS NOT NULL).
    None,
}

/// One `entity.key op value` test.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What is compared.
    pub entity: Entity,
    /// Metric/param/tag name, or the attribute's canonical name.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The literal.
    pub value: Value,
    /// Where the comparison starts in the filter text.
    pub position: usize,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// A single test.
    Cmp(Comparison),
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// What is ordered by.
    pub entity: Entity,
    /// Metric/param/tag name, or the attribute's canonical name.
    pub key: String,
    /// Ascending (default) or descending.
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String, char),
    Number(f64),
    Op(Op),
    LParen,
    RParen,
    Comma,
    Dot,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn err(pos: usize, msg: impl std::fmt::Display) -> DomainError {
    DomainError::invalid(format!("invalid filter at position {pos}: {msg}"))
}

fn lex(input: &str) -> DomainResult<Vec<Token>> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // character position (not byte) is reported: convert at the end
    let cpos = |idx: usize| idx;
    while i < chars.len() {
        let (_, c) = chars[i];
        let pos = cpos(i);
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token {
                    tok: Tok::LParen,
                    pos,
                });
                i += 1
            }
            ')' => {
                out.push(Token {
                    tok: Tok::RParen,
                    pos,
                });
                i += 1
            }
            ',' => {
                out.push(Token {
                    tok: Tok::Comma,
                    pos,
                });
                i += 1
            }
            '=' => {
                let step = if chars.get(i + 1).map(|c| c.1) == Some('=') {
                    2
                } else {
                    1
                };
                out.push(Token {
                    tok: Tok::Op(Op::Eq),
                    pos,
                });
                i += step
            }
            '!' => {
                if chars.get(i + 1).map(|c| c.1) == Some('=') {
                    out.push(Token {
                        tok: Tok::Op(Op::Ne),
                        pos,
                    });
                    i += 2
                } else {
                    return Err(err(pos, "expected '!=' "));
                }
            }
            '<' | '>' => {
                let next = chars.get(i + 1).map(|c| c.1);
                let (op, step) = match (c, next) {
                    ('<', Some('=')) => (Op::Le, 2),
                    ('<', Some('>')) => (Op::Ne, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', Some('=')) => (Op::Ge, 2),
                    _ => (Op::Gt, 1),
                };
                out.push(Token {
                    tok: Tok::Op(op),
                    pos,
                });
                i += step
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j).map(|c| c.1) {
                        None => {
                            return Err(err(pos, format!("unterminated {quote}-quoted string")));
                        }
                        Some(ch) if ch == quote => {
                            // a doubled quote is an escaped quote
                            if chars.get(j + 1).map(|c| c.1) == Some(quote) {
                                s.push(quote);
                                j += 2;
                            } else {
                                j += 1;
                                break;
                            }
                        }
                        Some('\\') if matches!(chars.get(j + 1).map(|c| c.1), Some(q) if q == quote || q == '\\') =>
                        {
                            s.push(chars[j + 1].1);
                            j += 2;
                        }
                        Some(ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Quoted(s, quote),
                    pos,
                });
                i = j;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.1.is_ascii_digit() || n.1 == '.')
                    && !matches!(out.last(), Some(Token { tok: Tok::Dot, .. }))) =>
            {
                let mut j = i + 1;
                while j < chars.len() {
                    let ch = chars[j].1;
                    let prev = chars[j - 1].1;
                    if ch.is_ascii_digit()
                        || ch == '.'
                        || ch == 'e'
                        || ch == 'E'
                        || ((ch == '-' || ch == '+') && (prev == 'e' || prev == 'E'))
                    {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().map(|c| c.1).collect();
                let n: f64 = text
                    .parse()
                    .map_err(|_| err(pos, format!("'{text}' is not a number")))?;
                out.push(Token {
                    tok: Tok::Number(n),
                    pos,
                });
                i = j;
            }
            '.' => {
                out.push(Token { tok: Tok::Dot, pos });
                i += 1
            }
            c if c.is_alphanumeric() || c == '_' => {
                // an identifier: entity prefix or key; keys run until whitespace or an operator
                let mut j = i + 1;
                while j < chars.len() {
                    let ch = chars[j].1;
                    if ch.is_alphanumeric() || matches!(ch, '_' | '-' | '/' | ':' | '.') {
                        j += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[i..j].iter().map(|c| c.1).collect();
                out.push(Token {
                    tok: Tok::Ident(text),
                    pos,
                });
                i = j;
            }
            other => return Err(err(pos, format!("unexpected character '{other}'"))),
        }
    }
    Ok(out)
}

/// Which attribute names an object kind offers, mapping aliases to canonical names.
pub type AttributeResolver = fn(&str) -> Option<&'static str>;

/// Attributes of a run usable in filters and order_by.
pub fn run_attribute(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "run_id" | "run_uuid" | "id" => "run_id",
        "run_name" | "name" => "run_name",
        "status" => "status",
        "user_id" | "user" => "user_id",
        "start_time" | "created" | "creation_time" => "start_time",
        "end_time" => "end_time",
        "artifact_uri" => "artifact_uri",
        "lifecycle_stage" => "lifecycle_stage",
        _ => return None,
    })
}

/// Attributes of an experiment usable in filters and order_by.
pub fn experiment_attribute(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "name" => "name",
        "experiment_id" | "id" => "experiment_id",
        "creation_time" | "created" => "creation_time",
        "last_update_time" => "last_update_time",
        "lifecycle_stage" => "lifecycle_stage",
        _ => return None,
    })
}

/// Attributes that hold numbers (compared numerically).
pub fn is_numeric_attribute(name: &str) -> bool {
    matches!(
        name,
        "start_time"
            | "end_time"
            | "creation_time"
            | "last_update_time"
            | "experiment_id"
            | "version_number"
    )
}

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    end: usize,
    attrs: AttributeResolver,
    allow: &'a [Entity],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }
    fn pos(&self) -> usize {
        self.peek().map(|t| t.pos).unwrap_or(self.end)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s.eq_ignore_ascii_case(kw))
    }

    fn expr(&mut self) -> DomainResult<Expr> {
        let mut parts = vec![self.and_expr()?];
        while self.keyword("or") {
            self.i += 1;
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> DomainResult<Expr> {
        let mut parts = vec![self.term()?];
        while self.keyword("and") {
            self.i += 1;
            parts.push(self.term()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Expr::And(parts)
        })
    }

    fn term(&mut self) -> DomainResult<Expr> {
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            let open = self.pos();
            self.i += 1;
            let e = self.expr()?;
            match self.next() {
                Some(Token {
                    tok: Tok::RParen, ..
                }) => Ok(e),
                Some(t) => Err(err(
                    t.pos,
                    format!("expected ')' to close '(' at position {open}"),
                )),
                None => Err(err(
                    self.end,
                    format!("missing ')' to close '(' at position {open}"),
                )),
            }
        } else {
            Ok(Expr::Cmp(self.comparison()?))
        }
    }

    fn identifier(&mut self) -> DomainResult<(Entity, String, usize)> {
        let pos = self.pos();
        let tok = self
            .next()
            .ok_or_else(|| err(pos, "expected an identifier such as metrics.acc"))?;
        let (entity, key) = match tok.tok {
            Tok::Ident(text) => {
                let (prefix, rest) = match text.split_once('.') {
                    Some((p, r)) => (p.to_string(), Some(r.to_string())),
                    None => (text.clone(), None),
                };
                let entity = match prefix.to_ascii_lowercase().as_str() {
                    "metric" | "metrics" => Some(Entity::Metric),
                    "param" | "params" | "parameter" | "parameters" => Some(Entity::Param),
                    "tag" | "tags" => Some(Entity::Tag),
                    "attribute" | "attributes" | "attr" | "run" => Some(Entity::Attribute),
                    "dataset" | "datasets" => Some(Entity::Dataset),
                    _ => None,
                };
                match (entity, rest) {
                    (Some(entity), Some(key)) if !key.is_empty() => (entity, key),
                    (Some(entity), _) => {
                        // key may follow as a quoted name: metrics.`my metric`
                        if !text.ends_with('.') {
                            match self.peek() {
                                Some(Token { tok: Tok::Dot, .. }) => self.i += 1,
                                _ => {
                                    return Err(err(
                                        pos,
                                        format!("expected '.' and a key after '{text}'"),
                                    ));
                                }
                            }
                        }
                        match self.next() {
                            Some(Token {
                                tok: Tok::Quoted(k, '`' | '"'),
                                ..
                            }) => (entity, k),
                            Some(Token {
                                tok: Tok::Ident(k), ..
                            }) => (entity, k),
                            _ => return Err(err(pos, format!("expected a key after '{prefix}.'"))),
                        }
                    }
                    (None, _) => {
                        if (self.attrs)(&text).is_some() {
                            (Entity::Attribute, text)
                        } else {
                            return Err(err(
                                pos,
                                format!(
                                    "unknown identifier '{text}': use metrics.<key>, params.<key>, tags.<key> or attributes.<name>"
                                ),
                            ));
                        }
                    }
                }
            }
            Tok::Quoted(text, '`' | '"') if (self.attrs)(&text).is_some() => {
                (Entity::Attribute, text)
            }
            other => {
                return Err(err(
                    pos,
                    format!("expected an identifier, found {}", describe(&other)),
                ));
            }
        };
        if !self.allow.contains(&entity) {
            return Err(err(
                pos,
                format!("{entity:?} keys cannot be used here").to_lowercase(),
            ));
        }
        let key = if entity == Entity::Attribute {
            (self.attrs)(&key)
                .ok_or_else(|| err(pos, format!("unknown attribute '{key}'")))?
                .to_string()
        } else if entity == Entity::Dataset {
            match key.as_str() {
                "name" | "digest" | "context" => key,
                other => {
                    return Err(err(
                        pos,
                        format!(
                            "unknown dataset field '{other}': use datasets.name, datasets.digest or datasets.context"
                        ),
                    ));
                }
            }
        } else {
            key
        };
        Ok((entity, key, pos))
    }

    fn comparison(&mut self) -> DomainResult<Comparison> {
        let (entity, key, position) = self.identifier()?;
        let op_pos = self.pos();
        let op = match self.next() {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => op,
            Some(Token {
                tok: Tok::Ident(w), ..
            }) => match w.to_ascii_lowercase().as_str() {
                "like" => Op::Like,
                "ilike" => Op::ILike,
                "in" => Op::In,
                "not" => {
                    if self.keyword("in") {
                        self.i += 1;
                        Op::NotIn
                    } else {
                        return Err(err(self.pos(), "expected IN after NOT"));
                    }
                }
                "is" => {
                    let not = self.keyword("not");
                    if not {
                        self.i += 1;
                    }
                    if !self.keyword("null") {
                        return Err(err(self.pos(), "expected NULL after IS"));
                    }
                    self.i += 1;
                    if not { Op::IsNotNull } else { Op::IsNull }
                }
                _ => {
                    return Err(err(
                        op_pos,
                        format!("expected a comparison operator, found '{w}'"),
                    ));
                }
            },
            Some(t) => {
                return Err(err(
                    op_pos,
                    format!("expected a comparison operator, found {}", describe(&t.tok)),
                ));
            }
            None => {
                return Err(err(
                    op_pos,
                    "expected a comparison operator, found the end of the filter",
                ));
            }
        };
        let val_pos = self.pos();
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => self.list()?,
            _ => match self.next() {
                Some(Token {
                    tok: Tok::Number(n),
                    ..
                }) => Value::Number(n),
                Some(Token {
                    tok: Tok::Quoted(s, '\'' | '"'),
                    ..
                }) => Value::Text(s),
                Some(t) => {
                    return Err(err(
                        val_pos,
                        format!(
                            "expected a number or a quoted string, found {}",
                            describe(&t.tok)
                        ),
                    ));
                }
                None => {
                    return Err(err(
                        val_pos,
                        "expected a value, found the end of the filter",
                    ));
                }
            },
        };
        let cmp = Comparison {
            entity,
            key,
            op,
            value,
            position,
        };
        check_types(&cmp, val_pos)?;
        Ok(cmp)
    }

    fn list(&mut self) -> DomainResult<Value> {
        let pos = self.pos();
        match self.next() {
            Some(Token {
                tok: Tok::LParen, ..
            }) => {}
            _ => return Err(err(pos, "expected '(' to start a list")),
        }
        let mut items = Vec::new();
        loop {
            let p = self.pos();
            match self.next() {
                Some(Token {
                    tok: Tok::Quoted(s, '\'' | '"'),
                    ..
                }) => items.push(s),
                Some(Token {
                    tok: Tok::Number(n),
                    ..
                }) => items.push(n.to_string()),
                Some(Token {
                    tok: Tok::RParen, ..
                }) if items.is_empty() => {
                    return Err(err(p, "a list must not be empty"));
                }
                _ => return Err(err(p, "expected a quoted string in the list")),
            }
            let p = self.pos();
            match self.next() {
                Some(Token {
                    tok: Tok::Comma, ..
                }) => continue,
                Some(Token {
                    tok: Tok::RParen, ..
                }) => break,
                _ => return Err(err(p, "expected ',' or ')' in the list")),
            }
        }
        Ok(Value::List(items))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Quoted(s, q) => format!("{q}{s}{q}"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Op(op) => format!("'{}'", op.sql()),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Dot => "'.'".into(),
    }
}

fn check_types(c: &Comparison, val_pos: usize) -> DomainResult<()> {
    let numeric = match c.entity {
        Entity::Metric => true,
        Entity::Attribute => is_numeric_attribute(&c.key),
        Entity::Param | Entity::Tag | Entity::Dataset => false,
    };
    if numeric {
        match (&c.op, &c.value) {
            (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge, Value::Number(_)) => Ok(()),
            (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge, _) => Err(err(
                val_pos,
                format!("'{}' is numeric: compare it with a number", c.key),
            )),
            (Op::IsNull | Op::IsNotNull, _)
                if c.entity == Entity::Attribute && c.key == "end_time" =>
            {
                Ok(())
            }
            (op, _) => Err(err(
                c.position,
                format!(
                    "operator {} is not supported for numeric '{}'",
                    op.sql(),
                    c.key
                ),
            )),
        }
    } else {
        match (&c.op, &c.value) {
            (Op::Eq | Op::Ne | Op::Like | Op::ILike, Value::Text(_)) => Ok(()),
            (Op::Eq | Op::Ne | Op::Like | Op::ILike, _) => Err(err(
                val_pos,
                format!("'{}' is a string: compare it with a quoted string", c.key),
            )),
            (Op::In | Op::NotIn, Value::List(_)) => Ok(()),
            (Op::IsNull | Op::IsNotNull, _) if c.entity != Entity::Attribute => Ok(()),
            (op, _) => Err(err(
                c.position,
                format!(
                    "operator {} is not supported for string '{}'",
                    op.sql(),
                    c.key
                ),
            )),
        }
    }
}

/// Parses a filter; an empty or blank string means "no filter".
pub fn parse(
    input: &str,
    attrs: AttributeResolver,
    allow: &[Entity],
) -> DomainResult<Option<Expr>> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let end = input.chars().count();
    let mut p = Parser {
        toks,
        i: 0,
        end,
        attrs,
        allow,
    };
    let e = p.expr()?;
    if let Some(t) = p.peek() {
        return Err(err(
            t.pos,
            format!(
                "unexpected {} after a complete condition (missing AND/OR?)",
                describe(&t.tok)
            ),
        ));
    }
    Ok(Some(e))
}

/// Parses a run filter.
pub fn parse_run_filter(input: &str) -> DomainResult<Option<Expr>> {
    parse(
        input,
        run_attribute,
        &[
            Entity::Metric,
            Entity::Param,
            Entity::Tag,
            Entity::Attribute,
            Entity::Dataset,
        ],
    )
}

/// Parses an experiment filter.
pub fn parse_experiment_filter(input: &str) -> DomainResult<Option<Expr>> {
    parse(
        input,
        experiment_attribute,
        &[Entity::Tag, Entity::Attribute],
    )
}

/// Parses one `order_by` clause like `metrics.acc DESC`.
pub fn parse_order_by(
    input: &str,
    attrs: AttributeResolver,
    allow: &[Entity],
) -> DomainResult<OrderBy> {
    let bad = |pos: usize, msg: String| {
        DomainError::invalid(format!(
            "invalid order_by '{input}' at position {pos}: {msg}"
        ))
    };
    let toks =
        lex(input).map_err(|e| DomainError::invalid(format!("invalid order_by '{input}': {e}")))?;
    if toks.is_empty() {
        return Err(DomainError::invalid("order_by clause must not be empty"));
    }
    let end = input.chars().count();
    let mut p = Parser {
        toks,
        i: 0,
        end,
        attrs,
        allow,
    };
    let (entity, key, _) = p
        .identifier()
        .map_err(|e| DomainError::invalid(format!("invalid order_by '{input}': {e}")))?;
    let ascending = if p.keyword("desc") {
        p.i += 1;
        false
    } else {
        if p.keyword("asc") {
            p.i += 1;
        }
        true
    };
    if let Some(t) = p.peek() {
        return Err(bad(
            t.pos,
            format!("unexpected {}: expected ASC or DESC", describe(&t.tok)),
        ));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(e: &Expr) -> &Comparison {
        match e {
            Expr::Cmp(c) => c,
            other => panic!("not a comparison: {other:?}"),
        }
    }

    #[test]
    fn mlflow_style_and() {
        let e = parse_run_filter("metrics.acc > 0.9 and params.opt = 'adam'")
            .unwrap()
            .unwrap();
        let Expr::And(parts) = e else { panic!() };
        assert_eq!(cmp(&parts[0]).entity, Entity::Metric);
        assert_eq!(cmp(&parts[0]).op, Op::Gt);
        assert_eq!(cmp(&parts[0]).value, Value::Number(0.9));
        assert_eq!(cmp(&parts[1]).key, "opt");
        assert_eq!(cmp(&parts[1]).value, Value::Text("adam".into()));
    }

    #[test]
    fn or_and_parentheses_with_precedence() {
        let e =
            parse_run_filter("metrics.acc > 0.9 and (params.opt = 'adam' or params.opt = 'sgd')")
                .unwrap()
                .unwrap();
        let Expr::And(parts) = e else { panic!() };
        assert!(matches!(&parts[1], Expr::Or(v) if v.len() == 2));
        let e = parse_run_filter("params.a = '1' or params.b = '2' and params.c = '3'")
            .unwrap()
            .unwrap();
        let Expr::Or(parts) = e else { panic!() };
        assert!(matches!(&parts[1], Expr::And(_)));
    }

    #[test]
    fn quoted_keys_and_dotted_tags() {
        let e = parse_run_filter("tags.mlflow.runName = 'x'")
            .unwrap()
            .unwrap();
        assert_eq!(cmp(&e).key, "mlflow.runName");
        let e = parse_run_filter("metrics.`val loss` <= 1e-3")
            .unwrap()
            .unwrap();
        assert_eq!(cmp(&e).key, "val loss");
        assert_eq!(cmp(&e).value, Value::Number(1e-3));
        let e = parse_run_filter("metrics.\"a b\" >= -2").unwrap().unwrap();
        assert_eq!(cmp(&e).value, Value::Number(-2.0));
        let e = parse_run_filter("metrics.loss<0.5").unwrap().unwrap();
        assert_eq!(cmp(&e).key, "loss");
    }

    #[test]
    fn attributes_in_like_null() {
        let e = parse_run_filter("attributes.status = 'FINISHED'")
            .unwrap()
            .unwrap();
        assert_eq!(cmp(&e).key, "status");
        let e = parse_run_filter("run_id IN ('a', 'b')").unwrap().unwrap();
        assert_eq!(cmp(&e).value, Value::List(vec!["a".into(), "b".into()]));
        let e = parse_run_filter("attributes.run_name NOT IN ('x')")
            .unwrap()
            .unwrap();
        assert_eq!(cmp(&e).op, Op::NotIn);
        let e = parse_run_filter("tags.t ILIKE '%Foo%'").unwrap().unwrap();
        assert_eq!(cmp(&e).op, Op::ILike);
        let e = parse_run_filter("params.p IS NOT NULL").unwrap().unwrap();
        assert_eq!(cmp(&e).op, Op::IsNotNull);
        let e = parse_run_filter("attributes.start_time >= 1700000000000")
            .unwrap()
            .unwrap();
        assert_eq!(cmp(&e).key, "start_time");
    }

    #[test]
    fn empty_is_no_filter() {
        assert_eq!(parse_run_filter("").unwrap(), None);
        assert_eq!(parse_run_filter("   ").unwrap(), None);
    }

    fn msg(input: &str) -> String {
        parse_run_filter(input).unwrap_err().to_string()
    }

    #[test]
    fn errors_carry_positions() {
        assert!(
            msg("metrics.acc >").contains("position 13"),
            "{}",
            msg("metrics.acc >")
        );
        assert!(msg("metrics.acc > 'x'").contains("position 14"));
        assert!(msg("metrics.acc > 0.9 params.a = 'b'").contains("position 18"));
        assert!(msg("(metrics.acc > 0.9").contains("missing ')'"));
        assert!(msg("foo.bar = 1").contains("position 0"));
        assert!(msg("metrics.acc ~ 1").contains("position 12"));
        assert!(msg("params.a > 'x'").contains("not supported"));
        assert!(msg("params.a = 'unterminated").contains("unterminated"));
        assert!(msg("metrics.acc LIKE 'x'").contains("not supported"));
    }

    #[test]
    fn experiment_filters_reject_metrics() {
        assert!(parse_experiment_filter("name LIKE 'a%'").unwrap().is_some());
        assert!(parse_experiment_filter("metrics.a > 1").is_err());
    }

    #[test]
    fn order_by_clauses() {
        let o = parse_order_by(
            "metrics.acc DESC",
            run_attribute,
            &[Entity::Metric, Entity::Attribute],
        )
        .unwrap();
        assert_eq!(
            (o.entity, o.key.as_str(), o.ascending),
            (Entity::Metric, "acc", false)
        );
        let o = parse_order_by("start_time", run_attribute, &[Entity::Attribute]).unwrap();
        assert!(o.ascending);
        let o = parse_order_by(
            "attributes.start_time asc",
            run_attribute,
            &[Entity::Attribute],
        )
        .unwrap();
        assert_eq!(o.key, "start_time");
        assert!(parse_order_by("metrics.acc sideways", run_attribute, &[Entity::Metric]).is_err());
    }
}
