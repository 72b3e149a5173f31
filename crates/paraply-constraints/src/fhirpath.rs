//! The subset of FHIRPath (N1) that the R4 invariants Paraply checks are written in,
//! evaluated directly over `serde_json::Value`.
//!
//! Why home-made: the established Rust engines could not be used here — see the crate doc.
//! Anything outside the subset is a parse error, and a test asserts that every generated
//! invariant parses, so an unsupported construct is found when the table is regenerated,
//! never at write time.
//!
//! Semantics kept from the specification: collections everywhere, three-valued logic for
//! `and`/`or`/`xor`/`implies`/`not()`, comparison of an empty operand gives empty, date/time
//! comparison at different precisions gives empty when the common part is equal, choice
//! elements (`value` finds `valueString`…). Simplification: primitive extensions (`_start`)
//! are not seen, so an element holding only an extension does not exist.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    String(String),
    Number(f64),
    Boolean(bool),
    EmptySet,
    Variable(String),
    This,
    /// A name at the start of a path (navigates from the focus, or names the focus's type).
    Name(String),
    Member(Box<Expr>, String),
    Call(Option<Box<Expr>>, Function, Vec<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Exists,
    Empty,
    Not,
    Count,
    HasValue,
    Where,
    Resolve,
    Iif,
    OfType,
    StartsWith,
    Substring,
    Trace,
    ToString,
    Contains,
    ToInteger,
}

impl Function {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "exists" => Self::Exists,
            "empty" => Self::Empty,
            "not" => Self::Not,
            "count" => Self::Count,
            "hasValue" => Self::HasValue,
            "where" => Self::Where,
            "resolve" => Self::Resolve,
            "iif" => Self::Iif,
            "ofType" => Self::OfType,
            "startsWith" => Self::StartsWith,
            "substring" => Self::Substring,
            "trace" => Self::Trace,
            "toString" => Self::ToString,
            "contains" => Self::Contains,
            "toInteger" => Self::ToInteger,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Union,
    Add,
    Subtract,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
    In,
    And,
    Or,
    Xor,
    Implies,
}

impl BinaryOp {
    /// FHIRPath precedence, higher binds tighter.
    fn precedence(self) -> u8 {
        match self {
            Self::Add | Self::Subtract => 6,
            Self::Union => 5,
            Self::Less | Self::LessOrEqual | Self::Greater | Self::GreaterOrEqual => 4,
            Self::Equal | Self::NotEqual => 3,
            Self::In => 2,
            Self::And => 1,
            Self::Or | Self::Xor => 0,
            Self::Implies => 0,
        }
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    String(String),
    Number(f64),
    Variable(String),
    Symbol(&'static str),
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                text.push(chars[i]);
                i += 1;
            }
            if i == chars.len() {
                return Err("unterminated string".to_owned());
            }
            i += 1;
            tokens.push(Token::String(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(
                text.parse().map_err(|_| format!("bad number {text}"))?,
            ));
        } else if c.is_alphabetic() || c == '_' || c == '%' || c == '$' || c == '`' {
            let sigil = matches!(c, '%' | '$').then_some(c);
            if sigil.is_some() {
                i += 1;
            }
            let quoted = i < chars.len() && chars[i] == '`';
            if quoted {
                i += 1;
            }
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let name: String = chars[start..i].iter().collect();
            if quoted {
                i += 1;
            }
            tokens.push(match sigil {
                Some('%') => Token::Variable(name),
                Some(_) => Token::Variable(format!("${name}")),
                None => Token::Name(name),
            });
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = ["<=", ">=", "!="]
                .into_iter()
                .find(|s| *s == two)
                .or_else(|| {
                    ["(", ")", ",", ".", "|", "+", "-", "<", ">", "=", "{", "}"]
                        .into_iter()
                        .find(|s| s.starts_with(c))
                })
                .ok_or_else(|| format!("unexpected character '{c}'"))?;
            i += symbol.len();
            tokens.push(Token::Symbol(symbol));
        }
    }
    Ok(tokens)
}

