//! From a table to training tensors: feature selection, missing values, and the preprocessing
//! that is part of the model (standardization, one-hot, label encoding), fitted on training rows
//! only and applied identically at scoring time.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::spec::{MissingPolicy, Task};
use crate::workspace::DomainError;
use crate::workspace::dataset::{ColumnKind, Table, infer_schema, is_null};

/// How one input column becomes model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Feature {
    /// Standardized: `(x - mean) / std`; missing values become `mean` when imputing.
    Numeric {
        /// Column name.
        name: String,
        /// Training mean.
        mean: f64,
        /// Training standard deviation (1 when constant).
        std: f64,
    },
    /// One-hot over the training categories; unseen values map to all zeros.
    Categorical {
        /// Column name.
        name: String,
        /// Categories seen in training, in order.
        categories: Vec<String>,
        /// Most frequent category (for imputation).
        mode: String,
    },
}

impl Feature {
    /// Column name.
    pub fn name(&self) -> &str {
        match self {
            Feature::Numeric { name, .. } | Feature::Categorical { name, .. } => name,
        }
    }

    /// Model inputs this column produces.
    pub fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } => 1,
            Feature::Categorical { categories, .. } => categories.len(),
        }
    }
}

/// How the target is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetEncoding {
    /// Class labels, in index order.
    Classes {
        /// Column name.
        name: String,
        /// Labels.
        labels: Vec<String>,
    },
    /// Standardized number.
    Number {
        /// Column name.
        name: String,
        /// Training mean.
        mean: f64,
        /// Training standard deviation.
        std: f64,
    },
}

/// The fitted preprocessing, saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// Input columns in model order.
    pub features: Vec<Feature>,
    /// Target encoding.
    pub target: TargetEncoding,
    /// Missing-value policy used in training (scoring imputes when it was `impute`).
    pub missing: MissingPolicy,
}

/// Encoded rows: `x` row-major `n × width`, `y` class indices or standardized values.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// Inputs.
    pub x: Vec<f32>,
    /// Class index per row (classification).
    pub classes: Vec<u32>,
    /// Standardized target per row (regression).
    pub values: Vec<f32>,
    /// Rows.
    pub n: usize,
}

fn col(t: &Table, name: &str) -> Result<usize, DomainError> {
    t.header.iter().position(|h| h == name).ok_or_else(|| {
        DomainError::invalid(format!(
            "column '{name}' is not in the dataset; its columns are: {}",
            t.header.join(", ")
        ))
    })
}

/// Rows of `t` to use: those without missing values in the used columns (drop), or all of them
/// (impute), or an error naming the first missing value (fail).
pub fn usable_rows(
    t: &Table,
    used: &[usize],
    policy: MissingPolicy,
) -> Result<Vec<usize>, DomainError> {
    let mut rows = Vec::with_capacity(t.rows.len());
    for (i, row) in t.rows.iter().enumerate() {
        let missing = used.iter().find(|c| is_null(&row[**c]));
        match (missing, policy) {
            (Some(c), MissingPolicy::Fail) => {
                return Err(DomainError::invalid(format!(
                    "row {} has no value for '{}' (set missing = \"drop\" or \"impute\")",
                    i + 1,
                    t.header[*c]
                )));
            }
            (Some(_), MissingPolicy::Drop) => {}
            _ => rows.push(i),
        }
    }
    if rows.is_empty() {
        return Err(DomainError::invalid(
            "no rows are left after dropping rows with missing values",
        ));
    }
    Ok(rows)
}

