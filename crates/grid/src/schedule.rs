//! Early stopping (`[schedule]`): ASHA's rungs or the median rule, decided at a cell's test
//! from the metrics other cells recorded in `schedule.csv`, under `schedule.lock`.
//!
//! The rules, exactly (`n` counts the cells with a value at the iteration, this one included;
//! values rank by the metric's direction, a value that is not finite last, ties by cell id):
//! - `asha` (asynchronous successive halving, Li et al. 2020, as Ray Tune's AsyncHyperBand
//!   runs it): rungs at `min_iterations · eta^k` below `iterations`. At a rung a cell goes on
//!   while `n < eta` (too few results for a cutoff: the first arrivals go on), else only when
//!   its rank is below `floor(n / eta)` (the top `1/eta` of the rung so far).
//! - `median` (Optuna's MedianPruner): at every test from `grace_iterations` on, a cell stops
//!   when its value is worse than the median of the other cells' values at that iteration;
//!   with no other value there it goes on.
//!
//! A decision is final: it is written to `schedule.csv` with the value it was made on, and a
//! cell that reaches the same iteration again (resumed from an earlier snapshot) gets it back.

use std::cmp::Ordering;
use std::io;
use std::path::Path;

use crate::cell_folder::write_atomic;
use crate::claim;
use crate::ranking::RankMetric;

/// The decisions of a grid, in `runs/<experiment>/`: `cell,iteration,value,decision`.
pub const SCHEDULE_FILE: &str = "schedule.csv";
/// The lock that makes deciding one runner at a time.
pub const SCHEDULE_LOCK_FILE: &str = "schedule.lock";

/// An experiment's `[schedule]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Asha { min_iterations: u32, eta: u32 },
    Median { grace_iterations: u32 },
}

/// Whether a cell goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Prune,
}

/// A decision and why it was made, in words (kept in done.toml).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: String,
}

/// One row of schedule.csv: a cell's value at an iteration it was decided at.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub cell: String,
    pub iteration: u32,
    pub value: f64,
    pub decision: Decision,
}

impl Schedule {
    /// ASHA's rungs below `iterations` (none for the median rule).
    pub fn rungs(&self, iterations: u32) -> Vec<u32> {
        let Schedule::Asha {
            min_iterations,
            eta,
        } = *self
        else {
            return Vec::new();
        };
        std::iter::successors(Some(u64::from(min_iterations)), |r| {
            r.checked_mul(u64::from(eta))
        })
        .take_while(|&r| r < u64::from(iterations))
        .map(|r| r as u32)
        .collect()
    }

    /// Whether a cell is decided on after its test at `iter` (never at the last iteration:
    /// the cell is done then).
    pub fn decides_at(&self, iter: u32, test_interval: u32, iterations: u32) -> bool {
        if iter >= iterations {
            return false;
        }
        match *self {
            Schedule::Asha { .. } => self.rungs(iterations).contains(&iter),
            Schedule::Median { grace_iterations } => {
                iter >= grace_iterations && iter.is_multiple_of(test_interval)
            }
        }
    }
}

/// The decision for `cell` with `value` at `iteration`, given the values `others` (other
/// cells, `(id, value)`) recorded at that iteration. A pure function: see the module docs.
pub fn decide(
    schedule: &Schedule,
    metric: &RankMetric,
    others: &[(&str, f64)],
    cell: &str,
    value: f64,
    iteration: u32,
) -> Verdict {
    let key = metric.key;
    match *schedule {
        Schedule::Asha { eta, .. } => {
            let n = others.len() + 1;
            if n < eta as usize {
                let reason = format!(
                    "asha: arrival {n} at rung {iteration}, fewer than eta = {eta}: goes on"
                );
                return verdict(Decision::Continue, reason);
            }
            let ahead = others
                .iter()
                .filter(|(id, v)| ranks_before(metric, (v, id), (&value, &cell)))
                .count();
            let keep = n / eta as usize;
            let decision = if ahead < keep {
                Decision::Continue
            } else {
                Decision::Prune
            };
            let reason = format!(
                "asha: {key} {value:.6} ranks {} of {n} at rung {iteration}, the top {keep} go on",
                ahead + 1
            );
            verdict(decision, reason)
        }
        Schedule::Median { .. } => {
            let mut values: Vec<f64> = others.iter().map(|(_, v)| *v).collect();
            let Some(median) = median(&mut values, metric) else {
                let reason = format!("median: no other cell at iteration {iteration}: goes on");
                return verdict(Decision::Continue, reason);
            };
            let worse = !value.is_finite() || metric.better(median, value);
            let decision = if worse {
                Decision::Prune
            } else {
                Decision::Continue
            };
            let reason = format!(
                "median: {key} {value:.6} at iteration {iteration}, the other cells' median {median:.6}"
            );
            verdict(decision, reason)
        }
    }
}

