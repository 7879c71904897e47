//! Precision configuration, with hls4ml's vocabulary so its users can port
//! their configs: a model default, overrides per layer type and per layer
//! name, per-tensor types and a reuse factor per layer.
//!
//! ```toml
//! [model]
//! precision = "fixed<16,6>"     # default for every tensor not set below
//! input = "fixed<16,6>"         # type of every input's features
//! reuse_factor = 1
//! table_bits = 10               # address bits of activation tables
//! softmax = "stable"            # or "argmax"
//!
//! [layer_type.Dense]            # any IR kind: Dense, Conv, Relu, Softmax, ...
//! weight = "fixed<8,1,RND>"
//!
//! [layer."fc1"]                 # ONNX node name, as `bxflow inspect` shows it
//! result = "fixed<12,4,RND,SAT>"
//! accum = "fixed<24,8>"         # narrows the exact accumulator
//! reuse_factor = 4
//!
//! [layer."lstm.*.cell"]         # `*` matches any text: here the cell state of
//! result = "fixed<20,8>"        # every step of an unrolled LSTM node "lstm"
//!
//! [input]                       # per graph input, by ONNX name
//! "jets" = "fixed<12,4>"
//!
//! [output]                      # per graph output, by ONNX name: the result
//! "score" = "ufixed<16,2,RND,SAT>"  # type of the layer that computes it
//! ```

use crate::fixed::FixedType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config '{path}': {msg}")]
    Io { path: String, msg: String },
    #[error("config '{path}': {msg}")]
    Parse { path: String, msg: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// How softmax is realised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SoftmaxMode {
    /// Tables for exp and 1/sum, after subtracting the maximum.
    #[default]
    Stable,
    /// One-hot of the winning class: no tables, the decision only.
    Argmax,
}

/// Types and reuse of one layer; unset fields fall back to the next level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSettings {
    /// Default for every tensor of the layer.
    pub precision: Option<FixedType>,
    pub weight: Option<FixedType>,
    pub bias: Option<FixedType>,
    /// Accumulator; exact (never rounds or wraps) when unset.
    pub accum: Option<FixedType>,
    pub result: Option<FixedType>,
    pub reuse_factor: Option<u32>,
    pub table_bits: Option<u32>,
}

