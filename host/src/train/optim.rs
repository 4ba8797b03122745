//! Optimizers with fused, in-place updates: one pass over each parameter's memory per step
//! (moments, then the parameter), no temporary tensors. Candle's stock AdamW allocates about
//! fifteen tensors per parameter and step, which dominates small-batch training. On CUDA the same
//! updates are two small kernels per parameter (compiled once per process with NVRTC); other
//! devices use the same arithmetic written as tensor operations.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};

use super::spec::{OptimizerKind, OptimizerSpec};

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("optimizer state must be contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => candle_core::bail!("optimizer expects f32 tensors"),
    }
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("gradients must be contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => candle_core::bail!("optimizer expects f32 tensors"),
    }
}

/// Adam moments: state = [m; v] (2n), updated from the gradient (plus L2 decay of the weight
/// for Adam, which the moment op does not see: it is folded in by the caller's gradient).
struct Moments {
    beta1: f32,
    beta2: f32,
}

impl InplaceOp2 for Moments {
    fn name(&self) -> &'static str {
        "adam-moments"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let state = slice_mut(s1, l1)?;
        let g = slice(s2, l2)?;
        let (m, v) = state.split_at_mut(g.len());
        let (b1, b2) = (self.beta1, self.beta2);
        for i in 0..g.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        cuda::launch("adam_moments", s1, l1, s2, l2, &[self.beta1, self.beta2])
    }
}

/// Adam parameter update from the moments, with decoupled (AdamW) or L2 (Adam, applied through
/// the gradient in the moments; here `l2` adds `wd * w` to the moment's first order term) decay.
struct AdamApply {
    lr: f32,
    c1: f32,
    c2: f32,
    eps: f32,
    decoupled_wd: f32,
}

impl InplaceOp2 for AdamApply {
    fn name(&self) -> &'static str {
        "adam-apply"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let w = slice_mut(s1, l1)?;
        let state = slice(s2, l2)?;
        let (m, v) = state.split_at(w.len());
        for i in 0..w.len() {
            let mhat = m[i] / self.c1;
            let vhat = v[i] / self.c2;
            w[i] -= self.lr * (mhat / (vhat.sqrt() + self.eps) + self.decoupled_wd * w[i]);
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        cuda::launch(
            "adam_apply",
            s1,
            l1,
            s2,
            l2,
            &[self.lr, self.c1, self.c2, self.eps, self.decoupled_wd],
        )
    }
}

/// SGD with momentum: state = velocity; v = μ v + g; then w -= lr v.
struct Momentum {
    mu: f32,
}

impl InplaceOp2 for Momentum {
    fn name(&self) -> &'static str {
        "sgd-momentum"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let v = slice_mut(s1, l1)?;
        let g = slice(s2, l2)?;
        for i in 0..g.len() {
            v[i] = self.mu * v[i] + g[i];
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        cuda::launch("sgd_momentum", s1, l1, s2, l2, &[self.mu])
    }
}

struct SgdApply {
    lr: f32,
}

impl InplaceOp2 for SgdApply {
    fn name(&self) -> &'static str {
        "sgd-apply"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let w = slice_mut(s1, l1)?;
        let v = slice(s2, l2)?;
        for i in 0..w.len() {
            w[i] -= self.lr * v[i];
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        cuda::launch("sgd_apply", s1, l1, s2, l2, &[self.lr])
    }
}

/// The update kernels for CUDA: the CPU loops above, one thread per element.
#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::OnceLock;

    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::cudarc::nvrtc;
    use candle_core::{CudaStorage, Layout};

    const MODULE: &str = "atrium_optim";
    const SRC: &str = r#"
