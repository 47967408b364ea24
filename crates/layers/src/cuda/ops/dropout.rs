//! Dropout has no CUDA code yet: the defaults of `CudaLayer` refuse a GPU net with it, naming
//! the layer (run such nets with --device cpu).

use super::CudaLayer;
use crate::layers::Dropout;

impl CudaLayer for Dropout {}