impl LayerSettings {
    /// `self` where set, else `other`.
    fn or(&self, other: &LayerSettings) -> LayerSettings {
        LayerSettings {
            precision: self.precision.or(other.precision),
            weight: self.weight.or(other.weight),
            bias: self.bias.or(other.bias),
            accum: self.accum.or(other.accum),
            result: self.result.or(other.result),
            reuse_factor: self.reuse_factor.or(other.reuse_factor),
            table_bits: self.table_bits.or(other.table_bits),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub precision: FixedType,
    pub input: Option<FixedType>,
    #[serde(default = "one")]
    pub reuse_factor: u32,
    #[serde(default = "table_bits")]
    pub table_bits: u32,
    #[serde(default)]
    pub softmax: SoftmaxMode,
    /// Type of the softmax exp table entries.
    #[serde(default = "exp_ty")]
    pub softmax_exp: FixedType,
    /// Type of the softmax 1/sum table entries.
    #[serde(default = "exp_ty")]
    pub softmax_inv: FixedType,
}

fn one() -> u32 {
    1
}
fn table_bits() -> u32 {
    crate::tables::DEFAULT_TABLE_BITS
}
fn exp_ty() -> FixedType {
    FixedType::unsigned(18, 1).expect("valid type")
}

/// The default precision: hls4ml's 16 bits with 6 integer bits, but rounding
/// to nearest and saturating. Wrap-around turns a large logit into a negative
/// one and flips a trigger decision silently; saturation costs a comparator.
pub fn default_precision() -> FixedType {
    FixedType::signed(16, 6)
        .expect("valid type")
        .with_rounding(crate::fixed::Rounding::Rnd)
        .with_overflow(crate::fixed::Overflow::Sat)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: ModelSettings,
    #[serde(default)]
    pub layer_type: BTreeMap<String, LayerSettings>,
    #[serde(default)]
    pub layer: BTreeMap<String, LayerSettings>,
    /// Types of graph inputs by ONNX name (else `model.input`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input: BTreeMap<String, FixedType>,
    /// Types of graph outputs by ONNX name: the result type of the layer
    /// that computes the output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output: BTreeMap<String, FixedType>,
}

impl Default for Config {
    fn default() -> Self {
        Config::uniform(default_precision())
    }
}

impl Config {
    /// Every tensor at `precision`.
    pub fn uniform(precision: FixedType) -> Self {
        Config {
            model: ModelSettings {
                precision,
                input: None,
                reuse_factor: 1,
                table_bits: table_bits(),
                softmax: SoftmaxMode::Stable,
                softmax_exp: exp_ty(),
                softmax_inv: exp_ty(),
            },
            layer_type: BTreeMap::new(),
            layer: BTreeMap::new(),
            input: BTreeMap::new(),
            output: BTreeMap::new(),
        }
    }

    pub fn from_toml(text: &str, path: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            msg: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a config always serializes")
    }

    /// Type of the graph input named `name`.
    pub fn input_type(&self, name: &str) -> FixedType {
        self.input
            .get(name)
            .copied()
            .or(self.model.input)
            .unwrap_or(self.model.precision)
    }

    /// The `[layer]` entry for the layer `name`: its own, else the most
    /// specific pattern (most characters besides `*`) that matches it.
    fn layer_entry(&self, name: &str) -> Option<&LayerSettings> {
        self.layer.get(name).or_else(|| {
            self.layer
                .iter()
                .filter(|(k, _)| k.contains('*') && matches_pattern(k, name))
                .max_by_key(|(k, _)| k.len() - k.matches('*').count())
                .map(|(_, v)| v)
        })
    }

    /// Settings of one layer: by name (or pattern), then by kind, then the model default.
    pub fn resolve(&self, name: &str, kind: &str) -> ResolvedLayer {
        let empty = LayerSettings::default();
        let s = self
            .layer_entry(name)
            .unwrap_or(&empty)
            .or(self.layer_type.get(kind).unwrap_or(&empty));
        let p = s.precision.unwrap_or(self.model.precision);
        ResolvedLayer {
            weight: s.weight.unwrap_or(p),
            bias: s.bias.unwrap_or(p),
            accum: s.accum,
            result: s.result.unwrap_or(p),
            reuse: s.reuse_factor.unwrap_or(self.model.reuse_factor).max(1),
            table_bits: s.table_bits.unwrap_or(self.model.table_bits),
        }
    }

    /// Names in `layer`, `input` and `output` that match no layer, input
    /// or output of the model: a typo would otherwise be silently ignored.
    pub fn check_names(
        &self,
        layers: &[&str],
        inputs: &[&str],
        outputs: &[&str],
    ) -> Result<(), ConfigError> {
        let tables = [
            (
                "[layer.\"{}\"]",
                self.layer.keys().collect::<Vec<_>>(),
                layers,
                "layer",
            ),
            (
                "[input] \"{}\"",
                self.input.keys().collect(),
                inputs,
                "input",
            ),
            (
                "[output] \"{}\"",
                self.output.keys().collect(),
                outputs,
                "output",
            ),
        ];
        for (key, keys, known, what) in tables {
            // Patterns are for layers (the steps of an unrolled recurrent node).
            let names = |k: &str| match what {
                "layer" => known.iter().any(|n| matches_pattern(k, n)),
                _ => known.contains(&k),
            };
            if let Some(k) = keys.iter().find(|k| !names(k)) {
                return Err(ConfigError::Invalid(format!(
                    "{} names no {what} of the model; {what}s are: {}",
                    key.replace("{}", k),
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any text.
fn matches_pattern(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(p);
        }
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The types one layer ends up with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolvedLayer {
    pub weight: FixedType,
    pub bias: FixedType,
    pub accum: Option<FixedType>,
    pub result: FixedType,
    pub reuse: u32,
    pub table_bits: u32,
}