extern "C" __global__ void adam_moments(float *state, const float *g, unsigned int n,
                                        float b1, float b2) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float gi = g[i];
        state[i] = b1 * state[i] + (1.0f - b1) * gi;
        state[n + i] = b2 * state[n + i] + (1.0f - b2) * gi * gi;
    }
}
extern "C" __global__ void adam_apply(float *w, const float *state, unsigned int n, float lr,
                                      float c1, float c2, float eps, float wd) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float mhat = state[i] / c1;
        float vhat = state[n + i] / c2;
        w[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * w[i]);
    }
}
extern "C" __global__ void sgd_momentum(float *v, const float *g, unsigned int n, float mu) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) v[i] = mu * v[i] + g[i];
}
extern "C" __global__ void sgd_apply(float *w, const float *v, unsigned int n, float lr) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) w[i] -= lr * v[i];
}
"#;

    fn ptx() -> candle_core::Result<&'static str> {
        static PTX: OnceLock<Result<String, String>> = OnceLock::new();
        PTX.get_or_init(|| {
            nvrtc::compile_ptx(SRC)
                .map(|p| p.to_src())
                .map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling the optimizer kernels: {e}")))
    }

    fn range(l: &Layout) -> candle_core::Result<(usize, usize)> {
        l.contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("optimizer tensors must be contiguous".into()))
    }

    /// Runs `kernel(dst, src, n, scalars...)` where `n` is the element count of the smaller
    /// operand (the moments hold 2n values: m then v).
    pub fn launch(
        kernel: &str,
        dst: &mut CudaStorage,
        dl: &Layout,
        src: &CudaStorage,
        sl: &Layout,
        scalars: &[f32],
    ) -> candle_core::Result<()> {
        let func = dst.device.get_or_load_custom_func(kernel, MODULE, ptx()?)?;
        let (ds, de) = range(dl)?;
        let (ss, se) = range(sl)?;
        let n = (de - ds).min(se - ss);
        if (de - ds).max(se - ss) != n && (de - ds).max(se - ss) != 2 * n {
            candle_core::bail!("{kernel}: operands of {} and {} elements", de - ds, se - ss);
        }
        let d = dst.as_cuda_slice_mut::<f32>()?;
        let mut dv = d.slice_mut(ds..de);
        let s = src.as_cuda_slice::<f32>()?;
        let sv = s.slice(ss..se);
        let n32 =
            u32::try_from(n).map_err(|_| candle_core::Error::Msg("tensor too large".into()))?;
        let mut b = func.builder();
        b.arg(&mut dv);
        b.arg(&sv);
        b.arg(&n32);
        for x in scalars {
            b.arg(x);
        }
        // SAFETY: the kernels match these arguments, and every index is bounded by n, which
        // is within both views.
        unsafe { b.launch(LaunchConfig::for_num_elems(n32)) }
            .map_err(|e| candle_core::Error::Msg(format!("{kernel}: {e}")))?;
        Ok(())
    }
}

/// An optimizer over a fixed list of parameters.
pub struct Optimizer {
    spec: OptimizerSpec,
    vars: Vec<Var>,
    state: Vec<Tensor>,
    step: i32,
    fused: bool,
}

impl Optimizer {
    /// State for `vars` (zeros).
    pub fn new(spec: &OptimizerSpec, vars: Vec<Var>) -> candle_core::Result<Self> {
        let state = vars
            .iter()
            .map(|v| {
                let n = v.elem_count();
                let len = if spec.kind == OptimizerKind::Sgd {
                    n
                } else {
                    2 * n
                };
                Tensor::zeros(len, DType::F32, v.device())
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            spec: spec.clone(),
            vars,
            state,
            step: 0,
            fused: true,
        })
    }

    /// Whether the fused in-place kernels are used where the device has them (CPU, CUDA; the
    /// default) or the tensor-op form of the same update (for comparison).
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// One update of every parameter with its gradient, at learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        let has_kernels = |d: &candle_core::Device| d.is_cpu() || d.is_cuda();
        if !self.fused || self.vars.first().is_some_and(|v| !has_kernels(v.device())) {
            return self.step_with_tensor_ops(grads, lr);
        }
        self.step += 1;
        let s = &self.spec;
        let lr = lr as f32;
        for (var, state) in self.vars.iter().zip(&self.state) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.flatten_all()?.contiguous()?;
            // L2 weight decay (SGD, Adam) enters through the gradient
            let g = if s.weight_decay > 0.0 && s.kind != OptimizerKind::Adamw {
                (g + (var.as_tensor().flatten_all()? * s.weight_decay)?)?
            } else {
                g
            };
            let w = var.as_tensor().flatten_all()?;
            match s.kind {
                OptimizerKind::Sgd => {
                    state.inplace_op2(
                        &g,
                        &Momentum {
                            mu: s.momentum as f32,
                        },
                    )?;
                    w.inplace_op2(state, &SgdApply { lr })?;
                }
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    state.inplace_op2(
                        &g,
                        &Moments {
                            beta1: s.beta1 as f32,
                            beta2: s.beta2 as f32,
                        },
                    )?;
                    let apply = AdamApply {
                        lr,
                        c1: 1.0 - (s.beta1 as f32).powi(self.step),
                        c2: 1.0 - (s.beta2 as f32).powi(self.step),
                        eps: s.eps as f32,
                        decoupled_wd: if s.kind == OptimizerKind::Adamw {
                            s.weight_decay as f32
                        } else {
                            0.0
                        },
                    };
                    w.inplace_op2(state, &apply)?;
                }
            }
        }
        Ok(())
    }
}

