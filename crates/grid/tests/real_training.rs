//! The grid runner with the real engine (siamese-solver) on a slice of the embedded MNIST
//! sample: every cell's files, the summary, skipping finished cells, and stop then resume.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use siamese_grid::cell_trainer::{
    CellError, CellEvent, CellJob, CellOutcome, CellTrainer, Control,
};
use siamese_grid::cells::Cell;
use siamese_grid::experiment::Experiment;
use siamese_grid::runner::{GridReport, RunOptions, run_grid};
use siamese_grid::train::SolverTrainer;
use siamese_proto::{Message, NetParameter};
use siamese_testkit::repo;

const TRAIN_DIGITS: usize = 320;
const TEST_DIGITS: usize = 100;

/// A 2-cell grid (margins 1 and 2, batch 16, 20 iterations) on 320 + 100 sample digits.
fn experiment(dir: &Path) -> Experiment {
    experiment_with(dir, "")
}

/// [`experiment`] with `extra` top-level keys.
fn experiment_with(dir: &Path, extra: &str) -> Experiment {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    siamese_testkit::write_idx_slice("train", "train", &data, TRAIN_DIGITS);
    siamese_testkit::write_idx_slice("t10k", "t10k", &data, TEST_DIGITS);
    let siamese = repo().join("experiments/siamese");
    let text = format!(
        "name = \"real\"\nsolver = {:?}\nnet = {:?}\ndata = {:?}\niterations = 20\n\
         test_interval = 10\nsnapshot_interval = 10\nseed = 3\n{extra}\
         [grid]\nmargin = [1.0, 2.0]\nbatch_size = [16]\n",
        siamese.join("mnist_siamese_solver.prototxt"),
        siamese.join("mnist_siamese_train_test.prototxt"),
        data,
    );
    let file = dir.join("real.toml");
    fs::write(&file, text).unwrap();
    Experiment::load(&file).unwrap()
}

fn run(dir: &Path, trainer: &dyn CellTrainer, workers: usize) -> (GridReport, Vec<CellEvent>) {
    let experiment = experiment(dir);
    let cells = Cell::expand(&experiment);
    let options = RunOptions {
        out: dir.join("runs"),
        workers,
        threads: 1,
        fresh: false,
    };
    let (tx, rx) = mpsc::channel();
    let report = run_grid(&experiment, &cells, &options, trainer, &Control::new(), tx).unwrap();
    (report, rx.into_iter().collect())
}

/// Whether `events` hold a test of `cell` after `iter` iterations.
fn tested(events: &[CellEvent], cell: usize, iter: u32) -> bool {
    events
        .iter()
        .any(|e| matches!(e, CellEvent::Test { cell: c, iter: i, .. } if (*c, *i) == (cell, iter)))
}

/// How `cell` started: `Some(resumed from)`, or `None` when it did not start.
fn started(events: &[CellEvent], cell: usize) -> Option<Option<u32>> {
    events.iter().find_map(|e| match e {
        CellEvent::Started {
            cell: c,
            resumed_from,
            ..
        } if *c == cell => Some(*resumed_from),
        _ => None,
    })
}

/// Stops the grid once a cell has done `at` iterations.
struct StopAt {
    at: u32,
    inner: SolverTrainer,
}

impl CellTrainer for StopAt {
    fn run(
        &self,
        job: &CellJob,
        events: &(dyn Fn(CellEvent) + Sync),
        control: &Control,
    ) -> Result<CellOutcome, CellError> {
        let watch = |event: CellEvent| {
            if matches!(event, CellEvent::Train { iter, .. } if iter == self.at) {
                control.request_stop();
            }
            events(event);
        };
        self.inner.run(job, &watch, control)
    }
}

fn cell_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("runs/real").join(id)
}

const CELLS: [&str; 2] = ["000-margin_1-batch_size_16", "001-margin_2-batch_size_16"];

/// `(iter, has a train loss, has a test loss)` of every log.csv row, read with siamese-report
/// (the reader `siamese plot --log` uses); every loss finite.
fn log_rows(cell: &Path) -> Vec<(i32, bool, bool)> {
    siamese_report::read_training_log(&cell.join("log.csv"))
        .unwrap()
        .iter()
        .map(|r| {
            for loss in r.train_loss.iter().chain(&r.test_loss) {
                assert!(loss.is_finite() && *loss >= 0.0, "loss {loss}");
            }
            (r.iter, r.train_loss.is_some(), r.test_loss.is_some())
        })
        .collect()
}

fn model(cell: &Path) -> NetParameter {
    let bytes = fs::read(cell.join("mnist_siamese_iter_20.caffemodel")).unwrap();
    NetParameter::decode(bytes.as_slice()).unwrap()
}

/// Every layer's weights, by layer name.
fn weights(net: &NetParameter) -> Vec<(String, Vec<Vec<f32>>)> {
    net.layer
        .iter()
        .map(|l| {
            let blobs = l.blobs.iter().map(|b| b.data.clone()).collect();
            (l.name().to_string(), blobs)
        })
        .collect()
}