fn verdict(decision: Decision, reason: String) -> Verdict {
    Verdict { decision, reason }
}

/// Whether `(value, id)` `a` ranks before `b`: better, or equal and a smaller id; a value
/// that is not finite ranks after every finite one.
fn ranks_before(metric: &RankMetric, a: (&f64, &&str), b: (&f64, &&str)) -> bool {
    let finite = |v: &f64| v.is_finite().then_some(*v);
    match metric.order(finite(a.0), finite(b.0)) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => a.1 < b.1,
    }
}

/// The median of `values`, a value that is not finite counting as the worst.
fn median(values: &mut [f64], metric: &RankMetric) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let finite = |v: &f64| v.is_finite().then_some(*v);
    values.sort_by(|a, b| metric.order(finite(a), finite(b)));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Decides `cell` at `iteration` under the grid's schedule lock: the decision recorded for it
/// there before, or a new one from the other cells' records, appended to schedule.csv.
pub fn decide_on_disk(
    grid_dir: &Path,
    schedule: &Schedule,
    metric: &RankMetric,
    cell: &str,
    value: f64,
    iteration: u32,
) -> io::Result<Verdict> {
    let _turn = claim::lock(grid_dir, SCHEDULE_LOCK_FILE)?;
    let path = grid_dir.join(SCHEDULE_FILE);
    let mut records = read_records(&path)?;
    if let Some(earlier) = records
        .iter()
        .find(|r| r.cell == cell && r.iteration == iteration)
    {
        let reason = format!(
            "decided earlier at iteration {iteration} with {} {:.6}",
            metric.key, earlier.value
        );
        return Ok(verdict(earlier.decision, reason));
    }
    let others: Vec<(&str, f64)> = records
        .iter()
        .filter(|r| r.iteration == iteration)
        .map(|r| (r.cell.as_str(), r.value))
        .collect();
    let verdict = decide(schedule, metric, &others, cell, value, iteration);
    records.push(Record {
        cell: cell.to_string(),
        iteration,
        value,
        decision: verdict.decision,
    });
    write_atomic(&path, &records_csv(&records)?)?;
    Ok(verdict)
}

/// The rows of schedule.csv (none when it is missing); a row that does not parse is an error
/// naming its line (the caller names the file).
pub fn read_records(path: &Path) -> io::Result<Vec<Record>> {
    let mut reader = match csv::Reader::from_path(path) {
        Ok(r) => r,
        Err(e) => match e.kind() {
            csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            _ => return Err(io::Error::other(e.to_string())),
        },
    };
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {what}", line + 2),
            )
        };
        let row = row.map_err(|e| bad(&e.to_string()))?;
        let field = |i: usize| row.get(i).ok_or_else(|| bad("expected 4 fields"));
        let decision = match field(3)? {
            "continue" => Decision::Continue,
            "prune" => Decision::Prune,
            other => {
                return Err(bad(&format!(
                    "decision `{other}`: expected continue or prune"
                )));
            }
        };
        records.push(Record {
            cell: field(0)?.to_string(),
            iteration: field(1)?
                .parse()
                .map_err(|_| bad("iteration: expected a whole number"))?,
            value: field(2)?
                .parse()
                .map_err(|_| bad("value: expected a number"))?,
            decision,
        });
    }
    Ok(records)
}

