//! The training log, `iter,lr,train_loss,test_loss,elapsed_s` (see the crate docs): a writer
//! that merges an iteration's test and training results into one row, and its readers.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::ReportError;

/// The log's columns, in order; a log may have more columns, only after these.
pub const LOG_COLUMNS: [&str; 5] = ["iter", "lr", "train_loss", "test_loss", "elapsed_s"];

/// One row of the log; `None` cells are written empty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogRow {
    /// Caffe's iteration number: the weights after `iter` updates.
    pub iter: i32,
    pub lr: Option<f32>,
    pub train_loss: Option<f32>,
    pub test_loss: Option<f32>,
    /// Training time so far, in seconds.
    pub elapsed_s: f64,
}

/// Writes rows as they come, merging a test result and a train result of the same iteration
/// into one row; a row is written once a result of another iteration arrives (or at
/// [`TrainingLog::finish`]). A [`TrainingLog::write_through`] log writes each result as
/// its own row at once instead.
pub struct TrainingLog<W: Write> {
    out: csv::Writer<W>,
    pending: Option<LogRow>,
    path: PathBuf,
    write_through: bool,
}

impl TrainingLog<BufWriter<File>> {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path) -> Result<Self, ReportError> {
        let file = File::create(path).map_err(|error| ReportError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        TrainingLog::new(BufWriter::new(file), path)
    }
}

impl<W: Write> TrainingLog<W> {
    /// A log writing to `out`, header first; `path` is only used in error messages.
    pub fn new(out: W, path: &Path) -> Result<Self, ReportError> {
        let mut log = TrainingLog::appending(out, path);
        log.write_record(&LOG_COLUMNS)?;
        Ok(log)
    }

    /// Goes on with a log whose header and earlier rows `out` already ends with.
    pub fn appending(out: W, path: &Path) -> Self {
        TrainingLog {
            out: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out),
            pending: None,
            path: path.to_path_buf(),
            write_through: false,
        }
    }

    /// Each result becomes its own row, written at once: nothing waits in memory, so a log
    /// that must survive a kill loses no result (a test and the training loss of one
    /// iteration are then two rows with the same `iter`).
    pub fn write_through(mut self) -> Self {
        self.write_through = true;
        self
    }

    /// Records the training loss (and learning rate) of iteration `iter`.
    pub fn train(
        &mut self,
        iter: i32,
        lr: f32,
        loss: f32,
        elapsed_s: f64,
    ) -> Result<(), ReportError> {
        let row = self.row_for(iter, elapsed_s)?;
        row.lr = Some(lr);
        row.train_loss = Some(loss);
        self.written_through()
    }

    /// Records a test loss after `iter` updates.
    pub fn test(&mut self, iter: i32, loss: f32, elapsed_s: f64) -> Result<(), ReportError> {
        self.row_for(iter, elapsed_s)?.test_loss = Some(loss);
        self.written_through()
    }

    fn written_through(&mut self) -> Result<(), ReportError> {
        if self.write_through {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Writes a whole row as it is (after the pending one), e.g. a row kept from an earlier run.
    pub fn row(&mut self, row: &LogRow) -> Result<(), ReportError> {
        self.flush_pending()?;
        self.write_row(row)
    }

    /// Hands the rows written so far on to the underlying writer (the pending row stays).
    pub fn flush(&mut self) -> Result<(), ReportError> {
        self.out.flush().map_err(|error| self.io(error))
    }

    /// Writes the last row and flushes.
    pub fn finish(&mut self) -> Result<(), ReportError> {
        self.flush_pending()?;
        self.flush()
    }

    /// Finishes the log and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, ReportError> {
        self.finish()?;
        self.out.into_inner().map_err(|e| ReportError::Io {
            path: self.path.clone(),
            error: std::io::Error::other(e.to_string()),
        })
    }

    fn row_for(&mut self, iter: i32, elapsed_s: f64) -> Result<&mut LogRow, ReportError> {
        if self.pending.is_some_and(|r| r.iter != iter) {
            self.flush_pending()?;
        }
        let row = self.pending.get_or_insert(LogRow {
            iter,
            ..Default::default()
        });
        row.elapsed_s = row.elapsed_s.max(elapsed_s);
        Ok(row)
    }

    fn flush_pending(&mut self) -> Result<(), ReportError> {
        match self.pending.take() {
            Some(row) => self.write_row(&row),
            None => Ok(()),
        }
    }

    fn write_row(&mut self, r: &LogRow) -> Result<(), ReportError> {
        let cell = |v: Option<f32>| v.map(|x| x.to_string()).unwrap_or_default();
        self.write_record(&[
            r.iter.to_string(),
            cell(r.lr),
            cell(r.train_loss),
            cell(r.test_loss),
            format!("{:.3}", r.elapsed_s),
        ])
    }

    fn write_record<S: AsRef<[u8]>>(&mut self, record: &[S]) -> Result<(), ReportError> {
        self.out
            .write_record(record)
            .map_err(|e| self.io(std::io::Error::other(e)))
    }

    fn io(&self, error: std::io::Error) -> ReportError {
        ReportError::Io {
            path: self.path.clone(),
            error,
        }
    }
}

/// Reads a whole log (for plotting): the header must start with [`LOG_COLUMNS`], and every
/// row must parse; the error names the file and the line.
pub fn read_training_log(path: &Path) -> Result<Vec<LogRow>, ReportError> {
    let file = File::open(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    read_training_log_from(file, path)
}

/// [`read_training_log`] on any reader; `path` names it in errors.
pub fn read_training_log_from(input: impl Read, path: &Path) -> Result<Vec<LogRow>, ReportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| ReportError::format(path, e.to_string()))?
        .clone();
    let names: Vec<&str> = headers.iter().collect();
    if names.len() < LOG_COLUMNS.len() || names[..LOG_COLUMNS.len()] != LOG_COLUMNS {
        return Err(ReportError::format(
            path,
            format!("header {names:?}, expected {}", LOG_COLUMNS.join(",")),
        ));
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| ReportError::format(path, format!("line {line}: {e}")))?;
        let row = parse_row(&record)
            .map_err(|m| ReportError::format(path, format!("line {line}: {m}")))?;
        rows.push(row);
    }
    Ok(rows)
}