/// Parses an expression of the supported subset.
pub(crate) fn parse(source: &str) -> Result<Expr, String> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let expr = parser.expression(0)?;
    if parser.position != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.position]));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn expect(&mut self, symbol: &'static str) -> Result<(), String> {
        match self.next() {
            Some(Token::Symbol(s)) if s == symbol => Ok(()),
            other => Err(format!("expected '{symbol}', found {other:?}")),
        }
    }

    fn binary_op(&self) -> Option<BinaryOp> {
        Some(match self.peek()? {
            Token::Symbol("|") => BinaryOp::Union,
            Token::Symbol("+") => BinaryOp::Add,
            Token::Symbol("-") => BinaryOp::Subtract,
            Token::Symbol("<") => BinaryOp::Less,
            Token::Symbol("<=") => BinaryOp::LessOrEqual,
            Token::Symbol(">") => BinaryOp::Greater,
            Token::Symbol(">=") => BinaryOp::GreaterOrEqual,
            Token::Symbol("=") => BinaryOp::Equal,
            Token::Symbol("!=") => BinaryOp::NotEqual,
            Token::Name(n) if n == "in" => BinaryOp::In,
            Token::Name(n) if n == "and" => BinaryOp::And,
            Token::Name(n) if n == "or" => BinaryOp::Or,
            Token::Name(n) if n == "xor" => BinaryOp::Xor,
            Token::Name(n) if n == "implies" => BinaryOp::Implies,
            _ => return None,
        })
    }

    fn expression(&mut self, min_precedence: u8) -> Result<Expr, String> {
        let mut left = self.postfix()?;
        while let Some(op) = self.binary_op() {
            let precedence = op.precedence();
            if precedence < min_precedence {
                break;
            }
            self.position += 1;
            let right = self.expression(precedence + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut expr = self.term()?;
        while self.peek() == Some(&Token::Symbol(".")) {
            self.position += 1;
            let Some(Token::Name(name)) = self.next() else {
                return Err("expected a name after '.'".to_owned());
            };
            expr = self.invocation(Some(expr), name)?;
        }
        Ok(expr)
    }

    fn invocation(&mut self, base: Option<Expr>, name: String) -> Result<Expr, String> {
        if self.peek() != Some(&Token::Symbol("(")) {
            return Ok(match base {
                Some(base) => Expr::Member(Box::new(base), name),
                None => Expr::Name(name),
            });
        }
        self.position += 1;
        let function =
            Function::named(&name).ok_or_else(|| format!("unsupported function {name}()"))?;
        let mut args = Vec::new();
        if self.peek() != Some(&Token::Symbol(")")) {
            loop {
                args.push(self.expression(0)?);
                if self.peek() == Some(&Token::Symbol(",")) {
                    self.position += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        Ok(Expr::Call(base.map(Box::new), function, args))
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::String(s)) => Ok(Expr::String(s)),
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Variable(v)) if v == "$this" => Ok(Expr::This),
            Some(Token::Variable(v)) => Ok(Expr::Variable(v)),
            Some(Token::Name(n)) if n == "true" => Ok(Expr::Boolean(true)),
            Some(Token::Name(n)) if n == "false" => Ok(Expr::Boolean(false)),
            Some(Token::Name(n)) => self.invocation(None, n),
            Some(Token::Symbol("(")) => {
                let inner = self.expression(0)?;
                self.expect(")")?;
                Ok(inner)
            }
            Some(Token::Symbol("{")) => {
                self.expect("}")?;
                Ok(Expr::EmptySet)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// One item of a collection.
#[derive(Debug, Clone)]
pub(crate) enum Item<'a> {
    /// A complex element or resource of the input.
    Node(&'a Value),
    String(Cow<'a, str>),
    Number(f64),
    Boolean(bool),
    /// What `resolve()` knows of a referenced resource without fetching it: its type.
    Resolved(Cow<'a, str>),
}

impl<'a> Item<'a> {
    fn from_json(value: &'a Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::Bool(b) => Some(Item::Boolean(*b)),
            Value::Number(n) => n.as_f64().map(Item::Number),
            Value::String(s) => Some(Item::String(Cow::Borrowed(s))),
            Value::Array(_) | Value::Object(_) => Some(Item::Node(value)),
        }
    }

    fn type_name(&self) -> Option<&str> {
        match self {
            Item::Node(v) => v.get("resourceType").and_then(Value::as_str),
            Item::Resolved(t) => Some(t),
            _ => None,
        }
    }
}

/// Variables of one evaluation.
pub(crate) struct Context<'a> {
    pub(crate) root: &'a Value,
}

type Collection<'a> = Vec<Item<'a>>;

fn boolean<'a>(value: Option<bool>) -> Collection<'a> {
    value.map(Item::Boolean).into_iter().collect()
}

/// The singleton boolean of a collection: empty is unknown (`None`); a single non-boolean
/// item counts as `true` (FHIRPath singleton evaluation).
fn truth(collection: &[Item]) -> Option<bool> {
    match collection {
        [] => None,
        [Item::Boolean(b)] => Some(*b),
        _ => Some(true),
    }
}

pub(crate) fn evaluate<'a>(
    expr: &'a Expr,
    focus: &[Item<'a>],
    context: &Context<'a>,
) -> Collection<'a> {
    match expr {
        Expr::String(s) => vec![Item::String(Cow::Borrowed(s))],
        Expr::Number(n) => vec![Item::Number(*n)],
        Expr::Boolean(b) => vec![Item::Boolean(*b)],
        Expr::EmptySet => Vec::new(),
        Expr::This => focus.to_vec(),
        Expr::Variable(name) => match name.as_str() {
            "ucum" => vec![Item::String(Cow::Borrowed("http://unitsofmeasure.org"))],
            "resource" | "rootResource" | "context" => vec![Item::Node(context.root)],
            _ => Vec::new(),
        },
        Expr::Name(name) => {
            // `Appointment.status`: a leading type name selects the focus if it is of that type.
            if name.starts_with(|c: char| c.is_ascii_uppercase())
                && focus
                    .iter()
                    .all(|item| item.type_name() == Some(name.as_str()))
                && !focus.is_empty()
            {
                return focus.to_vec();
            }
            navigate(focus, name)
        }
        Expr::Member(base, name) => navigate(&evaluate(base, focus, context), name),
        Expr::Call(base, function, args) => {
            let input = match base {
                Some(base) => evaluate(base, focus, context),
                None => focus.to_vec(),
            };
            call(*function, input, args, context)
        }
        Expr::Binary(op, left, right) => binary(*op, left, right, focus, context),
    }
}

/// Children named `name` of every node; `value` also finds choice elements `valueString`….
fn navigate<'a>(focus: &[Item<'a>], name: &str) -> Collection<'a> {
    let mut out = Vec::new();
    for item in focus {
        let Item::Node(Value::Object(object)) = item else {
            continue;
        };
        let mut push = |value: &'a Value| match value {
            Value::Array(items) => out.extend(items.iter().filter_map(Item::from_json)),
            other => out.extend(Item::from_json(other)),
        };
        if let Some(value) = object.get(name) {
            push(value);
            continue;
        }
        for (key, value) in object {
            if let Some(rest) = key.strip_prefix(name)
                && rest.starts_with(|c: char| c.is_ascii_uppercase())
            {
                push(value);
            }
        }
    }
    out
}

