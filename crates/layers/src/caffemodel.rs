//! Caffe's binary weights (`.caffemodel`: a NetParameter whose layers carry `blobs`): BlobProto
//! conversion with Caffe's shape rules, file reading (V1 and V2) and atomic writing.

use std::path::Path;

use prost::Message;
use siamese_proto::{BlobProto, BlobShape, NetParameter};

use crate::{Blob, LayerError};

/// A blob's data as a BlobProto with a `shape` (Caffe's current form; no diff).
pub fn blob_to_proto(blob: &Blob) -> BlobProto {
    BlobProto {
        shape: Some(BlobShape {
            dim: blob.shape.iter().map(|&d| d as i64).collect(),
        }),
        data: blob.data.clone(),
        ..Default::default()
    }
}

/// The shape a BlobProto declares: its `shape`, or the legacy `num, channels, height, width`.
pub fn proto_shape(p: &BlobProto) -> Vec<i64> {
    match &p.shape {
        Some(s) => s.dim.clone(),
        None => [p.num, p.channels, p.height, p.width]
            .iter()
            .map(|v| v.unwrap_or(0) as i64)
            .collect(),
    }
}

/// Whether `p` fits `shape` by Caffe's `ShapeEquals`: the same dims, or for a legacy 4-D
/// proto, the shape padded to 4 axes with leading 1s (an `[500, 800]` weight matches
/// `1 1 500 800`).
pub fn proto_fits(p: &BlobProto, shape: &[usize]) -> bool {
    let declared = proto_shape(p);
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    if p.shape.is_some() {
        return declared == dims;
    }
    if dims.len() > 4 {
        return false;
    }
    let mut padded = vec![1; 4 - dims.len()];
    padded.extend(dims);
    declared == padded
}

/// Copies `p`'s values (float or double) into `blob` after checking its shape; `what` names
/// the blob (`layer "conv1" blob 0`) in errors.
pub fn copy_proto_into(p: &BlobProto, blob: &mut Blob, what: &str) -> Result<(), String> {
    if !proto_fits(p, &blob.shape) {
        return Err(format!(
            "{what}: shape {:?} in the file, the net expects {:?}",
            proto_shape(p),
            blob.shape
        ));
    }
    let count = blob.count();
    if p.data.len() == count {
        blob.data.copy_from_slice(&p.data);
    } else if p.double_data.len() == count {
        for (d, &v) in blob.data.iter_mut().zip(&p.double_data) {
            *d = v as f32;
        }
    } else {
        return Err(format!(
            "{what}: {} float / {} double values in the file, expected {count}",
            p.data.len(),
            p.double_data.len()
        ));
    }
    Ok(())
}

/// Reads a binary NetParameter (`.caffemodel`) as stored (V1 `layers` left for the caller to
/// upgrade).
pub fn read_net_parameter(path: &Path) -> Result<NetParameter, LayerError> {
    let bytes = std::fs::read(path).map_err(|source| LayerError::Io {
        path: path.display().to_string(),
        error: source,
    })?;
    NetParameter::decode(bytes.as_slice()).map_err(|e| LayerError::Weights {
        path: path.display().to_string(),
        message: format!("not a binary NetParameter (.caffemodel): {e}"),
    })
}

/// Writes `bytes` to `path` atomically (through siamese-files).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LayerError> {
    Ok(siamese_files::write_atomic(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(num: i32, channels: i32, height: i32, width: i32, data: Vec<f32>) -> BlobProto {
        BlobProto {
            num: Some(num),
            channels: Some(channels),
            height: Some(height),
            width: Some(width),
            data,
            ..Default::default()
        }
    }

    #[test]
    fn shapes_match_by_caffe_rules() {
        let mut weights = Blob::new(&[2, 3]);
        copy_proto_into(&legacy(1, 1, 2, 3, vec![1.0; 6]), &mut weights, "ip").unwrap();
        assert_eq!(weights.data, [1.0; 6]);
        let err = copy_proto_into(
            &legacy(1, 2, 1, 3, vec![1.0; 6]),
            &mut weights,
            "layer \"ip\" blob 0",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "layer \"ip\" blob 0: shape [1, 2, 1, 3] in the file, the net expects [2, 3]"
        );
        let mut bias = Blob::new(&[2]);
        let p = BlobProto {
            shape: Some(BlobShape { dim: vec![2] }),
            double_data: vec![0.5, -0.5],
            ..Default::default()
        };
        copy_proto_into(&p, &mut bias, "b").unwrap();
        assert_eq!(bias.data, [0.5, -0.5]);
        let short = BlobProto {
            shape: Some(BlobShape { dim: vec![2] }),
            data: vec![1.0],
            ..Default::default()
        };
        let err = copy_proto_into(&short, &mut bias, "b").unwrap_err();
        assert_eq!(err, "b: 1 float / 0 double values in the file, expected 2");
        // A `shape` must match exactly: [1, 2] is not [2].
        let padded = BlobProto {
            shape: Some(BlobShape { dim: vec![1, 2] }),
            data: vec![1.0, 2.0],
            ..Default::default()
        };
        assert!(copy_proto_into(&padded, &mut bias, "b").is_err());
    }

    #[test]
    fn round_trip_and_atomic_write() {
        let blob = Blob::from_data(&[2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let p = blob_to_proto(&blob);
        let mut back = Blob::new(&[2, 1, 2]);
        copy_proto_into(
            &BlobProto::decode(p.encode_to_vec().as_slice()).unwrap(),
            &mut back,
            "x",
        )
        .unwrap();
        assert_eq!(back, blob);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.caffemodel");
        write_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        let err = write_atomic(&dir.path().join("missing/w.caffemodel"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing/w.caffemodel"), "{err}");
        std::fs::write(dir.path().join("bad"), [0xff, 0xff]).unwrap();
        let err = read_net_parameter(&dir.path().join("bad")).unwrap_err();
        assert!(
            err.to_string().contains("not a binary NetParameter"),
            "{err}"
        );
    }
}
