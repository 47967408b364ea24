//! Experiment files: every kind of mistake is a one-line error naming the file and line, and
//! good files expand into the expected cells with stable ids.

mod support;

use std::path::Path;

use siamese_grid::cells::Cell;
use siamese_grid::experiment::{AxisValue, Experiment};
use siamese_layers::Device;

/// Parses prelude (3 lines: solver, net, data) + `body` and expects `expected`, where `FILE`
/// stands for the experiment file's path.
fn check(body: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = support::experiment_file(dir.path(), "exp", body);
    let got = match Experiment::load(&file) {
        Ok(e) => format!("ok: {} cells", Cell::expand(&e).len()),
        Err(e) => e.to_string(),
    };
    let expected = expected.replace("FILE", &file.display().to_string());
    assert_eq!(got, expected, "for body:\n{body}");
}

const OK: &str = "iterations = 10\ntest_interval = 5\n";

#[test]
fn ranking_metric_and_open_set_classes() {
    check(
        &format!("{OK}metric = \"nmi\"\ntrain_classes = [0, 1, 2, 3, 4]\n"),
        "ok: 1 cells",
    );
    check(
        &format!("{OK}metric = \"map_at_t\"\n"),
        "FILE:6: metric `map_at_t`: expected one of test_loss, train_loss, precision_at_1, \
         r_precision, map_at_r, nmi, ami, roc_auc, eer, tar_at_far_0_001, \
         verification_accuracy_mean, knn_accuracy, did you mean `map_at_r`?",
    );
    check(
        &format!("{OK}train_classes = []\n"),
        "FILE:6: train_classes: list at least one class (e.g. [0, 1, 2, 3, 4])",
    );
    check(
        &format!("{OK}train_classes = [1, 2, 1]\n"),
        "FILE:6: train_classes: class 1 is listed twice",
    );
    check(
        &format!("{OK}train_classes = [300]\n"),
        "FILE:6: train_classes: invalid value: integer `300`, expected u8",
    );
    let dir = tempfile::tempdir().unwrap();
    let file =
        support::experiment_file(dir.path(), "exp", &format!("{OK}train_classes = [3, 1]\n"));
    let e = Experiment::load(&file).unwrap();
    assert_eq!(
        (e.metric.key, e.train_classes),
        ("map_at_r", Some(vec![3, 1]))
    );
}

