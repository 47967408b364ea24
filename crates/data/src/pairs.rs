//! Siamese pairs the way Caffe's convert_mnist_siamese_data makes them (item k: images i and j
//! drawn uniformly, label 1 when their digits match), plus seeded and balanced variants.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{DataError, Dataset, Datum};

/// How to draw pairs. `Default` is Caffe's behaviour: one pair per image, i and j uniform
/// (so about 10% similar pairs on MNIST), with a fixed seed.
#[derive(Debug, Clone, PartialEq)]
pub struct PairOptions {
    /// Seed of the ChaCha8 generator; same seed and dataset, same pairs.
    pub seed: u64,
    /// Pairs generated per image of the dataset (Caffe: 1).
    pub pairs_per_image: usize,
    /// `Some(f)`: exactly round(f * pairs) pairs are similar, drawn within a class, the rest
    /// across classes. `None`: Caffe's independent uniform draws.
    pub similar_fraction: Option<f64>,
    /// The classes whose images the pairs are drawn from (open-set evaluation trains on some
    /// classes and tests on the others); pairs per image count the kept images only.
    pub classes: ClassFilter,
}

/// Which classes (labels) of a dataset to keep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClassFilter {
    #[default]
    All,
    /// Only these classes (e.g. the training classes of an open-set split).
    Only(Vec<u8>),
    /// Every class but these (the held-out classes of an open-set split).
    AllBut(Vec<u8>),
}

impl ClassFilter {
    pub fn keeps(&self, label: u8) -> bool {
        match self {
            ClassFilter::All => true,
            ClassFilter::Only(classes) => classes.contains(&label),
            ClassFilter::AllBut(classes) => !classes.contains(&label),
        }
    }

    /// The open-set split of `train_classes`: (train filter, test filter).
    pub fn open_set(train_classes: &[u8]) -> (ClassFilter, ClassFilter) {
        (
            ClassFilter::Only(train_classes.to_vec()),
            ClassFilter::AllBut(train_classes.to_vec()),
        )
    }
}

impl std::fmt::Display for ClassFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |c: &[u8]| c.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
        match self {
            ClassFilter::All => f.write_str("all classes"),
            ClassFilter::Only(c) => write!(f, "classes [{}]", list(c)),
            ClassFilter::AllBut(c) => write!(f, "every class but [{}]", list(c)),
        }
    }
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            seed: 1701,
            pairs_per_image: 1,
            similar_fraction: None,
            classes: ClassFilter::All,
        }
    }
}

/// Two items of a dataset and whether they share a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub first: usize,
    pub second: usize,
    pub similar: bool,
}