fn string_arg<'a>(
    args: &'a [Expr],
    index: usize,
    focus: &[Item<'a>],
    context: &Context<'a>,
) -> Option<String> {
    match evaluate(args.get(index)?, focus, context).as_slice() {
        [Item::String(s)] => Some(s.to_string()),
        _ => None,
    }
}

fn call<'a>(
    function: Function,
    input: Collection<'a>,
    args: &'a [Expr],
    context: &Context<'a>,
) -> Collection<'a> {
    match function {
        Function::Exists => {
            let found = match args.first() {
                Some(criterion) => !filter(input, criterion, context).is_empty(),
                None => !input.is_empty(),
            };
            vec![Item::Boolean(found)]
        }
        Function::Empty => vec![Item::Boolean(input.is_empty())],
        Function::Not => boolean(truth(&input).map(|b| !b)),
        Function::Count => vec![Item::Number(input.len() as f64)],
        Function::HasValue => vec![Item::Boolean(matches!(
            input.as_slice(),
            [Item::String(_) | Item::Number(_) | Item::Boolean(_)]
        ))],
        Function::Where => match args.first() {
            Some(criterion) => filter(input, criterion, context),
            None => Vec::new(),
        },
        Function::Resolve => input
            .iter()
            .filter_map(|item| resolve(item, context))
            .collect(),
        Function::Iif => {
            // The criterion and branches see the input collection as their focus.
            let criterion = args.first().map(|c| truth(&evaluate(c, &input, context)));
            let branch = if criterion == Some(Some(true)) {
                args.get(1)
            } else {
                args.get(2)
            };
            branch
                .map(|b| evaluate(b, &input, context))
                .unwrap_or_default()
        }
        Function::OfType => {
            let Some(Expr::Name(type_name)) = args.first() else {
                return Vec::new();
            };
            input
                .into_iter()
                .filter(|item| item.type_name() == Some(type_name.as_str()))
                .collect()
        }
        Function::StartsWith | Function::Contains => {
            let Some(needle) = string_arg(args, 0, &input, context) else {
                return Vec::new();
            };
            match input.as_slice() {
                [Item::String(s)] => vec![Item::Boolean(if function == Function::StartsWith {
                    s.starts_with(needle.as_str())
                } else {
                    s.contains(needle.as_str())
                })],
                _ => Vec::new(),
            }
        }
        Function::Substring => {
            let start = args.first().map(|a| evaluate(a, &input, context));
            match (input.as_slice(), start.as_deref()) {
                ([Item::String(s)], Some([Item::Number(n)])) => {
                    let rest: String = s.chars().skip(*n as usize).collect();
                    vec![Item::String(Cow::Owned(rest))]
                }
                _ => Vec::new(),
            }
        }
        Function::Trace => input,
        Function::ToString => match input.as_slice() {
            [Item::String(s)] => vec![Item::String(s.clone())],
            [Item::Number(n)] => vec![Item::String(Cow::Owned(n.to_string()))],
            [Item::Boolean(b)] => vec![Item::String(Cow::Owned(b.to_string()))],
            _ => Vec::new(),
        },
        Function::ToInteger => match input.as_slice() {
            [Item::Number(n)] if n.fract() == 0.0 => vec![Item::Number(*n)],
            [Item::String(s)] => s
                .parse::<i64>()
                .map(|n| vec![Item::Number(n as f64)])
                .unwrap_or_default(),
            _ => Vec::new(),
        },
    }
}

