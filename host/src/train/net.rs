//! The networks: linear/logistic models and MLPs (activation, dropout, optional batch norm),
//! with seeded initialization so that the same seed gives the same model.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::spec::{Activation, Family, ModelSpec};

/// Architecture as saved with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    /// Input width.
    pub inputs: usize,
    /// Hidden widths (empty for linear/logistic).
    pub hidden: Vec<usize>,
    /// Output width.
    pub outputs: usize,
    /// Activation between layers.
    pub activation: Activation,
    /// Dropout probability (training only).
    pub dropout: f32,
    /// Batch norm after hidden linear layers.
    pub batch_norm: bool,
}

impl Architecture {
    /// The architecture a spec describes for given input and output widths.
    pub fn of(spec: &ModelSpec, inputs: usize, outputs: usize) -> Self {
        let hidden = if spec.family == Family::Mlp {
            spec.hidden.clone()
        } else {
            Vec::new()
        };
        Self {
            inputs,
            hidden,
            outputs,
            activation: spec.activation,
            dropout: spec.dropout,
            batch_norm: spec.batch_norm,
        }
    }
}

/// Batch normalization of one hidden layer.
struct BatchNorm {
    gamma: Var,
    beta: Var,
    mean: Var,
    var: Var,
}

const BN_MOMENTUM: f64 = 0.1;
const BN_EPS: f64 = 1e-5;

