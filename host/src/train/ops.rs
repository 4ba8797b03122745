//! Fused CPU training ops where candle's generic graph does needless work: the input layer's
//! matmul (candle's backward also computes the gradient of the data, a third of that layer's
//! cost) and softmax cross-entropy (one pass forward, one pass backward, instead of about ten
//! tensor ops). The input matmul also runs on CUDA; other devices use the plain candle ops.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

/// `x @ w` where `x` is data: only `w` gets a gradient.
struct DataMatmul {
    x: Tensor,
}

impl CustomOp1 for DataMatmul {
    fn name(&self) -> &'static str {
        "data-matmul"
    }

    fn cpu_fwd(&self, w: &CpuStorage, wl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = self.x.dims2()?;
        let (k2, n) = wl.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("data-matmul: inputs have {k} columns, the weight {k2} rows");
        }
        let (xs, xl) = self.x.storage_and_layout();
        let Storage::Cpu(xs) = &*xs else {
            candle_core::bail!("data-matmul: the data is not on the CPU");
        };
        Ok((xs.matmul(w, (1, m, n, k), xl, wl)?, Shape::from((m, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        w: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (m, k) = self.x.dims2()?;
        let (k2, n) = wl.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("data-matmul: inputs have {k} columns, the weight {k2} rows");
        }
        let (xs, xl) = self.x.storage_and_layout();
        let Storage::Cuda(xs) = &*xs else {
            candle_core::bail!("data-matmul: the data is not on the GPU");
        };
        Ok((xs.matmul(w, (1, m, n, k), xl, wl)?, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        _w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.x.t()?.matmul(grad)?))
    }
}

/// `x @ w` for the first layer in training, without computing `x`'s gradient (CPU and CUDA).
pub fn input_matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let fused = (x.device().is_cpu() && w.device().is_cpu())
        || (x.device().is_cuda() && x.device().same_device(w.device()));
    if fused && x.is_contiguous() {
        w.apply_op1(DataMatmul { x: x.clone() })
    } else {
        x.matmul(w)
    }
}

/// Mean softmax cross-entropy of logits `b × k` against class indices.
struct SoftmaxCrossEntropy {
    targets: Vec<u32>,
    /// Softmax of the forward pass, reused by the backward pass.
    probs: Mutex<Vec<f32>>,
}

impl CustomOp1 for SoftmaxCrossEntropy {
    fn name(&self) -> &'static str {
        "softmax-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, k) = l.shape().dims2()?;
        let (start, end) = l.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("cross-entropy: logits not contiguous".into())
        })?;
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("cross-entropy: logits must be f32");
        };
        let logits = &v[start..end];
        if self.targets.len() != b {
            candle_core::bail!("cross-entropy: {b} rows but {} targets", self.targets.len());
        }
        let mut probs = vec![0f32; b * k];
        let mut loss = 0f64;
        for (r, (row, p)) in logits
            .chunks_exact(k)
            .zip(probs.chunks_exact_mut(k))
            .enumerate()
        {
            let t = self.targets[r] as usize;
            if t >= k {
                candle_core::bail!("cross-entropy: class {t} out of range for {k} outputs");
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (pi, xi) in p.iter_mut().zip(row) {
                *pi = (xi - max).exp();
                sum += *pi;
            }
            let inv = 1.0 / sum;
            for pi in p.iter_mut() {
                *pi *= inv;
            }
            loss += (sum.ln() + max - row[t]) as f64;
        }
        *self.probs.lock().expect("probs") = probs;
        Ok((
            CpuStorage::F32(vec![(loss / b as f64) as f32]),
            Shape::from(()),
        ))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (b, k) = logits.dims2()?;
        let scale = grad.to_scalar::<f32>()? / b as f32;
        let mut g = std::mem::take(&mut *self.probs.lock().expect("probs"));
        if g.len() != b * k {
            candle_core::bail!("cross-entropy: backward without forward");
        }
        for (r, row) in g.chunks_exact_mut(k).enumerate() {
            row[self.targets[r] as usize] -= 1.0;
            for x in row.iter_mut() {
                *x *= scale;
            }
        }
        Ok(Some(Tensor::from_vec(g, (b, k), logits.device())?))
    }
}

/// Mean cross-entropy of `logits` (`b × k`) against class indices `targets` (`b`, u32).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    if logits.device().is_cpu() && logits.is_contiguous() {
        let op = SoftmaxCrossEntropy {
            targets: targets.to_vec1::<u32>()?,
            probs: Mutex::new(Vec::new()),
        };
        logits.apply_op1(op)
    } else {
        candle_nn::loss::cross_entropy(logits, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device, Var};

    fn argmax(t: &Tensor) -> Vec<u32> {
        t.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap()
    }

    fn close(a: &Tensor, b: &Tensor) {
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4 * (1.0 + x.abs()), "{a:?} vs {b:?}");
        }
    }

    /// The fused ops give candle's values and gradients.
    #[test]
    fn fused_ops_match_candle() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (7, 5), &dev).unwrap();
        let w0 = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
        let y = Tensor::new(&[0u32, 3, 1, 2, 2, 0, 3], &dev).unwrap();
        let (wa, wb) = (
            Var::from_tensor(&w0).unwrap(),
            Var::from_tensor(&w0).unwrap(),
        );
        let ours = cross_entropy(&input_matmul(&x, wa.as_tensor()).unwrap(), &y).unwrap();
        let theirs =
            candle_nn::loss::cross_entropy(&x.matmul(wb.as_tensor()).unwrap(), &y).unwrap();
        close(&ours, &theirs);
        let (ga, gb) = (ours.backward().unwrap(), theirs.backward().unwrap());
        close(
            ga.get(wa.as_tensor()).unwrap(),
            gb.get(wb.as_tensor()).unwrap(),
        );
        assert!(ga.get(&x).is_none(), "no gradient for the data");
        assert_eq!(
            argmax(&input_matmul(&x, wa.as_tensor()).unwrap()),
            argmax(&x.matmul(wb.as_tensor()).unwrap())
        );
    }

    #[test]
    fn refuses_out_of_range_classes() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 3), candle_core::DType::F32, &dev).unwrap();
        let y = Tensor::new(&[0u32, 3], &dev).unwrap();
        assert!(cross_entropy(&logits, &y).is_err());
    }
}