fn filter<'a>(input: Collection<'a>, criterion: &'a Expr, context: &Context<'a>) -> Collection<'a> {
    input
        .into_iter()
        .filter(|item| {
            truth(&evaluate(criterion, std::slice::from_ref(item), context)) == Some(true)
        })
        .collect()
}

/// A Reference's target as far as it can be known without a database: a contained resource
/// (`#id`), or the type named by a relative or absolute literal reference, or `Reference.type`.
/// A `urn:uuid:` or identifier-only reference resolves to nothing, which the invariants treat
/// as "cannot tell" (e.g. ctm-1's `iif(empty(), true, …)`).
fn resolve<'a>(item: &Item<'a>, context: &Context<'a>) -> Option<Item<'a>> {
    let Item::Node(reference) = item else {
        return None;
    };
    let literal = reference.get("reference").and_then(Value::as_str);
    if let Some(local) = literal.and_then(|r| r.strip_prefix('#')) {
        let contained = context.root.get("contained")?.as_array()?;
        return contained
            .iter()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(local))
            .map(Item::Node);
    }
    if let Some(literal) = literal {
        let path = literal.split(['?', '#']).next().unwrap_or(literal);
        let segments: Vec<&str> = path.split('/').collect();
        let type_segment = match segments.as_slice() {
            [.., t, _, "_history", _] | [.., t, _] => *t,
            _ => return None,
        };
        if type_segment.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Some(Item::Resolved(Cow::Borrowed(type_segment)));
        }
        return None;
    }
    reference
        .get("type")
        .and_then(Value::as_str)
        .map(|t| Item::Resolved(Cow::Borrowed(t)))
}

fn binary<'a>(
    op: BinaryOp,
    left: &'a Expr,
    right: &'a Expr,
    focus: &[Item<'a>],
    context: &Context<'a>,
) -> Collection<'a> {
    let l = evaluate(left, focus, context);
    // Short-circuits that the three-valued tables allow.
    match (op, truth(&l)) {
        (BinaryOp::And, Some(false)) => return vec![Item::Boolean(false)],
        (BinaryOp::Or, Some(true)) => return vec![Item::Boolean(true)],
        (BinaryOp::Implies, Some(false)) => return vec![Item::Boolean(true)],
        _ => {}
    }
    let r = evaluate(right, focus, context);
    match op {
        BinaryOp::And => boolean(match (truth(&l), truth(&r)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }),
        BinaryOp::Or => boolean(match (truth(&l), truth(&r)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        }),
        BinaryOp::Xor => boolean(match (truth(&l), truth(&r)) {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        }),
        BinaryOp::Implies => boolean(match (truth(&l), truth(&r)) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), Some(false)) => Some(false),
            _ => None,
        }),
        BinaryOp::Union => {
            let mut out = l;
            out.extend(r);
            out
        }
        BinaryOp::Add | BinaryOp::Subtract => match (l.as_slice(), r.as_slice()) {
            ([Item::Number(a)], [Item::Number(b)]) => {
                vec![Item::Number(if op == BinaryOp::Add {
                    a + b
                } else {
                    a - b
                })]
            }
            ([Item::String(a)], [Item::String(b)]) if op == BinaryOp::Add => {
                vec![Item::String(Cow::Owned(format!("{a}{b}")))]
            }
            _ => Vec::new(),
        },
        BinaryOp::Equal | BinaryOp::NotEqual => {
            if l.is_empty() || r.is_empty() {
                return Vec::new();
            }
            let equal = l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| equals(a, b));
            vec![Item::Boolean(equal == (op == BinaryOp::Equal))]
        }
        BinaryOp::In => match l.as_slice() {
            [] => Vec::new(),
            [item] => vec![Item::Boolean(
                r.iter().any(|candidate| equals(item, candidate)),
            )],
            _ => Vec::new(),
        },
        BinaryOp::Less | BinaryOp::LessOrEqual | BinaryOp::Greater | BinaryOp::GreaterOrEqual => {
            let ordering = match (l.as_slice(), r.as_slice()) {
                ([a], [b]) => compare(a, b),
                _ => None,
            };
            boolean(ordering.map(|o| match op {
                BinaryOp::Less => o == Ordering::Less,
                BinaryOp::LessOrEqual => o != Ordering::Greater,
                BinaryOp::Greater => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
    }
}

fn equals(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::String(x), Item::String(y)) => x == y,
        (Item::Number(x), Item::Number(y)) => x == y,
        (Item::Boolean(x), Item::Boolean(y)) => x == y,
        (Item::Node(x), Item::Node(y)) => x == y,
        _ => false,
    }
}

