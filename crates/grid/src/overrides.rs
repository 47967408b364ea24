//! A cell's parameters written into Caffe's messages: the solver (rates, lr policy, seed, test
//! size, snapshot prefix) and the nets (contrastive margin, feature size, batch, pair sources).

use std::path::Path;

use siamese_proto::{LayerParameter, NetParameter, Phase, SolverParameter};

use crate::cells::CellParams;

/// Layers whose `num_output` is the embedding size: the two towers' last InnerProduct.
const FEATURE_LAYERS: &[&str] = &["feat", "feat_p"];

/// A net the cell's parameters cannot be written into.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OverrideError {
    #[error("net \"{net}\": no Data layer to feed the pair LevelDBs to")]
    NoDataLayer { net: String },
    #[error(
        "net \"{net}\": the grid sets margin or legacy_version, but the net has no \
         ContrastiveLoss layer"
    )]
    NoContrastiveLoss { net: String },
    #[error(
        "net \"{net}\": the grid sets feature_dim, but the net has no InnerProduct layer named {}",
        FEATURE_LAYERS.join(" or ")
    )]
    NoFeatureLayer { net: String },
}

/// How the cell's solver runs inside the trainer's own loop (which tests, embeds and
/// snapshots itself, so the solver's own cadence is switched off).
#[derive(Debug, Clone, PartialEq)]
pub struct SolverSetup {
    pub iterations: u32,
    /// Batches per test pass (one per test net).
    pub test_iter: i32,
    /// `<cell folder>/<name>`: snapshots are `<prefix>_iter_<N>.caffemodel/.solverstate`.
    pub snapshot_prefix: String,
}

/// The base solver with the cell's settings, training `net` (given inline, replacing whatever
/// net the solver names).
pub fn solver_param(
    base: SolverParameter,
    params: &CellParams,
    net: NetParameter,
    setup: &SolverSetup,
) -> SolverParameter {
    let as_f32 = |v: f64| v as f32;
    let as_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut p = SolverParameter {
        net: None,
        train_net: None,
        test_net: Vec::new(),
        train_net_param: None,
        test_net_param: Vec::new(),
        net_param: Some(net),
        test_iter: vec![setup.test_iter],
        test_interval: Some(0),
        test_initialization: Some(false),
        max_iter: Some(as_i32(setup.iterations)),
        display: Some(0),
        snapshot: Some(0),
        snapshot_after_train: Some(false),
        snapshot_prefix: Some(setup.snapshot_prefix.clone()),
        random_seed: Some(i64::try_from(params.seed).unwrap_or(i64::MAX)),
        ..base
    };
    p.base_lr = params.base_lr.map(as_f32).or(p.base_lr);
    p.momentum = params.momentum.map(as_f32).or(p.momentum);
    p.weight_decay = params.weight_decay.map(as_f32).or(p.weight_decay);
    p.lr_policy = params.lr_policy.clone().or(p.lr_policy);
    p.gamma = params.gamma.map(as_f32).or(p.gamma);
    p.power = params.power.map(as_f32).or(p.power);
    p.stepsize = params.stepsize.map(as_i32).or(p.stepsize);
    p
}

/// The train/test net with the cell's margin, legacy_version, feature size and train batch
/// size, its TRAIN Data layers reading `train_db` and the others `test_db`.
pub fn train_net(
    mut net: NetParameter,
    params: &CellParams,
    train_db: &Path,
    test_db: &Path,
) -> Result<NetParameter, OverrideError> {
    let name = net.name().to_string();
    let mut losses = 0;
    let mut data = 0;
    for layer in &mut net.layer {
        match layer.r#type() {
            "ContrastiveLoss" => {
                losses += 1;
                let loss = layer.contrastive_loss_param.get_or_insert_default();
                loss.margin = params.margin.map(|m| m as f32).or(loss.margin);
                loss.legacy_version = params.legacy_version.or(loss.legacy_version);
            }
            "Data" => {
                data += 1;
                let train = in_phase(layer, Phase::Train);
                let d = layer.data_param.get_or_insert_default();
                let db = if train { train_db } else { test_db };
                d.source = Some(db.display().to_string());
                if train {
                    d.batch_size = params.batch_size.or(d.batch_size);
                }
            }
            _ => {}
        }
    }
    if data == 0 {
        return Err(OverrideError::NoDataLayer { net: name });
    }
    let wants_loss = params.margin.is_some() || params.legacy_version.is_some();
    if wants_loss && losses == 0 {
        return Err(OverrideError::NoContrastiveLoss { net: name });
    }
    set_feature_dim(&mut net, params.feature_dim)?;
    Ok(net)
}

/// The deploy net with the cell's feature size.
pub fn deploy_net(
    mut net: NetParameter,
    params: &CellParams,
) -> Result<NetParameter, OverrideError> {
    set_feature_dim(&mut net, params.feature_dim)?;
    Ok(net)
}

/// Sets `num_output` of the [`FEATURE_LAYERS`] that `net` has (at least one is needed).
fn set_feature_dim(net: &mut NetParameter, dim: Option<u32>) -> Result<(), OverrideError> {
    let Some(dim) = dim else { return Ok(()) };
    let mut found = 0;
    for layer in &mut net.layer {
        if layer.r#type() == "InnerProduct" && FEATURE_LAYERS.contains(&layer.name()) {
            layer.inner_product_param.get_or_insert_default().num_output = Some(dim);
            found += 1;
        }
    }
    if found == 0 {
        return Err(OverrideError::NoFeatureLayer {
            net: net.name().to_string(),
        });
    }
    Ok(())
}