/// A network and its parameters.
pub struct Net {
    /// Architecture.
    pub arch: Architecture,
    weights: Vec<(Var, Var)>,
    norms: Vec<Option<BatchNorm>>,
    device: Device,
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

impl Net {
    /// A freshly initialized network (PyTorch's default: U(-1/√fan_in, 1/√fan_in)).
    pub fn new(arch: Architecture, seed: u64, device: &Device) -> candle_core::Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut dims = vec![arch.inputs];
        dims.extend(&arch.hidden);
        dims.push(arch.outputs);
        let mut weights = Vec::new();
        let mut norms = Vec::new();
        for (i, pair) in dims.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let w = Var::from_vec(
                uniform(&mut rng, fan_in * fan_out, bound),
                (fan_in, fan_out),
                device,
            )?;
            let b = Var::from_vec(uniform(&mut rng, fan_out, bound), fan_out, device)?;
            weights.push((w, b));
            let hidden = i + 1 < dims.len() - 1;
            norms.push(if hidden && arch.batch_norm {
                Some(BatchNorm {
                    gamma: Var::ones(fan_out, DType::F32, device)?,
                    beta: Var::zeros(fan_out, DType::F32, device)?,
                    mean: Var::zeros(fan_out, DType::F32, device)?,
                    var: Var::ones(fan_out, DType::F32, device)?,
                })
            } else {
                None
            });
        }
        Ok(Self {
            arch,
            weights,
            norms,
            device: device.clone(),
        })
    }

    /// Trainable parameters.
    pub fn vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        for ((w, b), n) in self.weights.iter().zip(&self.norms) {
            out.push(w.clone());
            out.push(b.clone());
            if let Some(n) = n {
                out.push(n.gamma.clone());
                out.push(n.beta.clone());
            }
        }
        out
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn activate(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        match self.arch.activation {
            Activation::Relu => h.relu(),
            Activation::Tanh => h.tanh(),
            Activation::Sigmoid => candle_nn::ops::sigmoid(h),
            Activation::Gelu => h.gelu_erf(),
        }
    }

    /// Forward pass. In training, batch norm uses (and updates) batch statistics and dropout
    /// draws its mask from `rng`.
    pub fn forward(
        &self,
        x: &Tensor,
        train: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor> {
        let last = self.weights.len() - 1;
        let mut h = x.clone();
        let mut rng = train;
        for (i, ((w, b), norm)) in self.weights.iter().zip(&self.norms).enumerate() {
            h = if i == 0 && rng.is_some() {
                super::ops::input_matmul(&h, w.as_tensor())?
            } else {
                h.matmul(w.as_tensor())?
            }
            .broadcast_add(b.as_tensor())?;
            if i == last {
                break;
            }
            if let Some(n) = norm {
                h = if rng.is_some() {
                    let mean = h.mean_keepdim(0)?;
                    let centered = h.broadcast_sub(&mean)?;
                    let var = centered.sqr()?.mean_keepdim(0)?;
                    let m = BN_MOMENTUM;
                    n.mean.set(
                        &((n.mean.as_tensor() * (1.0 - m))? + (mean.flatten_all()?.detach() * m)?)?,
                    )?;
                    n.var.set(
                        &((n.var.as_tensor() * (1.0 - m))? + (var.flatten_all()?.detach() * m)?)?,
                    )?;
                    centered.broadcast_div(&(var + BN_EPS)?.sqrt()?)?
                } else {
                    h.broadcast_sub(n.mean.as_tensor())?
                        .broadcast_div(&(n.var.as_tensor() + BN_EPS)?.sqrt()?)?
                };
                h = h
                    .broadcast_mul(n.gamma.as_tensor())?
                    .broadcast_add(n.beta.as_tensor())?;
            }
            h = self.activate(&h)?;
            if let Some(r) = rng.as_deref_mut()
                && self.arch.dropout > 0.0
            {
                let p = self.arch.dropout;
                let keep = 1.0 / (1.0 - p);
                let mask: Vec<f32> = (0..h.elem_count())
                    .map(|_| if r.random::<f32>() < p { 0.0 } else { keep })
                    .collect();
                let mask = Tensor::from_vec(mask, h.shape(), &self.device)?;
                h = (h * mask)?;
            }
        }
        Ok(h)
    }

    /// Class probabilities (softmax of the outputs).
    pub fn probabilities(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::softmax(&self.forward(x, None)?, D::Minus1)
    }

    /// Every tensor of the model by name (for safetensors).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, ((w, b), n)) in self.weights.iter().zip(&self.norms).enumerate() {
            out.insert(format!("layers.{i}.weight"), w.as_tensor().clone());
            out.insert(format!("layers.{i}.bias"), b.as_tensor().clone());
            if let Some(n) = n {
                out.insert(format!("layers.{i}.bn.gamma"), n.gamma.as_tensor().clone());
                out.insert(format!("layers.{i}.bn.beta"), n.beta.as_tensor().clone());
                out.insert(
                    format!("layers.{i}.bn.running_mean"),
                    n.mean.as_tensor().clone(),
                );
                out.insert(
                    format!("layers.{i}.bn.running_var"),
                    n.var.as_tensor().clone(),
                );
            }
        }
        out
    }

    /// Copies of all tensors (a snapshot, e.g. of the best epoch).
    pub fn snapshot(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        self.tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)))
            .collect()
    }

    /// Overwrites the parameters with saved tensors (names and shapes must match).
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> candle_core::Result<()> {
        let get = |name: String| {
            tensors.get(&name).ok_or_else(|| {
                candle_core::Error::Msg(format!("the model file lacks tensor {name}"))
            })
        };
        for (i, ((w, b), n)) in self.weights.iter().zip(&self.norms).enumerate() {
            w.set(&get(format!("layers.{i}.weight"))?.to_device(&self.device)?)?;
            b.set(&get(format!("layers.{i}.bias"))?.to_device(&self.device)?)?;
            if let Some(n) = n {
                n.gamma
                    .set(&get(format!("layers.{i}.bn.gamma"))?.to_device(&self.device)?)?;
                n.beta
                    .set(&get(format!("layers.{i}.bn.beta"))?.to_device(&self.device)?)?;
                n.mean
                    .set(&get(format!("layers.{i}.bn.running_mean"))?.to_device(&self.device)?)?;
                n.var
                    .set(&get(format!("layers.{i}.bn.running_var"))?.to_device(&self.device)?)?;
            }
        }
        Ok(())
    }
}
