//! The training CSV log: one row per displayed or tested iteration,
//! `iter,lr,train_loss,test_loss,elapsed_s`, with empty cells for what that iteration lacks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::SolverError;

/// One row of the log; `None` cells are written empty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CsvRow {
    pub iter: i32,
    pub lr: Option<f32>,
    pub train_loss: Option<f32>,
    pub test_loss: Option<f32>,
    pub elapsed_s: f64,
}

/// Writes rows as they come, merging a test result and a train result of the same iteration
/// into one row (Caffe tests at iteration N before it trains iteration N).
pub struct CsvLog<W: Write> {
    out: csv::Writer<W>,
    pending: Option<CsvRow>,
    path: PathBuf,
}

impl CsvLog<BufWriter<File>> {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path) -> Result<Self, SolverError> {
        let file = File::create(path).map_err(|source| SolverError::Io {
            path: path.to_path_buf(),
            error: source,
        })?;
        CsvLog::new(BufWriter::new(file), path)
    }
}

impl<W: Write> CsvLog<W> {
    /// A log writing to `out`; `path` is only used in error messages.
    pub fn new(out: W, path: &Path) -> Result<Self, SolverError> {
        let mut log = CsvLog {
            out: csv::Writer::from_writer(out),
            pending: None,
            path: path.to_path_buf(),
        };
        log.write_record(&["iter", "lr", "train_loss", "test_loss", "elapsed_s"])?;
        Ok(log)
    }

    /// Records a displayed training iteration.
    pub fn train(
        &mut self,
        iter: i32,
        lr: f32,
        loss: f32,
        elapsed_s: f64,
    ) -> Result<(), SolverError> {
        let row = self.row_for(iter, elapsed_s)?;
        row.lr = Some(lr);
        row.train_loss = Some(loss);
        Ok(())
    }

    /// Records a test result.
    pub fn test(&mut self, iter: i32, loss: f32, elapsed_s: f64) -> Result<(), SolverError> {
        self.row_for(iter, elapsed_s)?.test_loss = Some(loss);
        Ok(())
    }

    /// Writes the last row and flushes.
    pub fn finish(&mut self) -> Result<(), SolverError> {
        self.flush_pending()?;
        self.out.flush().map_err(|source| SolverError::Io {
            path: self.path.clone(),
            error: source,
        })
    }

    fn row_for(&mut self, iter: i32, elapsed_s: f64) -> Result<&mut CsvRow, SolverError> {
        if self.pending.is_some_and(|r| r.iter != iter) {
            self.flush_pending()?;
        }
        let row = self.pending.get_or_insert(CsvRow {
            iter,
            ..Default::default()
        });
        row.elapsed_s = row.elapsed_s.max(elapsed_s);
        Ok(row)
    }

    fn flush_pending(&mut self) -> Result<(), SolverError> {
        if let Some(r) = self.pending.take() {
            let cell = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
            self.write_record(&[
                r.iter.to_string(),
                cell(r.lr),
                cell(r.train_loss),
                cell(r.test_loss),
                format!("{:.3}", r.elapsed_s),
            ])?;
        }
        Ok(())
    }

    fn write_record<S: AsRef<[u8]>>(&mut self, record: &[S]) -> Result<(), SolverError> {
        self.out.write_record(record).map_err(|e| SolverError::Io {
            path: self.path.clone(),
            error: std::io::Error::other(e),
        })
    }
}

/// Reads a log written by [`CsvLog`] back (for plotting).
pub fn read_csv_log(path: &Path) -> Result<Vec<CsvRow>, SolverError> {
    let format = |message: String| SolverError::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| format(e.to_string()))?;
    let headers = reader.headers().map_err(|e| format(e.to_string()))?.clone();
    let expected = ["iter", "lr", "train_loss", "test_loss", "elapsed_s"];
    if headers.iter().collect::<Vec<_>>() != expected {
        return Err(format(format!(
            "header {:?}, expected {}",
            headers.iter().collect::<Vec<_>>(),
            expected.join(",")
        )));
    }
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format(e.to_string()))?;
        let at = |i: usize| record.get(i).unwrap_or("").trim();
        let num = |i: usize| -> Result<Option<f32>, SolverError> {
            match at(i) {
                "" => Ok(None),
                s => s.parse().map(Some).map_err(|_| {
                    format(format!(
                        "line {}: {} {s:?} is not a number",
                        line + 2,
                        expected[i]
                    ))
                }),
            }
        };
        rows.push(CsvRow {
            iter: at(0).parse().map_err(|_| {
                format(format!(
                    "line {}: iter {:?} is not an integer",
                    line + 2,
                    at(0)
                ))
            })?,
            lr: num(1)?,
            train_loss: num(2)?,
            test_loss: num(3)?,
            elapsed_s: f64::from(num(4)?.unwrap_or(0.0)),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_and_train_rows_of_one_iteration_merge() {
        let mut buf = Vec::new();
        {
            let mut log = CsvLog::new(&mut buf, Path::new("mem.csv")).unwrap();
            log.test(0, 1.5, 0.0).unwrap();
            log.train(0, 0.01, 1.25, 0.1).unwrap();
            log.train(100, 0.0099, 0.5, 1.0).unwrap();
            log.test(200, 0.25, 2.5).unwrap();
            log.finish().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "iter,lr,train_loss,test_loss,elapsed_s\n\
             0,0.01,1.25,1.5,0.100\n\
             100,0.0099,0.5,,1.000\n\
             200,,,0.25,2.500\n"
        );
    }

    #[test]
    fn log_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut log = CsvLog::create(&path).unwrap();
        log.train(10, 0.5, 2.0, 0.5).unwrap();
        log.test(20, 1.0, 1.0).unwrap();
        log.finish().unwrap();
        let rows = read_csv_log(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].train_loss, Some(2.0));
        assert_eq!(rows[1].test_loss, Some(1.0));
        assert_eq!(rows[1].train_loss, None);
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let e = read_csv_log(&path).unwrap_err().to_string();
        assert!(
            e.contains("log.csv") && e.contains("expected iter,lr"),
            "{e}"
        );
    }
}
