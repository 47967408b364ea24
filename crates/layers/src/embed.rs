//! Embedding images with a deploy net: batches of IDX images go through the net's Input
//! layer (reshaped to a convenient batch) and the net's last output is collected per image.

use siamese_data::idx::IdxImages;
use siamese_proto::NetParameter;

use crate::{LayerError, Net};

/// Features of `len()` images, `dim` values each, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFeatures {
    /// Name of the output blob the features came from (`feat` for the siamese deploy net).
    pub output: String,
    pub dim: usize,
    pub values: Vec<f32>,
}

impl ImageFeatures {
    pub fn len(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The features of image `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// Lowers the batch of every Input layer's shapes to at most `max_batch`, before the net is
/// built: deploy nets often declare a whole test set (Caffe's siamese one: 10000), which would
/// size every blob and buffer for it.
pub fn cap_input_batch(param: &mut NetParameter, max_batch: usize) {
    for layer in param.layer.iter_mut().filter(|l| l.r#type() == "Input") {
        for shape in layer
            .input_param
            .iter_mut()
            .flat_map(|p| p.shape.iter_mut())
        {
            if let Some(n) = shape.dim.first_mut() {
                *n = (*n).min(max_batch.max(1) as i64);
            }
        }
    }
}

/// Runs the first `count` images through `net` (pixels × `scale`, like the Data layer's
/// transform) in batches of at most `max_batch` (and at most the batch the Input declares),
/// the last one partial; returns the net's last output for each image.
pub fn embed_images(
    net: &mut Net,
    images: &IdxImages,
    count: usize,
    scale: f32,
    max_batch: usize,
) -> Result<ImageFeatures, LayerError> {
    let input = net
        .input_names()
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| {
            LayerError::config(net.name(), "the net has no Input layer to feed images to")
        })?;
    let declared = net
        .blob(&input)
        .map(|b| b.shape.clone())
        .unwrap_or_default();
    let pixels = images.rows * images.cols;
    let (declared_batch, per_image) = match declared.split_first() {
        Some((&n, rest)) => (n, rest.iter().product::<usize>()),
        None => (0, 0),
    };
    if per_image != pixels {
        return Err(LayerError::shape(
            &input,
            format!(
                "input shape {declared:?} does not take {}×{} images (expected N×1×{}×{})",
                images.rows, images.cols, images.rows, images.cols
            ),
        ));
    }
    let count = count.min(images.count);
    let batch_cap = declared_batch.clamp(1, max_batch.max(1));
    let mut embedding = ImageFeatures {
        output: String::new(),
        dim: 0,
        values: Vec::new(),
    };
    let mut shape = declared.clone();
    let mut start = 0;
    while start < count {
        let batch = batch_cap.min(count - start);
        shape[0] = batch;
        net.reshape_input(&input, &shape)?;
        let data = &mut net.blob_mut(&input).expect("input blob exists").data;
        let src = &images.pixels[start * pixels..(start + batch) * pixels];
        data.iter_mut()
            .zip(src)
            .for_each(|(d, &p)| *d = f32::from(p) * scale);
        net.forward()?;
        let outputs = net.outputs();
        let (name, out) = outputs
            .last()
            .ok_or_else(|| LayerError::config(net.name(), "the net has no output blob"))?;
        if embedding.dim == 0 {
            embedding.output = name.to_string();
            embedding.dim = out.count() / batch;
            embedding.values.reserve(count * embedding.dim);
        }
        embedding
            .values
            .extend_from_slice(&out.data[..batch * embedding.dim]);
        start += batch;
    }
    Ok(embedding)
}
