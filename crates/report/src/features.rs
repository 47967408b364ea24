//! The features CSV in its two forms: `index,label,f0,f1,…` for digits (written by `siamese
//! embed` and every TUI cell, read by `siamese plot`, `siamese eval`, the TUI) and `file,f0,…`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::ReportError;

/// Features of images with their digit: the points `siamese eval` and the metrics take.
pub type LabelledFeatures = Vec<(Vec<f32>, u8)>;

/// The CSV text for `rows` of `dim` features each, with their digit (an empty cell when
/// unknown): `index,label,f0,…`. Numbers are written in Rust's shortest round-trip form.
pub fn features_csv<'a>(
    dim: usize,
    rows: impl IntoIterator<Item = (&'a [f32], Option<u8>)>,
) -> Vec<u8> {
    let mut text = String::from("index,label");
    for i in 0..dim {
        write!(text, ",f{i}").expect("writing to a String");
    }
    text.push('\n');
    for (index, (features, label)) in rows.into_iter().enumerate() {
        write!(text, "{index},").expect("writing to a String");
        if let Some(label) = label {
            write!(text, "{label}").expect("writing to a String");
        }
        for v in features {
            write!(text, ",{v}").expect("writing to a String");
        }
        text.push('\n');
    }
    text.into_bytes()
}

/// Features of image files, keyed by the file's path as given: `siamese embed --images` of a
/// folder or list of PNG/JPEG files.
pub type FileFeatures = Vec<(String, Vec<f32>)>;

/// The CSV text for `rows` of `dim` features each, keyed by file: `file,f0,…`. File names
/// are quoted where CSV needs it; numbers in Rust's shortest round-trip form.
pub fn file_features_csv<'a>(
    dim: usize,
    rows: impl IntoIterator<Item = (&'a str, &'a [f32])>,
) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = std::iter::once("file".to_string()).chain((0..dim).map(|i| format!("f{i}")));
    writer.write_record(header).expect("writing to a Vec<u8>");
    for (file, features) in rows {
        let cells = std::iter::once(file.to_string()).chain(features.iter().map(f32::to_string));
        writer.write_record(cells).expect("writing to a Vec<u8>");
    }
    writer.into_inner().expect("flushing into a Vec<u8>")
}

/// Reads a `file,f0,…` CSV at `path`: the first column is `file`, every other a feature.
pub fn read_file_features(path: &Path) -> Result<FileFeatures, ReportError> {
    let file = File::open(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    read_file_features_from(file, path)
}

/// [`read_file_features`] on any reader; `path` names it in errors.
pub fn read_file_features_from(input: impl Read, path: &Path) -> Result<FileFeatures, ReportError> {
    let fail = |message: String| ReportError::format(path, message);
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| fail(format!("cannot read the header: {e}")))?
        .clone();
    let names: Vec<&str> = headers.iter().map(str::trim).collect();
    if names.first() != Some(&"file") || names.len() < 2 {
        return Err(fail(format!(
            "header {names:?}, expected file,f0,… (a file column, then feature columns)"
        )));
    }
    let mut rows = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| fail(format!("line {line}: {e}")))?;
        let features = (1..names.len())
            .map(|i| finite_cell(&record, i, names[i], line).map_err(&fail))
            .collect::<Result<Vec<f32>, _>>()?;
        rows.push((record[0].to_string(), features));
    }
    if rows.is_empty() {
        return Err(fail("no rows after the header".into()));
    }
    Ok(rows)
}

/// Cell `i` of `record` as a finite number, or the message saying what it holds instead.
fn finite_cell(
    record: &csv::StringRecord,
    i: usize,
    name: &str,
    line: usize,
) -> Result<f32, String> {
    let cell = record.get(i).unwrap_or("").trim();
    cell.parse::<f32>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("line {line}: {name} = {cell:?}, expected a finite number"))
}

