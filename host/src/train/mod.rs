//! Training on native Candle kernels: the job spec, data preparation with preprocessing that
//! is saved with the model, the networks, fused optimizers, the training loop and the saved
//! model format. Training never runs inside Wasm.

pub mod data;
pub mod model;
pub mod net;
pub mod ops;
pub mod optim;
pub mod spec;
pub mod trainer;

pub use model::{PredictedValue, Prediction, Predictions, TrainedModel};
pub use spec::TrainSpec;