/// The rows in complete log lines (a log being written: header included or not); the header
/// and lines that are not rows are skipped.
pub fn parse_log_lines(bytes: &[u8]) -> Vec<LogRow> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes)
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.get(0) != Some(LOG_COLUMNS[0]))
        .filter_map(|r| parse_row(&r).ok())
        .collect()
}

/// One row from its fields (columns after the five are ignored).
fn parse_row(record: &csv::StringRecord) -> Result<LogRow, String> {
    let at = |i: usize| record.get(i).unwrap_or("").trim();
    let number = |i: usize| -> Result<Option<f32>, String> {
        match at(i) {
            "" => Ok(None),
            s => s
                .parse()
                .map(Some)
                .map_err(|_| format!("{} {s:?} is not a number", LOG_COLUMNS[i])),
        }
    };
    if record.len() < LOG_COLUMNS.len() {
        return Err(format!(
            "{} fields, expected {}",
            record.len(),
            LOG_COLUMNS.len()
        ));
    }
    let iter = at(0)
        .parse()
        .map_err(|_| format!("iter {:?} is not an integer", at(0)))?;
    let elapsed_s = match at(4) {
        "" => 0.0,
        s => s
            .parse::<f64>()
            .map_err(|_| format!("elapsed_s {s:?} is not a number"))?,
    };
    Ok(LogRow {
        iter,
        lr: number(1)?,
        train_loss: number(2)?,
        test_loss: number(3)?,
        elapsed_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(iter: i32, lr: Option<f32>, train: Option<f32>, test: Option<f32>, s: f64) -> LogRow {
        LogRow {
            iter,
            lr,
            train_loss: train,
            test_loss: test,
            elapsed_s: s,
        }
    }

    #[test]
    fn test_and_train_rows_of_one_iteration_merge() {
        let mut buf = Vec::new();
        {
            let mut log = TrainingLog::new(&mut buf, Path::new("mem.csv")).unwrap();
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
    fn a_write_through_log_writes_each_result_at_once() {
        let mut buf = Vec::new();
        let mut log = TrainingLog::new(&mut buf, Path::new("mem.csv"))
            .unwrap()
            .write_through();
        log.test(5, 0.5, 2.0).unwrap();
        log.train(5, 0.01, 0.75, 2.25).unwrap();
        log.flush().unwrap();
        drop(log);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "iter,lr,train_loss,test_loss,elapsed_s\n5,,,0.5,2.000\n5,0.01,0.75,,2.250\n"
        );
    }

    #[test]
    fn log_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut log = TrainingLog::create(&path).unwrap();
        log.train(10, 0.5, 2.0, 0.5).unwrap();
        log.test(20, 1.0, 1.0).unwrap();
        log.finish().unwrap();
        let rows = read_training_log(&path).unwrap();
        assert_eq!(
            rows,
            [
                row(10, Some(0.5), Some(2.0), None, 0.5),
                row(20, None, None, Some(1.0), 1.0)
            ]
        );
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        let e = read_training_log(&path).unwrap_err().to_string();
        assert!(
            e.contains("log.csv") && e.contains("expected iter,lr"),
            "{e}"
        );
    }

    #[test]
    fn columns_after_the_five_are_ignored_and_bad_rows_are_named() {
        let check = |text: &str, expect: Result<Vec<LogRow>, &str>| {
            let got = read_training_log_from(text.as_bytes(), Path::new("log.csv"));
            match (got, expect) {
                (Ok(rows), Ok(want)) => assert_eq!(rows, want, "{text:?}"),
                (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{text:?}"),
                (got, want) => panic!("{text:?}: got {got:?}, expected {want:?}"),
            }
        };
        let header = "iter,lr,train_loss,test_loss,elapsed_s";
        check(
            &format!("{header},accuracy\n3,0.1,0.5,,1.5,0.9\n"),
            Ok(vec![row(3, Some(0.1), Some(0.5), None, 1.5)]),
        );
        check(
            &format!("{header}\n3,0.1,x,,1.5\n"),
            Err("log.csv: line 2: train_loss \"x\" is not a number"),
        );
        check(
            &format!("{header}\n3.5,0.1,0.5,,1.5\n"),
            Err("log.csv: line 2: iter \"3.5\" is not an integer"),
        );
        check(
            &format!("{header}\n3,0.1\n"),
            Err("log.csv: line 2: 2 fields, expected 5"),
        );
        check(
            "iter,phase,lr,loss,seconds\n1,train,0.01,0.5,0.1\n",
            Err(
                "log.csv: header [\"iter\", \"phase\", \"lr\", \"loss\", \"seconds\"], expected iter,lr,train_loss,test_loss,elapsed_s",
            ),
        );
    }

    #[test]
    fn complete_lines_parse_and_bad_ones_are_skipped() {
        let rows = parse_log_lines(
            b"iter,lr,train_loss,test_loss,elapsed_s\n0,0.01,0.5,,0.1\nnot,a,row\n1,0.01,oops,,0.2\n2,,,0.25,0.3\n",
        );
        assert_eq!(
            rows,
            [
                row(0, Some(0.01), Some(0.5), None, 0.1),
                row(2, None, None, Some(0.25), 0.3)
            ]
        );
    }
}