#[test]
fn config_errors() {
    check(
        &format!("{OK}[grid]\nmargin = [1, 2]\nseed = [1, 2, 3]\n"),
        "ok: 6 cells",
    );
    check(
        &format!("{OK}iteratons = 5\n"),
        "FILE:6: unknown key `iteratons`, did you mean `iterations`?",
    );
    check(
        &format!("{OK}[grid]\nmarign = [1]\n"),
        "FILE:7: unknown key `marign` in [grid], did you mean `margin`?",
    );
    check(
        &format!("{OK}[grid]\nfeature_dims = [2]\n"),
        "FILE:7: unknown key `feature_dims` in [grid], did you mean `feature_dim`?",
    );
    check(
        &format!("{OK}colour = \"red\"\n"),
        "FILE:6: unknown key `colour`",
    );
    check(
        &format!("{OK}margin = [1]\n"),
        "FILE:6: `margin` belongs in [grid], as a list of values",
    );
    check(
        &format!("{OK}[grid]\nmargin = []\n"),
        "FILE:7: [grid] margin: empty list; give at least one value or remove the key",
    );
    check(
        &format!("{OK}[grid]\nmargin = \"2\"\n"),
        "FILE:7: [grid] margin: invalid type: string \"2\", expected a sequence",
    );
    check(
        &format!("{OK}[grid]\nbatch_size = [64, 1.5]\n"),
        "FILE:7: [grid] batch_size: invalid type: floating point `1.5`, expected u32",
    );
    check(
        &format!("{OK}[grid]\nmargin = [1, 1.0]\n"),
        "FILE:7: [grid] margin: value 1 is listed twice",
    );
    check(
        &format!("{OK}[grid]\nmargin = [-1]\n"),
        "FILE:7: [grid] margin: value -1: expected a number above 0",
    );
    check(
        &format!("{OK}[grid]\nsimilar_fraction = [0.5, 1.5]\n"),
        "FILE:7: [grid] similar_fraction: value 1.5: expected a fraction between 0 and 1",
    );
    check(
        &format!("{OK}[grid]\nlr_policy = [\"stepp\"]\n"),
        "FILE:7: [grid] lr_policy: value stepp: expected one of fixed, step, exp, inv, multistep, poly, sigmoid",
    );
    check(
        &format!("{OK}[grid]\nseed = [1, 2]\nrepeats = 3\n"),
        "FILE:8: [grid] has both `seed` and `repeats`: list the seeds or give repeats, not both",
    );
    check(
        &format!("{OK}[grid]\nrepeats = 0\n"),
        "FILE:7: [grid] repeats: must be at least 1",
    );
    // A huge grid used to be expanded in memory (billions of cells) before anything ran.
    check(
        &format!("{OK}[grid]\nrepeats = 4000000000\n"),
        "FILE: [grid] makes too many cells (4000000000 repeats), expected at most 10000",
    );
    check(
        &format!("{OK}[grid]\nmargin = [1, 2]\nbatch_size = [1, 2, 3]\nrepeats = 2000\n"),
        "FILE: [grid] makes too many cells (2 margin x 3 batch_size x 2000 repeats), expected at most 10000",
    );
    check(
        "iterations = \"many\"\ntest_interval = 5\n",
        "FILE:4: iterations: invalid type: string \"many\", expected u32",
    );
    check(
        "iterations = 0\ntest_interval = 5\n",
        "FILE:4: iterations: must be at least 1",
    );
    check("test_interval = 5\n", "FILE: missing field `iterations`");
    check(
        &format!("{OK}name = \"a/b\"\n"),
        "FILE:6: name `a/b`: use letters, digits, `.`, `_` and `-` (it names a folder)",
    );
    check(
        &format!("{OK}[grid\n"),
        "FILE:6: unclosed table, expected `]`",
    );
    check(
        &format!("{OK}grid = 3\n"),
        "FILE:6: `grid` must be a table: [grid]",
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    let write = |text: String| std::fs::write(&file, text).unwrap();
    let missing = dir.path().join("nope.prototxt");
    write(format!(
        "solver = {missing:?}\niterations = 1\ntest_interval = 1\n"
    ));
    let err = Experiment::load(&file).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:1: solver file {} not found",
            file.display(),
            missing.display()
        )
    );

    support::experiment_file(dir.path(), "exp", "");
    let empty = tempfile::tempdir().unwrap();
    write(format!(
        "solver = {:?}\nnet = {:?}\ndata = {:?}\niterations = 1\ntest_interval = 1\n",
        dir.path().join("solver.prototxt"),
        dir.path().join("net.prototxt"),
        empty.path()
    ));
    let err = Experiment::load(&file).unwrap_err().to_string();
    let expected = format!(
        "{}:3: data folder {} has no train-images-idx3-ubyte(.gz): expected MNIST's IDX files",
        file.display(),
        empty.path().display()
    );
    assert_eq!(err, expected);

    let err = Experiment::load(Path::new("/no/such/exp.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/no/such/exp.toml: cannot read experiment file: "),
        "{err}"
    );
}

#[test]
fn cells_are_the_cartesian_product_with_readable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let body = "name = \"sweep\"\niterations = 10\ntest_interval = 5\nseed = 7\n[grid]\nmargin = [0.5, 2]\nlr_policy = [\"fixed\", \"inv\"]\nrepeats = 2\n";
    let file = support::experiment_file(dir.path(), "exp", body);
    let exp = Experiment::load(&file).unwrap();
    assert_eq!(exp.name, "sweep");
    assert_eq!(
        exp.snapshot_interval, 5,
        "snapshot_interval defaults to test_interval"
    );
    assert_eq!(
        exp.grid.axes[1].values,
        vec![
            AxisValue::Text("fixed".into()),
            AxisValue::Text("inv".into())
        ]
    );
    let cells = Cell::expand(&exp);
    let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "000-margin_0.5-lr_policy_fixed-seed_7",
            "001-margin_0.5-lr_policy_fixed-seed_8",
            "002-margin_0.5-lr_policy_inv-seed_7",
            "003-margin_0.5-lr_policy_inv-seed_8",
            "004-margin_2-lr_policy_fixed-seed_7",
            "005-margin_2-lr_policy_fixed-seed_8",
            "006-margin_2-lr_policy_inv-seed_7",
            "007-margin_2-lr_policy_inv-seed_8",
        ]
    );
    let p = &cells[6].params;
    assert_eq!(
        (p.margin, p.lr_policy.as_deref(), p.seed, p.repeat),
        (Some(2.0), Some("inv"), 7, 0)
    );
    assert_eq!(
        p.base_lr, None,
        "axes not in the grid keep the prototxt's value"
    );
    // Stable: the same file gives the same cells.
    assert_eq!(Cell::expand(&Experiment::load(&file).unwrap()), cells);
}