/// Fits the preprocessing on `train` rows of `t`.
pub fn fit(
    t: &Table,
    target: &str,
    features: Option<&[String]>,
    task: Task,
    missing: MissingPolicy,
    train: &[usize],
) -> Result<Preprocessor, DomainError> {
    let target_col = col(t, target)?;
    let names: Vec<String> = match features {
        Some(f) => {
            if f.iter().any(|n| n == target) {
                return Err(DomainError::invalid(format!(
                    "the target '{target}' cannot also be a feature"
                )));
            }
            f.to_vec()
        }
        None => t.header.iter().filter(|h| *h != target).cloned().collect(),
    };
    if names.is_empty() {
        return Err(DomainError::invalid("no feature columns"));
    }
    let schema = infer_schema(t);
    let feature_cols = names
        .iter()
        .map(|n| col(t, n))
        .collect::<Result<Vec<usize>, _>>()?;
    // numeric columns: parse the training rows once, row by row (cache-friendly)
    let numeric: Vec<usize> = feature_cols
        .iter()
        .copied()
        .filter(|c| schema[*c].kind == ColumnKind::Numeric)
        .collect();
    // running mean and sum of squared deviations (Welford): one parse per value, stable
    let mut stats = vec![(0usize, 0f64, 0f64); t.header.len()];
    for r in train {
        let row = &t.rows[*r];
        for c in &numeric {
            let v = row[*c].trim();
            if !is_null(v) {
                let x = v.parse::<f64>().unwrap_or(0.0);
                let (n, mean, m2) = &mut stats[*c];
                *n += 1;
                let d = x - *mean;
                *mean += d / *n as f64;
                *m2 += d * (x - *mean);
            }
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for (name, c) in names.iter().zip(feature_cols) {
        match schema[c].kind {
            ColumnKind::Numeric => {
                let (n, mean, m2) = stats[c];
                let var = m2 / n.max(1) as f64;
                let std = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
                out.push(Feature::Numeric {
                    name: name.clone(),
                    mean,
                    std,
                });
            }
            kind => {
                // a column that is almost all numbers has a stray value: say which
                let numeric = t
                    .rows
                    .iter()
                    .filter(|r| r[c].trim().parse::<f64>().is_ok())
                    .count();
                if numeric * 10 >= t.rows.len() * 9 {
                    let (i, bad) = t
                        .rows
                        .iter()
                        .enumerate()
                        .find(|(_, r)| !is_null(&r[c]) && r[c].trim().parse::<f64>().is_err())
                        .map(|(i, r)| (i, r[c].clone()))
                        .unwrap_or_default();
                    return Err(DomainError::invalid(format!(
                        "feature '{name}' is numeric but row {} has the non-numeric value '{bad}'",
                        i + 1
                    )));
                }
                if kind == ColumnKind::Text {
                    return Err(DomainError::invalid(format!(
                        "feature '{name}' is free text ({} distinct values); exclude it with `features`",
                        schema[c].distinct
                    )));
                }
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for r in train {
                    let v = t.rows[*r][c].trim();
                    if !is_null(v) {
                        *counts.entry(v).or_default() += 1;
                    }
                }
                let mode = counts
                    .iter()
                    .max_by_key(|(_, n)| **n)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_default();
                out.push(Feature::Categorical {
                    name: name.clone(),
                    categories: counts.keys().map(|s| s.to_string()).collect(),
                    mode,
                });
            }
        }
    }
    let target_values: Vec<&str> = train
        .iter()
        .map(|r| t.rows[*r][target_col].trim())
        .collect();
    if let Some(i) = train.iter().find(|r| is_null(&t.rows[**r][target_col])) {
        return Err(DomainError::invalid(format!(
            "row {} has no target value",
            i + 1
        )));
    }
    let target = match task {
        Task::Classification => {
            let distinct: std::collections::HashSet<&str> = target_values.iter().copied().collect();
            let mut labels: Vec<String> = distinct.into_iter().map(str::to_string).collect();
            labels.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            });
            labels.dedup();
            if labels.len() < 2 {
                return Err(DomainError::invalid(format!(
                    "the target '{target}' has a single class in the training rows"
                )));
            }
            if labels.len() > 10_000 {
                return Err(DomainError::invalid(format!(
                    "the target '{target}' has {} classes; is it a regression?",
                    labels.len()
                )));
            }
            TargetEncoding::Classes {
                name: target.to_string(),
                labels,
            }
        }
        Task::Regression => {
            let mut nums = Vec::with_capacity(target_values.len());
            for (r, v) in train.iter().zip(&target_values) {
                nums.push(v.parse::<f64>().map_err(|_| {
                    DomainError::invalid(format!("the regression target '{target}' has the non-numeric value '{v}' in row {}", r + 1))
                })?);
            }
            let mean = nums.iter().sum::<f64>() / nums.len() as f64;
            let std = (nums.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / nums.len() as f64)
                .sqrt()
                .max(1e-12);
            TargetEncoding::Number {
                name: target.to_string(),
                mean,
                std,
            }
        }
    };
    Ok(Preprocessor {
        features: out,
        target,
        missing,
    })
}