fn records_csv(records: &[Record]) -> io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["cell", "iteration", "value", "decision"])?;
    for r in records {
        let decision = match r.decision {
            Decision::Continue => "continue",
            Decision::Prune => "prune",
        };
        w.write_record([
            r.cell.clone(),
            r.iteration.to_string(),
            r.value.to_string(),
            decision.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss() -> RankMetric {
        RankMetric::named("test_loss").unwrap()
    }

    const ASHA: Schedule = Schedule::Asha {
        min_iterations: 100,
        eta: 3,
    };

    fn asha(others: &[(&str, f64)], cell: &str, value: f64) -> Decision {
        decide(&ASHA, &loss(), others, cell, value, 100).decision
    }

    #[test]
    fn rungs_grow_by_eta_below_the_iterations() {
        assert_eq!(ASHA.rungs(900), [100, 300]);
        assert_eq!(ASHA.rungs(901), [100, 300, 900]);
        assert!(ASHA.decides_at(300, 100, 900) && !ASHA.decides_at(200, 100, 900));
        let median = Schedule::Median {
            grace_iterations: 200,
        };
        assert!(median.rungs(900).is_empty());
        assert!(!median.decides_at(100, 100, 900) && median.decides_at(200, 100, 900));
        assert!(!median.decides_at(900, 100, 900), "not at the end");
    }

    #[test]
    fn asha_lets_the_first_arrivals_on_then_keeps_the_top_third() {
        use Decision::*;
        assert_eq!(asha(&[], "a", 9.0), Continue);
        assert_eq!(asha(&[("a", 1.0)], "b", 9.0), Continue);
        // Three at the rung: only the best goes on.
        let two = [("a", 1.0), ("b", 2.0)];
        assert_eq!(asha(&two, "c", 0.5), Continue);
        assert_eq!(asha(&two, "c", 1.5), Prune);
        // Six: the top two.
        let five = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0), ("e", 5.0)];
        assert_eq!(asha(&five, "f", 1.5), Continue);
        assert_eq!(asha(&five, "f", 2.5), Prune);
        // A tie goes to the smaller id; a NaN is last.
        assert_eq!(asha(&[("a", 1.0), ("c", 2.0)], "b", 1.0), Prune);
        assert_eq!(asha(&[("b", 1.0), ("c", 2.0)], "a", 1.0), Continue);
        assert_eq!(
            asha(&[("a", f64::NAN), ("b", f64::NAN)], "c", 5.0),
            Continue
        );
        assert_eq!(asha(&[("a", 5.0), ("b", 6.0)], "c", f64::NAN), Prune);
    }

    #[test]
    fn asha_follows_the_metrics_direction() {
        let map = RankMetric::named("map_at_r").unwrap();
        let two = [("a", 0.5), ("b", 0.6)];
        assert_eq!(
            decide(&ASHA, &map, &two, "c", 0.7, 100).decision,
            Decision::Continue
        );
        assert_eq!(
            decide(&ASHA, &map, &two, "c", 0.55, 100).decision,
            Decision::Prune
        );
    }

    #[test]
    fn the_median_rule_stops_a_cell_worse_than_the_others_median() {
        let rule = Schedule::Median {
            grace_iterations: 0,
        };
        let d = |others: &[(&str, f64)], v| decide(&rule, &loss(), others, "z", v, 10).decision;
        assert_eq!(d(&[], 100.0), Decision::Continue, "no one to compare with");
        let three = [("a", 1.0), ("b", 2.0), ("c", 3.0)];
        assert_eq!(d(&three, 2.0), Decision::Continue, "equal to the median");
        assert_eq!(d(&three, 2.5), Decision::Prune);
        let four = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)];
        assert_eq!(d(&four, 2.4), Decision::Continue, "median 2.5");
        assert_eq!(d(&four, 2.6), Decision::Prune);
        assert_eq!(d(&four, f64::NAN), Decision::Prune);
        let reason = decide(&rule, &loss(), &four, "z", 2.6, 10).reason;
        assert_eq!(
            reason,
            "median: test_loss 2.600000 at iteration 10, the other cells' median 2.500000"
        );
    }

    #[test]
    fn decisions_on_disk_are_kept_and_seen_by_later_cells() {
        let dir = tempfile::tempdir().unwrap();
        let decide = |cell, value| {
            decide_on_disk(dir.path(), &ASHA, &loss(), cell, value, 100)
                .unwrap()
                .decision
        };
        assert_eq!(decide("a", 3.0), Decision::Continue);
        assert_eq!(decide("b", 2.0), Decision::Continue);
        assert_eq!(decide("c", 4.0), Decision::Prune);
        // c again (resumed before the rung), now with a winning value: the decision stands.
        assert_eq!(decide("c", 0.1), Decision::Prune);
        assert_eq!(decide("d", 1.0), Decision::Continue);
        let records = read_records(&dir.path().join(SCHEDULE_FILE)).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!((records[2].cell.as_str(), records[2].value), ("c", 4.0));
    }

    #[test]
    fn a_damaged_schedule_file_is_an_error_naming_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SCHEDULE_FILE);
        std::fs::write(
            &path,
            "cell,iteration,value,decision\na,100,1,continue\nb,x,2,prune\n",
        )
        .unwrap();
        let e = read_records(&path).unwrap_err().to_string();
        assert_eq!(e, "line 3: iteration: expected a whole number");
    }
}
