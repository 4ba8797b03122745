//! Search spaces: the eight dimension kinds of the WIT `dimension` record, validated, and their
//! inverse-CDF maps from the unit interval.
//!
//! | kind | needs | values |
//! |---|---|---|
//! | `choice` | `choices` (non-empty; duplicates dropped) | `Text(choice)` |
//! | `randint` | `high`, `low` (default 0), integers, low < high | `Int` in [low, high) |
//! | `uniform` | `low` < `high` | `Float` in [low, high] |
//! | `quniform` | `low` < `high`, `q` > 0 | `Float`: round(uniform(low, high) / q) · q |
//! | `loguniform` | 0 < `low` < `high` (value bounds) | `Float`: ln(value) uniform in [ln low, ln high] |
//! | `qloguniform` | as loguniform, `q` > 0 | `Float`: round(loguniform / q) · q |
//! | `normal` | `low` = mu, `high` = sigma > 0 | `Float`: N(mu, sigma²) |
//! | `qnormal` | as normal, `q` > 0 | `Float`: round(normal / q) · q |
//!
//! The `log` flag of the record is not consulted: the kind says it.

use serde::{Deserialize, Serialize};

use crate::{Error, invalid};

/// A dimension as the host sends it (the WIT `dimension` record).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DimSpec {
    pub name: String,
    pub kind: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub choices: Vec<String>,
    pub log: bool,
    pub q: Option<f64>,
}

/// The kinds of dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Choice,
    Randint,
    Uniform,
    Quniform,
    Loguniform,
    Qloguniform,
    Normal,
    Qnormal,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Choice,
        Kind::Randint,
        Kind::Uniform,
        Kind::Quniform,
        Kind::Loguniform,
        Kind::Qloguniform,
        Kind::Normal,
        Kind::Qnormal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Choice => "choice",
            Kind::Randint => "randint",
            Kind::Uniform => "uniform",
            Kind::Quniform => "quniform",
            Kind::Loguniform => "loguniform",
            Kind::Qloguniform => "qloguniform",
            Kind::Normal => "normal",
            Kind::Qnormal => "qnormal",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether values are rounded to multiples of `q`.
    pub fn quantized(self) -> bool {
        matches!(self, Kind::Quniform | Kind::Qloguniform | Kind::Qnormal)
    }

    /// Whether the kind is uniform in log space.
    pub fn log(self) -> bool {
        matches!(self, Kind::Loguniform | Kind::Qloguniform)
    }

    /// Whether the kind is normal (unbounded).
    pub fn normal(self) -> bool {
        matches!(self, Kind::Normal | Kind::Qnormal)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter value of a trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The numeric value (`None` for text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Text(_) => None,
        }
    }
}

/// A validated dimension. For `normal`/`qnormal`, `low` is mu and `high` is sigma; `q` is 0 for
/// kinds without one; `low`/`high` are 0 for `choice`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dim {
    pub name: String,
    pub kind: Kind,
    pub low: f64,
    pub high: f64,
    pub q: f64,
    pub choices: Vec<String>,
}

/// Largest magnitude of a `randint` bound (integers stay exact in an f64).
const MAX_INT: f64 = 9_007_199_254_740_992.0;

impl Dim {
    /// Validates a dimension: `InvalidArgument` for missing or inconsistent fields, `Unsupported`
    /// for an unknown kind.
    pub fn parse(spec: &DimSpec) -> Result<Dim, Error> {
        let name = &spec.name;
        if name.is_empty() {
            return invalid!("a dimension has an empty name");
        }
        let Some(kind) = Kind::parse(&spec.kind) else {
            return Err(Error::Unsupported(format!(
                "dimension '{name}': unknown kind '{}'; the kinds are choice, randint, uniform, quniform, loguniform, qloguniform, normal and qnormal",
                spec.kind
            )));
        };
        let finite = |what: &str, v: Option<f64>| -> Result<f64, Error> {
            match v {
                None => invalid!("dimension '{name}': {kind} needs {what}"),
                Some(x) if !x.is_finite() => {
                    invalid!("dimension '{name}': {what} must be finite, got {x}")
                }
                Some(x) => Ok(x),
            }
        };
        let q = if kind.quantized() {
            let q = finite("q", spec.q)?;
            if q <= 0.0 {
                return invalid!("dimension '{name}': q must be > 0, got {q}");
            }
            q
        } else {
            0.0
        };
        let mut dim = Dim {
            name: name.clone(),
            kind,
            low: 0.0,
            high: 0.0,
            q,
            choices: Vec::new(),
        };
        match kind {
            Kind::Choice => {
                if spec.choices.is_empty() {
                    return invalid!(
                        "dimension '{name}': choice needs at least one value in choices"
                    );
                }
                for c in &spec.choices {
                    if !dim.choices.contains(c) {
                        dim.choices.push(c.clone());
                    }
                }
            }
            Kind::Randint => {
                let low = match spec.low {
                    None => 0.0,
                    Some(_) => finite("low", spec.low)?,
                };
                let high = finite("high", spec.high)?;
                for (what, v) in [("low", low), ("high", high)] {
                    if v.fract() != 0.0 || v.abs() > MAX_INT {
                        return invalid!(
                            "dimension '{name}': randint {what} must be an integer, got {v}"
                        );
                    }
                }
                if low >= high {
                    return invalid!(
                        "dimension '{name}': randint needs low < high (high is exclusive), got [{low}, {high})"
                    );
                }
                (dim.low, dim.high) = (low, high);
            }
            Kind::Uniform | Kind::Quniform | Kind::Loguniform | Kind::Qloguniform => {
                let low = finite("low", spec.low)?;
                let high = finite("high", spec.high)?;
                if low >= high {
                    return invalid!(
                        "dimension '{name}': {kind} needs low < high, got low {low}, high {high}"
                    );
                }
                if kind.log() && low <= 0.0 {
                    return invalid!(
                        "dimension '{name}': {kind} needs low > 0 (low and high bound the value), got {low}"
                    );
                }
                (dim.low, dim.high) = (low, high);
            }
            Kind::Normal | Kind::Qnormal => {
                let mu = finite("low (the mean mu)", spec.low)?;
                let sigma = finite("high (the standard deviation sigma)", spec.high)?;
                if sigma <= 0.0 {
                    return invalid!(
                        "dimension '{name}': {kind} needs sigma (high) > 0, got {sigma}"
                    );
                }
                (dim.low, dim.high) = (mu, sigma);
            }
        }
        Ok(dim)
    }