impl Preprocessor {
    /// Model input width.
    pub fn width(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    /// Number of outputs: classes, or 1.
    pub fn outputs(&self) -> usize {
        match &self.target {
            TargetEncoding::Classes { labels, .. } => labels.len(),
            TargetEncoding::Number { .. } => 1,
        }
    }

    /// Encodes the inputs of one row given as column → value.
    pub fn encode_inputs<'a>(
        &self,
        get: impl Fn(usize, &str) -> Option<&'a str>,
        out: &mut Vec<f32>,
        row: usize,
    ) -> Result<(), DomainError> {
        for (i, f) in self.features.iter().enumerate() {
            let raw = get(i, f.name()).filter(|v| !is_null(v));
            match f {
                Feature::Numeric { name, mean, std } => {
                    let v = match raw {
                        Some(v) => v.trim().parse::<f64>().map_err(|_| {
                            DomainError::invalid(format!(
                                "row {}: '{name}' must be a number, got '{}'",
                                row + 1,
                                v.trim()
                            ))
                        })?,
                        None if self.missing == MissingPolicy::Impute => *mean,
                        None => {
                            return Err(DomainError::invalid(format!(
                                "row {}: no value for '{name}'",
                                row + 1
                            )));
                        }
                    };
                    out.push(((v - mean) / std) as f32);
                }
                Feature::Categorical {
                    name,
                    categories,
                    mode,
                } => {
                    let v = match raw {
                        Some(v) => v.trim(),
                        None if self.missing == MissingPolicy::Impute => mode.as_str(),
                        None => {
                            return Err(DomainError::invalid(format!(
                                "row {}: no value for '{name}'",
                                row + 1
                            )));
                        }
                    };
                    let start = out.len();
                    out.resize(start + categories.len(), 0.0);
                    if let Ok(i) = categories.binary_search_by(|c| c.as_str().cmp(v)) {
                        out[start + i] = 1.0;
                    }
                }
            }
        }
        Ok(())
    }