/// Reads `path`: a header naming a `label` column (`digit` in files of older TUI cells); every
/// other column except `index`/`id` is a feature, in file order. Every row needs a label.
pub fn read_features(path: &Path) -> Result<LabelledFeatures, ReportError> {
    let file = File::open(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    read_features_from(file, path)
}

/// [`read_features`] on any reader; `path` names it in errors.
pub fn read_features_from(input: impl Read, path: &Path) -> Result<LabelledFeatures, ReportError> {
    let fail = |message: String| ReportError::format(path, message);
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| fail(format!("cannot read the header: {e}")))?
        .clone();
    let names: Vec<&str> = headers.iter().map(str::trim).collect();
    let Some(label_col) = names.iter().position(|n| matches!(*n, "label" | "digit")) else {
        if names.first() == Some(&"file") {
            return Err(fail(
                "a file,f0,… CSV (embed --images) has no labels; expected index,label,f0,…".into(),
            ));
        }
        return Err(fail(format!(
            "header {names:?} has no `label` column (expected feature columns and a label column)"
        )));
    };
    let feature_cols: Vec<usize> = (0..names.len())
        .filter(|&i| i != label_col && !matches!(names[i], "index" | "id"))
        .collect();
    if feature_cols.is_empty() {
        return Err(fail(format!("header {names:?} has no feature columns")));
    }
    let mut points = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| fail(format!("line {line}: {e}")))?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let label: u8 = cell(label_col).parse().map_err(|_| {
            fail(format!(
                "line {line}: label {:?}, expected a digit 0-255",
                cell(label_col)
            ))
        })?;
        let features = feature_cols
            .iter()
            .map(|&i| finite_cell(&record, i, names[i], line).map_err(&fail))
            .collect::<Result<Vec<f32>, _>>()?;
        points.push((features, label));
    }
    if points.is_empty() {
        return Err(fail("no rows after the header".into()));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<LabelledFeatures, &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, text).unwrap();
        match (read_features(&path), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(want)) => {
                let e = e.to_string();
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
        check("digit,f0,f1\n3,1,2\n", Ok(vec![(vec![1.0, 2.0], 3)]));
        check("f0,f1\n1,2\n", Err("no `label` column"));
        check(
            "f0,label\nabc,1\n",
            Err("line 2: f0 = \"abc\", expected a finite number"),
        );
        check(
            "f0,label\nNaN,1\n",
            Err("line 2: f0 = \"NaN\", expected a finite"),
        );
        check(
            "f0,label\n1,1\ninf,1\n",
            Err("line 3: f0 = \"inf\", expected a finite"),
        );
        check(
            "index,label,f0\n0,,1\n",
            Err("line 2: label \"\", expected a digit"),
        );
        check("f0,label\n", Err("no rows"));
    }

    #[test]
    fn written_features_read_back_bit_for_bit() {
        let points: LabelledFeatures = vec![
            (vec![0.1, -2.5e-7, 3.0], 4),
            (vec![f32::MIN_POSITIVE, 1e30, -0.0], 9),
        ];
        let bytes = features_csv(3, points.iter().map(|(f, l)| (f.as_slice(), Some(*l))));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("index,label,f0,f1,f2\n0,4,0.1,"), "{text}");
        let back = read_features_from(bytes.as_slice(), Path::new("mem.csv")).unwrap();
        let bits = |p: &LabelledFeatures| -> Vec<(Vec<u32>, u8)> {
            p.iter()
                .map(|(f, l)| (f.iter().map(|x| x.to_bits()).collect(), *l))
                .collect()
        };
        assert_eq!(bits(&back), bits(&points));
    }

    #[test]
    fn file_features_read_back_bit_for_bit_with_quoted_names() {
        let rows: FileFeatures = vec![
            ("digits/7.png".into(), vec![0.1, -2.5e-7]),
            ("a, \"b\".jpg".into(), vec![f32::MIN_POSITIVE, -0.0]),
        ];
        let bytes = file_features_csv(2, rows.iter().map(|(f, v)| (f.as_str(), v.as_slice())));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("file,f0,f1\ndigits/7.png,0.1,"), "{text}");
        let back = read_file_features_from(bytes.as_slice(), Path::new("mem.csv")).unwrap();
        let bits = |r: &FileFeatures| -> Vec<(String, Vec<u32>)> {
            r.iter()
                .map(|(f, v)| (f.clone(), v.iter().map(|x| x.to_bits()).collect()))
                .collect()
        };
        assert_eq!(bits(&back), bits(&rows));
    }

    #[test]
    fn file_features_errors_name_the_file_and_line() {
        let read = |text: &str| {
            read_file_features_from(text.as_bytes(), Path::new("f.csv"))
                .unwrap_err()
                .to_string()
        };
        assert!(read("index,label,f0\n0,1,2\n").contains("expected file,f0"));
        assert!(read("file\na.png\n").contains("expected file,f0"));
        assert!(
            read("file,f0\na.png,x\n").contains("f.csv: line 2: f0 = \"x\", expected a finite")
        );
        assert!(read("file,f0\n").contains("no rows"));
        check("file,f0\na.png,1\n", Err("has no labels"));
    }

    #[test]
    fn unknown_labels_are_written_empty() {
        let bytes = features_csv(1, [([2.5f32].as_slice(), None)]);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "index,label,f0\n0,,2.5\n"
        );
    }
}