#[test]
fn the_shipped_experiments_are_valid_grids() {
    // The default solver/net files belong to another part of the project; check the grids
    // with them replaced, so this test does not depend on their presence.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let dir = tempfile::tempdir().unwrap();
    let mut found = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        found += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| {
                !["solver", "net", "data"]
                    .iter()
                    .any(|k| l.trim_start().starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let file = support::experiment_file(dir.path(), "shipped", &kept);
        let exp = Experiment::load(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cells = Cell::expand(&exp);
        assert!(
            cells.len() >= 4,
            "{}: only {} cells",
            path.display(),
            cells.len()
        );
        assert!(
            (1000..=2000).contains(&exp.iterations),
            "{}: {} iterations",
            path.display(),
            exp.iterations
        );
    }
    assert!(
        found >= 2,
        "expected at least two experiment files in {}",
        root.display()
    );
}

#[test]
fn device_is_a_top_level_key_or_a_grid_axis() {
    check(&format!("{OK}device = \"gpu:1\"\n"), "ok: 1 cells");
    check(
        &format!("{OK}device = \"cuda\"\n"),
        "FILE:6: device \"cuda\": expected cpu, gpu or gpu:N (N a GPU ordinal)",
    );
    check(
        &format!("{OK}device = 1\n"),
        "FILE:6: device: invalid type: integer `1`, expected a string",
    );
    check(
        &format!("{OK}device = \"gpu\"\n[grid]\ndevice = [\"cpu\"]\n"),
        "FILE:6: `device` is set here and as a [grid] axis: keep one",
    );
    check(
        &format!("{OK}[grid]\ndevice = [\"cpu\", \"gpu:x\"]\n"),
        "FILE:7: [grid] device: value gpu:x: expected cpu, gpu or gpu:N (N a GPU ordinal)",
    );
    check(
        &format!("{OK}[grid]\ndevice = [\"gpu\", \"gpu:0\"]\n"),
        "FILE:7: [grid] device: value gpu:0 is listed twice",
    );

    let dir = tempfile::tempdir().unwrap();
    let body = format!("{OK}[grid]\nmargin = [1, 2]\ndevice = [\"cpu\", \"gpu\"]\n");
    let file = support::experiment_file(dir.path(), "exp", &body);
    let exp = Experiment::load(&file).unwrap();
    assert_eq!(exp.device, None);
    let cells = Cell::expand(&exp);
    let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "000-margin_1-device_cpu",
            "001-margin_1-device_gpu_0",
            "002-margin_2-device_cpu",
            "003-margin_2-device_gpu_0",
        ]
    );
    assert_eq!(cells[1].params.device.as_deref(), Some("gpu:0"));

    let body = format!("{OK}device = \"GPU\"\n[grid]\nmargin = [1, 2]\n");
    let file = support::experiment_file(dir.path(), "top", &body);
    let exp = Experiment::load(&file).unwrap();
    assert_eq!(exp.device, Some(Device::Gpu(0)));
    let cells = Cell::expand(&exp);
    assert!(
        cells
            .iter()
            .all(|c| c.params.device.as_deref() == Some("gpu:0"))
    );
    assert_eq!(
        cells[0].id, "000-margin_1",
        "a top-level device is not part of the ids"
    );
}

