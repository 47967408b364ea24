//! Property tests for the run record's readers: whatever the writers write reads back bit for
//! bit, and any text is rows or a one-line error naming the file; never a panic.
//! (The same readers are fuzzed by `fuzz/fuzz_targets/{training_log,features_csv,file_features_csv}.rs`.)

use std::path::Path;

use proptest::prelude::*;
use siamese_report::features::{read_features_from, read_file_features_from};
use siamese_report::training_log::read_training_log_from;
use siamese_report::{LogRow, TrainingLog, features_csv, file_features_csv};

fn one_line_naming_the_file(message: &str) {
    assert!(message.starts_with("mem.csv: "), "{message}");
    assert!(!message.contains('\n'), "{message:?}");
}

fn loss() -> impl Strategy<Value = Option<f32>> {
    prop::option::of(any::<f32>().prop_filter("finite", |x| x.is_finite()))
}

proptest! {
    #[test]
    fn a_written_log_reads_back_bit_for_bit(
        results in prop::collection::vec((0i32..1000, loss(), loss(), 0u32..100_000), 0..40)
    ) {
        let path = Path::new("mem.csv");
        let mut log = TrainingLog::new(Vec::new(), path).unwrap();
        for &(iter, train, test, ms) in &results {
            let seconds = f64::from(ms) / 1000.0;
            if let Some(t) = test {
                log.test(iter, t, seconds).unwrap();
            }
            if let Some(l) = train {
                log.train(iter, 0.01, l, seconds).unwrap();
            }
        }
        let bytes = log.into_inner().unwrap();
        let rows = read_training_log_from(bytes.as_slice(), path).unwrap();
        let bits = |v: Option<f32>| v.map(f32::to_bits);
        let logged: Vec<(i32, Option<u32>, Option<u32>)> =
            rows.iter().map(|r: &LogRow| (r.iter, bits(r.train_loss), bits(r.test_loss))).collect();
        // Each row is one run of equal iterations, the last result of each kind winning.
        let mut expected: Vec<(i32, Option<u32>, Option<u32>)> = Vec::new();
        for &(iter, train, test, _) in &results {
            if train.is_none() && test.is_none() {
                continue;
            }
            match expected.last_mut() {
                Some(last) if last.0 == iter => {
                    last.1 = bits(train).or(last.1);
                    last.2 = bits(test).or(last.2);
                }
                _ => expected.push((iter, bits(train), bits(test))),
            }
        }
        prop_assert_eq!(logged, expected);
    }

    #[test]
    fn any_log_text_is_rows_or_a_one_line_error(text in "(iter,lr,train_loss,test_loss,elapsed_s\n)?([-0-9.e,a-z\"]{0,30}\n){0,6}") {
        if let Err(e) = read_training_log_from(text.as_bytes(), Path::new("mem.csv")) {
            one_line_naming_the_file(&e.to_string());
        }
    }

    #[test]
    fn written_features_read_back_bit_for_bit(
        points in prop::collection::vec(
            (prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 3), any::<u8>()),
            1..20,
        )
    ) {
        let bytes = features_csv(3, points.iter().map(|(f, l)| (f.as_slice(), Some(*l))));
        let back = read_features_from(bytes.as_slice(), Path::new("mem.csv")).unwrap();
        let bits = |p: &[(Vec<f32>, u8)]| -> Vec<(Vec<u32>, u8)> {
            p.iter().map(|(f, l)| (f.iter().map(|x| x.to_bits()).collect(), *l)).collect()
        };
        prop_assert_eq!(bits(&back), bits(&points));
    }

    #[test]
    fn any_features_text_is_points_or_a_one_line_error(text in "((index|label|digit|f0|f1|x),){0,4}(label|f0)\n([-0-9.e,a-z\"]{0,20}\n){0,6}") {
        if let Err(e) = read_features_from(text.as_bytes(), Path::new("mem.csv")) {
            one_line_naming_the_file(&e.to_string());
        }
    }

    #[test]
    fn written_file_features_read_back_bit_for_bit(
        rows in prop::collection::vec(
            (".{0,12}", prop::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 2)),
            1..20,
        )
    ) {
        let bytes = file_features_csv(2, rows.iter().map(|(f, v)| (f.as_str(), v.as_slice())));
        let back = read_file_features_from(bytes.as_slice(), Path::new("mem.csv")).unwrap();
        let bits = |r: &[(String, Vec<f32>)]| -> Vec<(String, Vec<u32>)> {
            r.iter().map(|(f, v)| (f.clone(), v.iter().map(|x| x.to_bits()).collect())).collect()
        };
        prop_assert_eq!(bits(&back), bits(&rows));
    }

    #[test]
    fn any_file_features_text_is_rows_or_a_one_line_error(text in "(file|f0|x)(,(f0|f1|file)){0,3}\n([-0-9.e,a-z\"]{0,20}\n){0,6}") {
        if let Err(e) = read_file_features_from(text.as_bytes(), Path::new("mem.csv")) {
            one_line_naming_the_file(&e.to_string());
        }
    }
}
