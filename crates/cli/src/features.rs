//! Reading an embedding CSV (one row per image: feature columns and a `label` column),
//! as `siamese embed` writes it, for `siamese plot` and `siamese eval`.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The points of an embedding: features and digit label.
pub type Embedding = Vec<(Vec<f32>, u8)>;

/// Reads `path`: a header naming a `label` (or `digit`) column; every other column except
/// `index`/`id` is a feature, in file order.
pub fn read_features(path: &Path) -> Result<Embedding> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header", path.display()))?
        .clone();
    let names: Vec<&str> = headers.iter().map(str::trim).collect();
    let Some(label_col) = names.iter().position(|n| matches!(*n, "label" | "digit")) else {
        bail!(
            "{}: header {:?} has no `label` column (expected feature columns and a label column)",
            path.display(),
            names
        );
    };
    let feature_cols: Vec<usize> = (0..names.len())
        .filter(|&i| i != label_col && !matches!(names[i], "index" | "id"))
        .collect();
    if feature_cols.is_empty() {
        bail!(
            "{}: header {:?} has no feature columns",
            path.display(),
            names
        );
    }
    let mut points = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let label: u8 = cell(label_col).parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: line {line}: label {:?}, expected a digit 0-255",
                path.display(),
                cell(label_col)
            )
        })?;
        let features = feature_cols
            .iter()
            .map(|&i| {
                cell(i).parse::<f32>().map_err(|_| {
                    anyhow::anyhow!(
                        "{}: line {line}: {} = {:?}, expected a number",
                        path.display(),
                        names[i],
                        cell(i)
                    )
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        points.push((features, label));
    }
    if points.is_empty() {
        bail!("{}: no rows after the header", path.display());
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: std::result::Result<Embedding, &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, text).unwrap();
        match (read_features(&path), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(want)) => {
                let e = format!("{e:#}");
                assert!(e.contains(want) && e.contains("f.csv"), "{e}");
            }
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn reads_feature_columns_and_labels() {
        check(
            "index,f0,f1,label\n0,0.5,-1,7\n1,2,3,0\n",
            Ok(vec![(vec![0.5, -1.0], 7), (vec![2.0, 3.0], 0)]),
        );
        check("label,x,y\n3,1,2\n", Ok(vec![(vec![1.0, 2.0], 3)]));
        check("f0,f1\n1,2\n", Err("no `label` column"));
        check(
            "f0,label\nabc,1\n",
            Err("line 2: f0 = \"abc\", expected a number"),
        );
        check("f0,label\n", Err("no rows"));
    }
}