    /// Encodes rows of raw values in feature order (`cols` per row): numbers as they are,
    /// categories as their index in the training categories (`-1` for an unseen one), `NaN`
    /// for a missing value (imputed when training imputed, refused otherwise).
    pub fn encode_raw(
        &self,
        raw: &[f32],
        cols: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), DomainError> {
        if cols != self.features.len() {
            let names: Vec<&str> = self.features.iter().map(Feature::name).collect();
            return Err(DomainError::invalid(format!(
                "the model takes {} features ({}), got {cols} per row",
                names.len(),
                names.join(", ")
            )));
        }
        if cols == 0 || !raw.len().is_multiple_of(cols) {
            return Err(DomainError::invalid(format!(
                "{} values do not make whole rows of {cols}",
                raw.len()
            )));
        }
        out.reserve(raw.len() / cols * self.width());
        for (row, values) in raw.chunks_exact(cols).enumerate() {
            for (f, &v) in self.features.iter().zip(values) {
                let missing = v.is_nan();
                if missing && self.missing != MissingPolicy::Impute {
                    return Err(DomainError::invalid(format!(
                        "row {}: no value for '{}'",
                        row + 1,
                        f.name()
                    )));
                }
                match f {
                    Feature::Numeric { mean, std, .. } => {
                        let v = if missing { *mean } else { v as f64 };
                        out.push(((v - mean) / std) as f32);
                    }
                    Feature::Categorical {
                        name,
                        categories,
                        mode,
                    } => {
                        let start = out.len();
                        out.resize(start + categories.len(), 0.0);
                        let index = if missing {
                            categories.binary_search(mode).ok()
                        } else if v == -1.0 {
                            None
                        } else if v >= 0.0 && v.fract() == 0.0 && (v as usize) < categories.len() {
                            Some(v as usize)
                        } else {
                            return Err(DomainError::invalid(format!(
                                "row {}: '{name}' is categorical; {v} is not the index of one of its {} categories (or -1 for an unseen one)",
                                row + 1,
                                categories.len()
                            )));
                        };
                        if let Some(i) = index {
                            out[start + i] = 1.0;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Encodes `rows` of a table (inputs and target).
    pub fn encode(&self, t: &Table, rows: &[usize]) -> Result<Encoded, DomainError> {
        let index: HashMap<&str, usize> = t
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let cols = self
            .features
            .iter()
            .map(|f| {
                index.get(f.name()).copied().ok_or_else(|| {
                    DomainError::invalid(format!("column '{}' is not in the dataset", f.name()))
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let mut e = Encoded {
            x: Vec::with_capacity(rows.len() * self.width()),
            n: rows.len(),
            ..Default::default()
        };
        let target_name = match &self.target {
            TargetEncoding::Classes { name, .. } | TargetEncoding::Number { name, .. } => name,
        };
        let tc = *index.get(target_name.as_str()).ok_or_else(|| {
            DomainError::invalid(format!(
                "the target column '{target_name}' is not in the dataset"
            ))
        })?;
        let label_index: HashMap<&str, u32> = match &self.target {
            TargetEncoding::Classes { labels, .. } => labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i as u32))
                .collect(),
            TargetEncoding::Number { .. } => HashMap::new(),
        };
        for r in rows {
            let row = &t.rows[*r];
            self.encode_inputs(|i, _| Some(row[cols[i]].as_str()), &mut e.x, *r)?;
            let y = row[tc].trim();
            match &self.target {
                TargetEncoding::Classes { .. } => {
                    let i = *label_index.get(y).ok_or_else(|| {
                        DomainError::invalid(format!(
                            "row {}: class label '{y}' was never seen in training",
                            r + 1
                        ))
                    })?;
                    e.classes.push(i);
                }
                TargetEncoding::Number { mean, std, .. } => {
                    let v: f64 = y.parse().map_err(|_| {
                        DomainError::invalid(format!(
                            "row {}: the target '{target_name}' must be a number, got '{y}'",
                            r + 1
                        ))
                    })?;
                    e.values.push(((v - mean) / std) as f32);
                }
            }
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::dataset::parse_csv;

    #[test]
    fn fits_standardizes_and_one_hots() {
        let t = parse_csv(b"x,color,y\n1,red,a\n3,blue,b\n,red,a\n").unwrap();
        let all = vec![0, 1, 2];
        assert!(
            usable_rows(&t, &[0, 1, 2], MissingPolicy::Fail)
                .unwrap_err()
                .to_string()
                .contains("row 3 has no value for 'x'")
        );
        assert_eq!(
            usable_rows(&t, &[0, 1, 2], MissingPolicy::Drop).unwrap(),
            vec![0, 1]
        );
        let p = fit(
            &t,
            "y",
            None,
            Task::Classification,
            MissingPolicy::Impute,
            &all,
        )
        .unwrap();
        assert_eq!(p.width(), 3);
        let e = p.encode(&t, &all).unwrap();
        assert_eq!(e.classes, vec![0, 1, 0]);
        assert_eq!(&e.x[0..3], &[-1.0, 0.0, 1.0]); // (1-2)/1, one-hot [blue, red]
        assert_eq!(e.x[6], 0.0); // imputed mean
        // a label never seen in training
        let t2 = parse_csv(b"x,color,y\n1,red,c\n").unwrap();
        assert!(
            p.encode(&t2, &[0])
                .unwrap_err()
                .to_string()
                .contains("never seen in training")
        );
    }

    #[test]
    fn precise_errors() {
        let t = parse_csv(b"x,y\n1,a\n2,b\n3,a\n4,b\n5,a\n6,b\n7,a\n8,b\n9,a\n1O,b\n").unwrap();
        let all: Vec<usize> = (0..10).collect();
        let e = fit(
            &t,
            "y",
            None,
            Task::Classification,
            MissingPolicy::Fail,
            &all,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("numeric but row 10 has the non-numeric value '1O'"),
            "{e}"
        );
        assert!(
            fit(
                &t,
                "nope",
                None,
                Task::Classification,
                MissingPolicy::Fail,
                &all
            )
            .unwrap_err()
            .to_string()
            .contains("'nope' is not in the dataset")
        );
        let e = fit(&t, "y", None, Task::Regression, MissingPolicy::Fail, &all);
        assert!(e.is_err());
    }
}