impl PairOptions {
    /// Checks that these options can produce pairs for `dataset` (already reduced to
    /// [`PairOptions::classes`] by [`Dataset::with_classes`]); [`generate_pairs`] assumes it.
    pub fn check(&self, dataset: &Dataset) -> Result<(), DataError> {
        let fail = |msg: String| Err(DataError::PairOptions(msg));
        if dataset.is_empty() && self.classes != ClassFilter::All {
            return fail(format!(
                "no image of {} in the dataset, expected at least one",
                self.classes
            ));
        }
        if dataset.is_empty() {
            return fail("the dataset is empty, expected at least one image".into());
        }
        if self.pairs_per_image == 0 {
            return fail("pairs per image is 0, expected at least 1".into());
        }
        if dataset.len().checked_mul(self.pairs_per_image).is_none() {
            return fail(format!(
                "{} pairs per image overflows",
                self.pairs_per_image
            ));
        }
        if let Some(f) = self.similar_fraction {
            if !(0.0..=1.0).contains(&f) {
                return fail(format!(
                    "similar fraction {f}, expected a number from 0 to 1"
                ));
            }
            let first = dataset.labels.labels[0];
            if f < 1.0 && dataset.labels.labels.iter().all(|&l| l == first) {
                return fail(
                    "every image has the same label, expected at least two labels for \
                     dissimilar pairs"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// Draws `dataset.len() * pairs_per_image` pairs; pair k becomes record k.
///
/// Options that [`PairOptions::check`] rejects are not an error here: an empty dataset or 0
/// pairs per image give no pairs, the fraction is clamped to 0..=1, and where no dissimilar
/// pair exists the "dissimilar" draws are uniform (and labelled by what they are).
pub fn generate_pairs(dataset: &Dataset, opts: &PairOptions) -> Vec<Pair> {
    let n = dataset.len();
    let total = n.saturating_mul(opts.pairs_per_image);
    if total == 0 {
        return Vec::new();
    }
    let labels = &dataset.labels.labels;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    match opts.similar_fraction {
        None => (0..total)
            .map(|_| {
                let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
                Pair {
                    first: i,
                    second: j,
                    similar: labels[i] == labels[j],
                }
            })
            .collect(),
        Some(f) => balanced_pairs(labels, total, f.clamp(0.0, 1.0), &mut rng),
    }
}

/// Exactly round(fraction * total) similar pairs, in a seeded random order.
fn balanced_pairs(labels: &[u8], total: usize, fraction: f64, rng: &mut ChaCha8Rng) -> Vec<Pair> {
    let n_similar = (fraction * total as f64).round() as usize;
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (i, &l) in labels.iter().enumerate() {
        by_label[l as usize].push(i);
    }
    let one_class = by_label.iter().filter(|c| !c.is_empty()).count() < 2;
    let mut similar = vec![true; n_similar];
    similar.resize(total, false);
    similar.shuffle(rng);
    let n = labels.len();
    similar
        .into_iter()
        .map(|want_similar| {
            let i = rng.random_range(0..n);
            let j = if want_similar {
                let class = &by_label[labels[i] as usize];
                class[rng.random_range(0..class.len())]
            } else if one_class {
                rng.random_range(0..n)
            } else {
                // Rejection sampling: with 10 balanced classes this takes ~1.1 draws.
                loop {
                    let j = rng.random_range(0..n);
                    if labels[j] != labels[i] {
                        break j;
                    }
                }
            };
            Pair {
                first: i,
                second: j,
                similar: labels[i] == labels[j],
            }
        })
        .collect()
}

/// The Caffe record of a pair: channels 2 (image `first` then image `second`), label 1 when
/// similar, else 0.
pub fn pair_datum(dataset: &Dataset, pair: &Pair) -> Datum {
    let images = &dataset.images;
    let mut data = Vec::with_capacity(2 * images.image_size());
    data.extend_from_slice(images.image(pair.first));
    data.extend_from_slice(images.image(pair.second));
    Datum {
        channels: Some(2),
        height: Some(images.rows as i32),
        width: Some(images.cols as i32),
        data: Some(data),
        label: Some(i32::from(pair.similar)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{IdxImages, IdxLabels};
    use crate::testdata::sample_test_set;
    use prost::Message;

    fn similar_fraction(pairs: &[Pair]) -> f64 {
        pairs.iter().filter(|p| p.similar).count() as f64 / pairs.len() as f64
    }

    #[test]
    fn same_seed_same_pairs_other_seed_other_pairs() {
        let data = sample_test_set();
        let opts = PairOptions::default();
        let a = generate_pairs(&data, &opts);
        assert_eq!(a, generate_pairs(&data, &opts));
        let other = PairOptions { seed: 2, ..opts };
        assert_ne!(a, generate_pairs(&data, &other));
    }

    #[test]
    fn caffe_default_is_about_ten_percent_similar() {
        let data = sample_test_set();
        let pairs = generate_pairs(&data, &PairOptions::default());
        assert_eq!(pairs.len(), 2000);
        let labels = &data.labels.labels;
        assert!(
            pairs
                .iter()
                .all(|p| p.similar == (labels[p.first] == labels[p.second]))
        );
        let f = similar_fraction(&pairs);
        assert!((0.07..0.13).contains(&f), "similar fraction {f}");
    }

    #[test]
    fn balanced_pairs_hit_the_fraction_with_right_labels() {
        let data = sample_test_set();
        let opts = PairOptions {
            pairs_per_image: 3,
            similar_fraction: Some(0.5),
            ..Default::default()
        };
        let pairs = generate_pairs(&data, &opts);
        assert_eq!(pairs.len(), 6000);
        assert_eq!(similar_fraction(&pairs), 0.5);
        let labels = &data.labels.labels;
        assert!(
            pairs
                .iter()
                .all(|p| p.similar == (labels[p.first] == labels[p.second]))
        );
        // Every image is reachable as a first element, not just a few.
        let distinct: std::collections::HashSet<_> = pairs.iter().map(|p| p.first).collect();
        assert!(
            distinct.len() > 1500,
            "{} distinct first images",
            distinct.len()
        );
    }

    #[test]
    fn bad_options_are_errors() {
        let data = sample_test_set();
        let check = |opts: PairOptions, expect: &str| {
            assert_eq!(opts.check(&data).unwrap_err().to_string(), expect);
        };
        check(
            PairOptions {
                similar_fraction: Some(1.5),
                ..Default::default()
            },
            "pair options: similar fraction 1.5, expected a number from 0 to 1",
        );
        check(
            PairOptions {
                pairs_per_image: 0,
                ..Default::default()
            },
            "pair options: pairs per image is 0, expected at least 1",
        );
        let one_class = Dataset {
            images: IdxImages {
                count: 2,
                rows: 1,
                cols: 1,
                pixels: vec![1, 2],
            },
            labels: IdxLabels { labels: vec![3, 3] },
        };
        let opts = PairOptions {
            similar_fraction: Some(0.5),
            ..Default::default()
        };
        assert!(opts.check(&one_class).is_err());
        // Unchecked, it still terminates and labels pairs by what they are.
        let pairs = generate_pairs(&one_class, &opts);
        assert_eq!(pairs.len(), 2);
        assert!(pairs.iter().all(|p| p.similar));
        assert!(PairOptions::default().check(&data).is_ok());
    }

    #[test]
    fn open_set_splits_keep_disjoint_classes() {
        let data = sample_test_set();
        let (train, test) = ClassFilter::open_set(&[0, 1, 2, 3, 4]);
        let seen = data.with_classes(&train);
        let unseen = data.with_classes(&test);
        assert_eq!(seen.len() + unseen.len(), data.len());
        assert!(seen.labels.labels.iter().all(|&l| l < 5));
        assert!(unseen.labels.labels.iter().all(|&l| l >= 5));
        // The kept images are the originals, in order.
        let first_unseen = data.labels.labels.iter().position(|&l| l >= 5).unwrap();
        assert_eq!(unseen.images.image(0), data.images.image(first_unseen));
        let opts = PairOptions {
            classes: test.clone(),
            ..Default::default()
        };
        let pairs = generate_pairs(&unseen, &opts);
        assert_eq!(pairs.len(), unseen.len());
        let none = data.with_classes(&ClassFilter::Only(vec![42]));
        assert_eq!(
            PairOptions {
                classes: ClassFilter::Only(vec![42]),
                ..Default::default()
            }
            .check(&none)
            .unwrap_err()
            .to_string(),
            "pair options: no image of classes [42] in the dataset, expected at least one"
        );
        assert_eq!(test.to_string(), "every class but [0, 1, 2, 3, 4]");
    }

    /// The record bytes, written by hand from caffe.proto's Datum and the protobuf wire format.
    #[test]
    fn pair_datum_bytes_match_the_spec() {
        let data = Dataset {
            images: IdxImages {
                count: 2,
                rows: 1,
                cols: 2,
                pixels: vec![10, 20, 30, 40],
            },
            labels: IdxLabels { labels: vec![7, 7] },
        };
        let pair = Pair {
            first: 1,
            second: 0,
            similar: true,
        };
        let expected = [
            0x08, 0x02, // field 1 channels = 2
            0x10, 0x01, // field 2 height = 1
            0x18, 0x02, // field 3 width = 2
            0x22, 0x04, 30, 40, 10, 20, // field 4 data: image 1 then image 0
            0x28, 0x01, // field 5 label = 1 (similar)
        ];
        assert_eq!(pair_datum(&data, &pair).encode_to_vec(), expected);
        let image = [
            0x08, 0x01, 0x10, 0x01, 0x18, 0x02, 0x22, 0x02, 10, 20, 0x28, 0x07,
        ];
        assert_eq!(data.image_datum(0).encode_to_vec(), image);
    }
}