fn check_finished_cells(dir: &Path) {
    let mut reader = csv::Reader::from_path(dir.join("runs/real/summary.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for ((row, id), margin) in rows.iter().zip(CELLS).zip([1.0f32, 2.0]) {
        assert_eq!(&row[0], id);
        let num = |i: usize| row[i].parse::<f64>().unwrap();
        assert_eq!(num(4), 20.0, "iterations");
        for (what, i) in [("train loss", 5), ("test loss", 6)] {
            assert!(num(i).is_finite() && num(i) >= 0.0, "{what} {}", num(i));
        }
        for (what, i) in [("k-NN accuracy", 7), ("pair accuracy", 8)] {
            assert!((0.0..=1.0).contains(&num(i)), "{what} {}", num(i));
        }

        let cell = cell_dir(dir, id);
        let params: toml::Table =
            toml::from_str(&fs::read_to_string(cell.join("params.toml")).unwrap()).unwrap();
        assert_eq!(
            params["params"]["margin"].as_float(),
            Some(f64::from(margin))
        );
        // A row for each of the 20 training iterations (0 to 19, Caffe's numbers) and for
        // the tests after 10 and 20, each test before the training row of its iteration.
        let mut expected = Vec::new();
        for i in 0..=20 {
            if i == 10 || i == 20 {
                expected.push((i, false, true));
            }
            if i < 20 {
                expected.push((i, true, false));
            }
        }
        assert_eq!(log_rows(&cell), expected, "{id}");
        // The weights file holds the cell's net: its margin and batch size.
        let net = model(&cell);
        let loss = net.layer.iter().find(|l| l.name() == "loss").unwrap();
        assert_eq!(loss.contrastive_loss_param.unwrap().margin(), margin);
        let data = net.layer.iter().find(|l| l.r#type() == "Data").unwrap();
        assert_eq!(data.data_param.as_ref().unwrap().batch_size(), 16);
        let features = fs::read_to_string(cell.join("features.csv")).unwrap();
        assert_eq!(features.lines().next(), Some("index,label,f0,f1"));
        let points = siamese_report::read_features(&cell.join("features.csv")).unwrap();
        assert_eq!(points.len(), TEST_DIGITS);
        assert!(cell.join("done.toml").is_file());
        assert!(cell.join("mnist_siamese_iter_10.solverstate").is_file());
    }
}

#[test]
fn a_real_grid_trains_skips_and_resumes_to_the_same_weights() {
    let whole = tempfile::tempdir().unwrap();
    let (report, events) = run(whole.path(), &SolverTrainer::new(), 2);
    assert_eq!(
        (
            report.finished,
            report.skipped,
            report.failed,
            report.stopped
        ),
        (2, 0, 0, 0),
        "{events:?}"
    );
    for cell in 0..CELLS.len() {
        for iter in [10, 20] {
            assert!(
                tested(&events, cell, iter),
                "cell {cell}: no test at {iter}"
            );
        }
    }
    check_finished_cells(whole.path());

    // Run again: both cells are finished and nothing trains.
    let (again, events) = run(whole.path(), &SolverTrainer::new(), 2);
    assert_eq!((again.finished, again.skipped), (0, 2), "{events:?}");

    // One worker, stopped at iteration 13: the first cell snapshots there and the second
    // never starts. The next run resumes the first and runs the second, and both end with
    // the same weights, bit for bit, as the uninterrupted run.
    let split = tempfile::tempdir().unwrap();
    let stopper = StopAt {
        at: 13,
        inner: SolverTrainer::new(),
    };
    let (stopped, events) = run(split.path(), &stopper, 1);
    assert_eq!((stopped.finished, stopped.stopped), (0, 1), "{events:?}");
    let (resumed, events) = run(split.path(), &SolverTrainer::new(), 2);
    assert_eq!(resumed.finished, 2, "{events:?}");
    assert_eq!(started(&events, 0), Some(Some(13)));
    assert_eq!(started(&events, 1), Some(None));
    for id in CELLS {
        assert_eq!(
            weights(&model(&cell_dir(split.path(), id))),
            weights(&model(&cell_dir(whole.path(), id))),
            "{id}: resumed weights differ"
        );
    }
    check_finished_cells(split.path());
}

/// Open set: trained on digits 0-4, scored on the test digits 5-9 only, with no k-NN (its
/// reference holds the training classes); the pair databases follow the split.
#[test]
fn an_open_set_grid_trains_on_some_classes_and_scores_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment_with(dir.path(), "train_classes = [0, 1, 2, 3, 4]\n");
    let cells = Cell::expand(&experiment);
    let options = RunOptions {
        out: dir.path().join("runs"),
        workers: 1,
        threads: 1,
        fresh: false,
    };
    let (tx, rx) = mpsc::channel();
    let report = run_grid(
        &experiment,
        &cells,
        &options,
        &SolverTrainer::new(),
        &Control::new(),
        tx,
    )
    .unwrap();
    drop(rx);
    assert_eq!(report.finished, 2);
    let labels = siamese_data::idx::read_labels(&dir.path().join("data/t10k-labels-idx1-ubyte"))
        .unwrap()
        .labels;
    let unseen = labels.iter().filter(|&&l| l >= 5).count();
    let pairs = dir.path().join("runs/real/pairs");
    let test_db = pairs.join("siamese_test_caffe_seed3_train0-1-2-3-4_leveldb");
    assert_eq!(
        siamese_data::leveldb::DatumDb::open(&test_db)
            .unwrap()
            .len(),
        unseen
    );
    let train_db = pairs.join("siamese_train_caffe_seed3_train0-1-2-3-4_leveldb");
    let train_labels =
        siamese_data::idx::read_labels(&dir.path().join("data/train-labels-idx1-ubyte")).unwrap();
    let seen = train_labels.labels.iter().filter(|&&l| l < 5).count();
    assert_eq!(
        siamese_data::leveldb::DatumDb::open(&train_db)
            .unwrap()
            .len(),
        seen
    );
    for id in CELLS {
        let done = siamese_grid::cell_folder::CellFolder::new(cell_dir(dir.path(), id))
            .done()
            .unwrap();
        assert_eq!((done.metrics.points, done.metrics.classes), (unseen, 5));
        assert_eq!(done.metrics.knn_accuracy, None);
        assert!((0.0..=1.0).contains(&done.metrics.map_at_r));
    }
}