impl Optimizer {
    /// The same update as `step` written as tensor operations, for devices without the fused
    /// kernels (Metal): a few temporaries per parameter, identical arithmetic.
    fn step_with_tensor_ops(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let s = &self.spec;
        for (var, state) in self.vars.iter().zip(self.state.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let shape = var.as_tensor().shape().clone();
            // detached: a variable's gradient still references the step's forward graph (its
            // activations), and the moments computed from it are kept across steps, so without
            // this every step's graph stayed alive (GPU memory grew by the activations per step)
            let w = var.as_tensor().flatten_all()?.detach();
            let mut g = g.flatten_all()?.detach();
            if s.weight_decay > 0.0 && s.kind != OptimizerKind::Adamw {
                g = (g + (&w * s.weight_decay)?)?;
            }
            let new_w = match s.kind {
                OptimizerKind::Sgd => {
                    let v = ((&*state * s.momentum)? + g)?;
                    let new_w = (&w - (&v * lr)?)?;
                    *state = v;
                    new_w
                }
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let n = w.elem_count();
                    let m = ((state.narrow(0, 0, n)? * s.beta1)? + (&g * (1.0 - s.beta1))?)?;
                    let v = ((state.narrow(0, n, n)? * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?;
                    let mhat = (&m / (1.0 - s.beta1.powi(self.step)))?;
                    let vhat = (&v / (1.0 - s.beta2.powi(self.step)))?;
                    let mut update = (mhat / (vhat.sqrt()? + s.eps)?)?;
                    if s.kind == OptimizerKind::Adamw && s.weight_decay > 0.0 {
                        update = (update + (&w * s.weight_decay)?)?;
                    }
                    *state = Tensor::cat(&[&m, &v], 0)?;
                    (&w - (update * lr)?)?
                }
            };
            var.set(&new_w.reshape(shape)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Minimizing (w - 3)² converges with every optimizer, updating the variable in place.
    #[test]
    fn fused_updates_minimize_a_quadratic() {
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Adam,
            OptimizerKind::Adamw,
        ] {
            let w = Var::from_slice(&[0.0f32, 10.0], 2, &Device::Cpu).unwrap();
            let spec = OptimizerSpec {
                kind,
                lr: if kind == OptimizerKind::Sgd {
                    0.05
                } else {
                    0.1
                },
                ..Default::default()
            };
            let mut opt = Optimizer::new(&spec, vec![w.clone()]).unwrap();
            for _ in 0..500 {
                let loss = (w.as_tensor() - 3.0)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                let grads = loss.backward().unwrap();
                opt.step(&grads, spec.lr).unwrap();
            }
            let v = w.as_tensor().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|x| (x - 3.0).abs() < 0.05), "{kind:?}: {v:?}");
        }
    }

    /// The tensor-op path keeps no autograd graph across steps: a variable's gradient still
    /// references the forward graph, and moments built from it used to keep every step's
    /// activations alive (on a GPU, memory grew until it ran out).
    #[test]
    fn tensor_op_state_keeps_no_graph() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &dev).unwrap();
        let w1 = Var::from_slice(&[0.5f32, -1.0, 2.0, 0.25], (2, 2), &dev).unwrap();
        let w2 = Var::from_slice(&[1f32, -0.5], (2, 1), &dev).unwrap();
        let spec = OptimizerSpec {
            kind: OptimizerKind::Adamw,
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut opt = Optimizer::new(&spec, vec![w1.clone(), w2.clone()]).unwrap();
        opt.set_fused(false);
        let h = x.matmul(w1.as_tensor()).unwrap().relu().unwrap();
        let loss = h.matmul(w2.as_tensor()).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        // the second layer's gradient is h^T g, and h depends on w1: it carries the graph
        assert!(grads.get(w2.as_tensor()).unwrap().track_op(), "premise");
        opt.step(&grads, spec.lr).unwrap();
        for s in &opt.state {
            assert!(!s.track_op(), "the moments must be detached");
        }
    }

    /// The tensor-op path (used off the CPU) computes what the fused kernels compute.
    #[test]
    fn tensor_op_updates_match_the_fused_kernels() {
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Adam,
            OptimizerKind::Adamw,
        ] {
            let spec = OptimizerSpec {
                kind,
                lr: 0.05,
                weight_decay: 0.01,
                ..Default::default()
            };
            let start = [0.5f32, -1.0, 2.0, 4.0, -3.0, 0.25];
            let fused = Var::from_slice(&start, (2, 3), &Device::Cpu).unwrap();
            let plain = Var::from_slice(&start, (2, 3), &Device::Cpu).unwrap();
            let mut a = Optimizer::new(&spec, vec![fused.clone()]).unwrap();
            let mut b = Optimizer::new(&spec, vec![plain.clone()]).unwrap();
            for _ in 0..25 {
                let loss = |w: &Var| {
                    (w.as_tensor() - 1.5)
                        .unwrap()
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                };
                a.step(&loss(&fused).backward().unwrap(), spec.lr).unwrap();
                b.step_with_tensor_ops(&loss(&plain).backward().unwrap(), spec.lr)
                    .unwrap();
            }
            let (x, y) = (
                fused
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
                plain
                    .as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
            assert_eq!(plain.as_tensor().dims(), &[2, 3]);
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-5, "{kind:?}: {x:?} vs {y:?}");
            }
            assert_ne!(x, start.to_vec(), "{kind:?} moved nothing");
        }
    }
}