fn compare(a: &Item, b: &Item) -> Option<Ordering> {
    match (a, b) {
        (Item::Number(x), Item::Number(y)) => x.partial_cmp(y),
        (Item::String(x), Item::String(y)) => match (DateTime::parse(x), DateTime::parse(y)) {
            (Some(x), Some(y)) => x.compare(&y),
            _ => Some(x.cmp(y)),
        },
        _ => None,
    }
}

/// A FHIR date, dateTime or instant, as far as its precision goes.
struct DateTime {
    /// year, month, day, hour, minute, second, millisecond; `None` past the precision.
    parts: [Option<i64>; 7],
    /// Offset from UTC in minutes, when a time is given with a zone.
    offset_minutes: Option<i64>,
}

impl DateTime {
    fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let digits = |from: usize, len: usize| -> Option<i64> {
            let slice = text.get(from..from + len)?;
            slice
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| slice.parse().ok())?
        };
        let mut parts = [None; 7];
        parts[0] = Some(digits(0, 4)?);
        let mut offset_minutes = None;
        if bytes.len() > 4 {
            (bytes[4] == b'-').then_some(())?;
            parts[1] = Some(digits(5, 2)?);
        }
        if bytes.len() > 7 {
            (bytes[7] == b'-').then_some(())?;
            parts[2] = Some(digits(8, 2)?);
        }
        if bytes.len() > 10 {
            (bytes[10] == b'T').then_some(())?;
            parts[3] = Some(digits(11, 2)?);
            parts[4] = Some(digits(14, 2)?);
            let mut rest = 16;
            if bytes.get(16) == Some(&b':') {
                parts[5] = Some(digits(17, 2)?);
                rest = 19;
                if bytes.get(19) == Some(&b'.') {
                    let end = text[20..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(text.len(), |i| i + 20);
                    let fraction = &text[20..end];
                    parts[6] = Some(format!("{fraction:0<3}")[..3].parse().ok()?);
                    rest = end;
                }
            }
            offset_minutes = match &text[rest..] {
                "" => None,
                "Z" => Some(0),
                zone => {
                    let sign = if zone.starts_with('-') { -1 } else { 1 };
                    let hours: i64 = zone.get(1..3)?.parse().ok()?;
                    let minutes: i64 = zone.get(4..6)?.parse().ok()?;
                    Some(sign * (hours * 60 + minutes))
                }
            };
        }
        Some(DateTime {
            parts,
            offset_minutes,
        })
    }

    /// Milliseconds since 1970 in UTC, for two values that both carry a time and zone.
    fn instant(&self) -> Option<i64> {
        let [Some(y), Some(m), Some(d), Some(h), Some(min), s, ms] = self.parts else {
            return None;
        };
        let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let day_of_year = (153 * m + 2) / 5 + d - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era * 146_097 + day_of_era - 719_468;
        let minutes = days * 1440 + h * 60 + min - self.offset_minutes?;
        Some((minutes * 60 + s.unwrap_or(0)) * 1000 + ms.unwrap_or(0))
    }

    fn compare(&self, other: &Self) -> Option<Ordering> {
        if let (Some(a), Some(b)) = (self.instant(), other.instant())
            && self.parts[5].is_some() == other.parts[5].is_some()
        {
            return Some(a.cmp(&b));
        }
        for (a, b) in self.parts.iter().zip(&other.parts) {
            match (a, b) {
                (Some(a), Some(b)) if a != b => return Some(a.cmp(b)),
                (Some(_), Some(_)) => {}
                (None, None) => return Some(Ordering::Equal),
                // Different precisions equal so far: FHIRPath answers "unknown".
                _ => return None,
            }
        }
        Some(Ordering::Equal)
    }
}
