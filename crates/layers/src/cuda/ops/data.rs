//! Data on a GPU net: it reads records from its database on the host, and the net uploads
//! its tops after that CPU forward (no kernels, no gradient).

use super::{CudaLayer, CudaSupport};
use crate::layers::DataLayer;

impl CudaLayer for DataLayer {
    fn cuda_support(&self) -> CudaSupport {
        CudaSupport::Host
    }
}