    /// Number of integers of a `randint` dimension.
    pub fn int_count(&self) -> u64 {
        (self.high - self.low) as u64
    }

    /// round(x / q) · q, tidied (see [`tidy_step`]).
    pub fn quantize(&self, x: f64) -> f64 {
        tidy_step((x / self.q).round() * self.q, self.q)
    }

    /// The value at `u` in [0, 1) of this dimension's inverse CDF: choice/randint by equal
    /// buckets, log kinds in log space, normal kinds through Φ⁻¹, quantized kinds rounded.
    pub fn from_unit(&self, u: f64) -> Value {
        let u = u.clamp(0.0, 1.0);
        match self.kind {
            Kind::Choice => {
                let n = self.choices.len();
                Value::Text(self.choices[((u * n as f64) as usize).min(n - 1)].clone())
            }
            Kind::Randint => {
                let n = self.int_count();
                let k = ((u * n as f64) as u64).min(n - 1);
                Value::Int(self.low as i64 + k as i64)
            }
            Kind::Uniform => {
                Value::Float((self.low + u * (self.high - self.low)).clamp(self.low, self.high))
            }
            Kind::Quniform => Value::Float(self.quantize(self.low + u * (self.high - self.low))),
            Kind::Loguniform => Value::Float(self.log_unit(u)),
            Kind::Qloguniform => Value::Float(self.quantize(self.log_unit(u))),
            Kind::Normal => Value::Float(self.low + self.high * crate::dist::norm_ppf(open(u))),
            Kind::Qnormal => {
                Value::Float(self.quantize(self.low + self.high * crate::dist::norm_ppf(open(u))))
            }
        }
    }

    fn log_unit(&self, u: f64) -> f64 {
        let (a, b) = (self.low.ln(), self.high.ln());
        (a + u * (b - a)).exp().clamp(self.low, self.high)
    }

    /// Whether `v` is a value this dimension can produce (type and range), for tests and checks.
    pub fn admits(&self, v: &Value) -> bool {
        let on_grid = |x: f64| {
            let k = (x / self.q).round();
            (k * self.q - x).abs() <= 1e-9 * x.abs().max(self.q)
        };
        match (self.kind, v) {
            (Kind::Choice, Value::Text(s)) => self.choices.contains(s),
            (Kind::Randint, Value::Int(i)) => (*i as f64) >= self.low && (*i as f64) < self.high,
            (Kind::Uniform | Kind::Loguniform, Value::Float(x)) => {
                *x >= self.low && *x <= self.high
            }
            (Kind::Quniform | Kind::Qloguniform, Value::Float(x)) => {
                let lo = (self.low / self.q).round() * self.q;
                let hi = (self.high / self.q).round() * self.q;
                on_grid(*x) && *x >= lo - 1e-9 * lo.abs() && *x <= hi + 1e-9 * hi.abs()
            }
            (Kind::Normal, Value::Float(x)) => x.is_finite(),
            (Kind::Qnormal, Value::Float(x)) => x.is_finite() && on_grid(*x),
            _ => false,
        }
    }
}

fn open(u: f64) -> f64 {
    if u <= 0.0 {
        f64::EPSILON / 4.0
    } else if u >= 1.0 {
        1.0 - f64::EPSILON / 2.0
    } else {
        u
    }
}