#[test]
fn search_tables_sample_cells_combined_with_the_grid() {
    let body = format!(
        "{OK}seed = 4\n[grid]\nmargin = [1, 2]\n[search]\nbase_lr = \"log_uniform(1e-4, 1e-1)\"\n\
         batch_size = \"int_uniform(16, 64)\"\nlr_policy = \"choice(['fixed', 'inv'])\"\nsamples = 3\nseed = 11\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = support::experiment_file(dir.path(), "exp", &body);
    let cells = Cell::expand(&Experiment::load(&file).unwrap());
    assert_eq!(cells.len(), 6, "2 margins x 3 samples");
    let again = Cell::expand(&Experiment::load(&file).unwrap());
    assert_eq!(cells, again, "same file and seed, same cells");
    for (i, cell) in cells.iter().enumerate() {
        let keys: Vec<&str> = cell.values.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["margin", "base_lr", "batch_size", "lr_policy"]);
        assert!(
            cell.id.starts_with(&format!("{i:03}-margin_")),
            "{}",
            cell.id
        );
        let lr = cell.params.base_lr.unwrap();
        assert!((1e-4..=1e-1).contains(&lr), "{lr}");
        assert!((16..=64).contains(&cell.params.batch_size.unwrap()));
        assert!(["fixed", "inv"].contains(&cell.params.lr_policy.as_deref().unwrap()));
        assert_eq!(cell.params.seed, 4, "the experiment seed trains every cell");
    }
    // The grid's second margin runs the same three sampled points.
    let point = |c: &Cell| c.values[1..].to_vec();
    assert_eq!(
        cells[..3].iter().map(point).collect::<Vec<_>>(),
        cells[3..].iter().map(point).collect::<Vec<_>>()
    );
    let other_seed = body.replace("seed = 11", "seed = 12");
    let file = support::experiment_file(dir.path(), "exp2", &other_seed);
    assert_ne!(Cell::expand(&Experiment::load(&file).unwrap()), cells);
}

#[test]
fn search_errors_name_the_line() {
    let search = |lines: &str| format!("{OK}[search]\n{lines}");
    check(
        &search("samples = 2\nmargin = \"gauss(1, 2)\"\n"),
        "FILE:8: [search] margin: unknown distribution `gauss`: expected log_uniform(a, b), \
         uniform(a, b), int_uniform(a, b) or choice([...])",
    );
    check(
        &search("samples = 2\nmargin = \"uniform(1, x)\"\n"),
        "FILE:8: [search] margin: bound `x`: expected a number",
    );
    check(
        &search("samples = 2\nmargin = \"uniform(2, 1)\"\n"),
        "FILE:8: [search] margin: bounds (2, 1): the first must be below the second",
    );
    check(
        &search("samples = 2\nbase_lr = \"log_uniform(0, 0.1)\"\n"),
        "FILE:8: [search] base_lr: log_uniform(0, 0.1): bounds must be above 0, got 0",
    );
    check(
        &search("samples = 2\nbase_lr = \"log_uniform(-1, 0.1)\"\n"),
        "FILE:8: [search] base_lr: log_uniform(-1, 0.1): bounds must be above 0, got -1",
    );
    check(
        &search("samples = 0\nmargin = \"uniform(1, 2)\"\n"),
        "FILE:7: [search] samples: expected a whole number of at least 1",
    );
    check(
        &search("margin = \"uniform(1, 2)\"\n"),
        "FILE:6: [search] samples: missing: how many points to draw",
    );
    check(
        &search("samples = 3\n"),
        "FILE:6: [search] samples nothing: add a key such as base_lr = \"log_uniform(1e-4, 0.1)\"",
    );
    check(
        &search("samples = 3\nmargn = \"uniform(1, 2)\"\n"),
        "FILE:8: unknown key `margn` in [search], did you mean `margin`?",
    );
    check(
        &search("samples = 3\nbatch_size = \"uniform(1, 2)\"\n"),
        "FILE:8: [search] batch_size: uniform does not fit this key, which takes whole numbers: \
         use int_uniform(a, b) or choice([...])",
    );
    check(
        &search("samples = 3\nmargin = 2.0\n"),
        "FILE:8: [search] margin: expected a distribution as a string, e.g. \
         \"log_uniform(1e-4, 0.1)\" or \"choice([1, 2])\"",
    );
    check(
        &search("samples = 3\nmomentum = \"choice([0.9, 1.5])\"\n"),
        "FILE:8: [search] momentum: choice: value 1.5: expected a number in [0, 1)",
    );
    check(
        &format!("{OK}[grid]\nmargin = [1]\n[search]\nsamples = 2\nmargin = \"uniform(1, 2)\"\n"),
        "FILE:10: `margin` is in [grid] and in [search]: keep one",
    );
    check(
        &search("samples = 20000\nmargin = \"uniform(1, 2)\"\n"),
        "FILE: [grid] makes too many cells (20000 search samples), expected at most 10000",
    );
}