/// Whether `layer` is part of the net in `phase` (Caffe's include/exclude rules by phase).
fn in_phase(layer: &LayerParameter, phase: Phase) -> bool {
    let phase = phase as i32;
    if let Some(p) = layer.phase {
        return p == phase;
    }
    if !layer.include.is_empty() {
        return layer
            .include
            .iter()
            .any(|r| r.phase.is_none_or(|p| p == phase));
    }
    !layer.exclude.iter().any(|r| r.phase == Some(phase))
}

#[cfg(test)]
mod tests {
    use super::*;

    use siamese_testkit::repo;

    fn siamese_net() -> NetParameter {
        let path = repo().join("experiments/siamese/mnist_siamese_train_test.prototxt");
        siamese_net::load_net(&path).unwrap()
    }

    fn layer<'a>(net: &'a NetParameter, name: &str, phase: Phase) -> &'a LayerParameter {
        net.layer
            .iter()
            .find(|l| l.name() == name && in_phase(l, phase))
            .unwrap_or_else(|| panic!("no layer {name}"))
    }

    #[test]
    fn the_cell_changes_margin_features_batch_and_sources() {
        let params = CellParams {
            margin: Some(2.5),
            legacy_version: Some(true),
            feature_dim: Some(8),
            batch_size: Some(32),
            ..Default::default()
        };
        let net = train_net(
            siamese_net(),
            &params,
            Path::new("/p/train_db"),
            Path::new("/p/test_db"),
        )
        .unwrap();
        let loss = layer(&net, "loss", Phase::Train)
            .contrastive_loss_param
            .unwrap();
        assert_eq!((loss.margin, loss.legacy_version), (Some(2.5), Some(true)));
        for name in ["feat", "feat_p"] {
            let ip = layer(&net, name, Phase::Train)
                .inner_product_param
                .clone()
                .unwrap();
            assert_eq!(ip.num_output, Some(8), "{name}");
        }
        let train = layer(&net, "pair_data", Phase::Train)
            .data_param
            .clone()
            .unwrap();
        let test = layer(&net, "pair_data", Phase::Test)
            .data_param
            .clone()
            .unwrap();
        assert_eq!((train.source(), train.batch_size()), ("/p/train_db", 32));
        assert_eq!((test.source(), test.batch_size()), ("/p/test_db", 100));
    }

    #[test]
    fn unset_parameters_keep_the_prototxt_values() {
        let net = train_net(
            siamese_net(),
            &CellParams::default(),
            Path::new("a"),
            Path::new("b"),
        )
        .unwrap();
        let loss = layer(&net, "loss", Phase::Train)
            .contrastive_loss_param
            .unwrap();
        assert_eq!((loss.margin(), loss.legacy_version()), (1.0, false));
        let feat = layer(&net, "feat", Phase::Train)
            .inner_product_param
            .clone()
            .unwrap();
        assert_eq!(feat.num_output, Some(2));
    }

    #[test]
    fn a_net_without_the_layers_a_cell_changes_is_an_error() {
        let mut net = siamese_net();
        net.layer
            .retain(|l| !matches!(l.name(), "loss" | "feat" | "feat_p"));
        let margin = CellParams {
            margin: Some(2.0),
            ..Default::default()
        };
        let err = train_net(net.clone(), &margin, Path::new("a"), Path::new("b")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "net \"mnist_siamese_train_test\": the grid sets margin or legacy_version, but the \
             net has no ContrastiveLoss layer"
        );
        let dim = CellParams {
            feature_dim: Some(3),
            ..Default::default()
        };
        let err = deploy_net(net, &dim).unwrap_err();
        assert_eq!(
            err.to_string(),
            "net \"mnist_siamese_train_test\": the grid sets feature_dim, but the net has no \
             InnerProduct layer named feat or feat_p"
        );
    }

    #[test]
    fn the_solver_gets_the_cell_settings_and_the_trainers_cadence() {
        let base = siamese_net::load_solver(
            &repo().join("experiments/siamese/mnist_siamese_solver.prototxt"),
        )
        .unwrap();
        let params = CellParams {
            base_lr: Some(0.03),
            momentum: Some(0.5),
            weight_decay: Some(0.001),
            lr_policy: Some("step".into()),
            gamma: Some(0.5),
            stepsize: Some(100),
            seed: 7,
            ..Default::default()
        };
        let setup = SolverSetup {
            iterations: 300,
            test_iter: 20,
            snapshot_prefix: "/runs/x/cell/mnist_siamese".into(),
        };
        let p = solver_param(base, &params, siamese_net(), &setup);
        assert_eq!(p.net, None);
        assert!(p.net_param.is_some());
        assert_eq!(
            (p.base_lr(), p.momentum(), p.weight_decay(), p.lr_policy()),
            (0.03, 0.5, 0.001, "step")
        );
        assert_eq!((p.gamma(), p.stepsize(), p.power()), (0.5, 100, 0.75));
        assert_eq!((p.random_seed(), p.max_iter()), (7, 300));
        assert_eq!(p.test_iter, [20]);
        assert_eq!((p.test_interval(), p.snapshot(), p.display()), (0, 0, 0));
        assert_eq!(p.snapshot_prefix(), "/runs/x/cell/mnist_siamese");
    }
}
