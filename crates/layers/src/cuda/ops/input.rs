//! Input on a GPU net: its tops are set on the host (`blob_mut`, `reshape_input`), and the
//! net uploads them after its CPU forward (no kernels, no gradient).

use super::{CudaLayer, CudaSupport};
use crate::layers::Input;

impl CudaLayer for Input {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Host
    }
}