/// `x` rounded to 15 significant digits: `3.0000000000000004` (3 · 0.1 as computed) becomes
/// `0.3`; -0 becomes 0.
pub fn tidy(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let t: f64 = format!("{x:.14e}").parse().unwrap_or(x);
    t + 0.0
}

/// `x`, a multiple of `q`, tidied by [`tidy`] where that moves it by less than q · 1e-6 (so
/// distinct multiples of a tiny step stay distinct).
pub fn tidy_step(x: f64, q: f64) -> f64 {
    let t = tidy(x);
    if (t - x).abs() <= q * 1e-6 {
        t
    } else {
        x + 0.0
    }
}

/// A validated search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub dims: Vec<Dim>,
}

impl Space {
    /// Validates every dimension; the space must be non-empty with distinct names.
    pub fn parse(specs: &[DimSpec]) -> Result<Space, Error> {
        if specs.is_empty() {
            return invalid!("the search space has no dimensions");
        }
        let mut dims: Vec<Dim> = Vec::with_capacity(specs.len());
        for s in specs {
            let d = Dim::parse(s)?;
            if dims.iter().any(|o| o.name == d.name) {
                return invalid!("dimension '{}' appears twice in the search space", d.name);
            }
            dims.push(d);
        }
        Ok(Space { dims })
    }

    /// One point drawn independently per dimension from `rng` (random search).
    pub fn sample(&self, rng: &mut crate::rng::Rng) -> Vec<Value> {
        self.dims
            .iter()
            .map(|d| d.from_unit(rng.next_f64()))
            .collect()
    }
}

/// Convenience constructor for tests and examples.
pub fn spec(
    name: &str,
    kind: &str,
    low: Option<f64>,
    high: Option<f64>,
    q: Option<f64>,
    choices: &[&str],
) -> DimSpec {
    DimSpec {
        name: name.into(),
        kind: kind.into(),
        low,
        high,
        choices: choices.iter().map(|s| s.to_string()).collect(),
        log: kind.contains("log"),
        q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: DimSpec) -> Error {
        Dim::parse(&s).unwrap_err()
    }

    #[test]
    fn validation_messages() {
        assert_eq!(
            err(spec("x", "uniform", Some(0.0), None, None, &[])),
            Error::InvalidArgument("dimension 'x': uniform needs high".into())
        );
        assert!(
            matches!(err(spec("x", "uniform", Some(1.0), Some(1.0), None, &[])), Error::InvalidArgument(m) if m.contains("low < high"))
        );
        assert!(
            matches!(err(spec("lr", "loguniform", Some(0.0), Some(1.0), None, &[])), Error::InvalidArgument(m) if m.starts_with("dimension 'lr'") && m.contains("low > 0"))
        );
        assert!(
            matches!(err(spec("x", "quniform", Some(0.0), Some(1.0), Some(0.0), &[])), Error::InvalidArgument(m) if m.contains("q must be > 0"))
        );
        assert!(
            matches!(err(spec("x", "quniform", Some(0.0), Some(1.0), None, &[])), Error::InvalidArgument(m) if m.contains("needs q"))
        );
        assert!(
            matches!(err(spec("c", "choice", None, None, None, &[])), Error::InvalidArgument(m) if m.contains("at least one"))
        );
        assert!(
            matches!(err(spec("n", "randint", None, Some(2.5), None, &[])), Error::InvalidArgument(m) if m.contains("integer"))
        );
        assert!(
            matches!(err(spec("s", "normal", Some(0.0), Some(-1.0), None, &[])), Error::InvalidArgument(m) if m.contains("sigma"))
        );
        assert!(
            matches!(err(spec("z", "beta", None, None, None, &[])), Error::Unsupported(m) if m.contains("'z'") && m.contains("'beta'"))
        );
        let dup = Space::parse(&[
            spec("a", "randint", None, Some(3.0), None, &[]),
            spec("a", "randint", None, Some(3.0), None, &[]),
        ]);
        assert!(matches!(dup, Err(Error::InvalidArgument(m)) if m.contains("twice")));
        assert!(Space::parse(&[]).is_err());
        // randint low defaults to 0
        let d = Dim::parse(&spec("n", "randint", None, Some(3.0), None, &[])).unwrap();
        assert_eq!((d.low, d.high), (0.0, 3.0));
    }

    #[test]
    fn tidy_values() {
        assert_eq!(tidy(3.0 * 0.1), 0.3);
        assert_eq!(tidy(1234.0 * 0.001), 1.234);
        assert_eq!(tidy(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(tidy(1e-300), 1e-300);
        assert_eq!(tidy_step(3.0 * 0.1, 0.1), 0.3);
        let (a, b) = (tidy_step(1e6 + 1e-9, 1e-9), tidy_step(1e6 + 2e-9, 1e-9));
        assert!(a != b && a != 1e6);
    }
}