/// `[schedule]` after 6 lines (prelude, 900 iterations, tests every 100, test_loss): the
/// table starts at line 7.
fn schedule(table: &str) -> String {
    format!(
        "iterations = 900\ntest_interval = 100\nmetric = \"test_loss\"\n[schedule]\n{table}[grid]\nmargin = [1, 2]\n"
    )
}

#[test]
fn schedules_are_checked_against_the_tests_and_the_metric() {
    check(
        &schedule("kind = \"asha\"\nmin_iterations = 100\n"),
        "ok: 2 cells",
    );
    check(
        &schedule("kind = \"median\"\ngrace_iterations = 300\n"),
        "ok: 2 cells",
    );
    let dir = tempfile::tempdir().unwrap();
    let body = schedule("kind = \"asha\"\nmin_iterations = 100\neta = 2\n");
    let e = Experiment::load(&support::experiment_file(dir.path(), "exp", &body)).unwrap();
    let asha = e.schedule.unwrap();
    assert_eq!(asha.rungs(e.iterations), [100, 200, 400, 800]);
    check(
        &schedule("kind = \"hyperband\"\n"),
        "FILE:8: [schedule] kind `hyperband`: expected asha or median",
    );
    check(
        &schedule("kind = \"ashaa\"\nmin_iterations = 100\n"),
        "FILE:8: [schedule] kind `ashaa`: expected asha or median, did you mean `asha`?",
    );
    check(
        &schedule("kind = \"asha\"\nmin_iterations = 100\neta = 1\n"),
        "FILE:10: [schedule] eta = 1: expected at least 2 (a rung keeps the top 1/eta)",
    );
    check(
        &schedule("kind = \"asha\"\nmin_iterations = 900\n"),
        "FILE:9: [schedule] min_iterations = 900: expected at least 1 and below iterations \
         (900), so that there is a rung to stop at",
    );
    check(
        &schedule("kind = \"asha\"\nmin_iterations = 150\n"),
        "FILE:9: [schedule] rung 150 (min_iterations · eta^k) is not a test iteration: make \
         min_iterations and eta give multiples of test_interval (100)",
    );
    check(
        &schedule("kind = \"asha\"\n"),
        "FILE:7: [schedule] min_iterations: missing: the first rung of asha",
    );
    check(
        &schedule("kind = \"asha\"\nmin_iterations = 100\ngrace_iterations = 100\n"),
        "FILE:10: [schedule] grace_iterations: belongs to kind = \"median\"; asha starts at \
         min_iterations",
    );
    check(
        &schedule("kind = \"median\"\ngrace_iterations = 900\n"),
        "FILE:9: [schedule] grace_iterations = 900: expected below iterations (900) with a \
         test before the end, so that there is a test to stop at",
    );
    check(
        &schedule("kind = \"median\"\npatience = 3\n"),
        "FILE:9: [schedule] patience: unknown field `patience`, expected one of `kind`, \
         `min_iterations`, `eta`, `grace_iterations`",
    );
    check(
        "iterations = 900\ntest_interval = 100\n[schedule]\nkind = \"asha\"\nmin_iterations = 100\n",
        "FILE:6: metric `map_at_r`: [schedule] decides at tests, where only test_loss is \
         recorded: set metric = \"test_loss\"",
    );
    check(
        "iterations = 900\ntest_interval = 100\nmetric = \"nmi\"\n[schedule]\nkind = \"median\"\n",
        "FILE:6: metric `nmi`: [schedule] decides at tests, where only test_loss is recorded: \
         set metric = \"test_loss\"",
    );
}
