//! Caffe's upgrade rules (upgrade_proto.cpp), rewritten: legacy data transformation fields,
//! the 2014 `layers { type: CONVOLUTION }` syntax and net-level `input` fields become V2 layers.

use siamese_proto::solver_parameter::SolverType;
use siamese_proto::v1_layer_parameter::{DimCheckMode as V1DimCheckMode, LayerType};
use siamese_proto::{
    BlobShape, InputParameter, LayerParameter, NetParameter, ParamSpec, SolverParameter,
    TransformationParameter, V1LayerParameter, param_spec::DimCheckMode,
};

use crate::NetError;

/// Brings a net to the V2 form: V1 data-layer transformation fields moved to
/// `transform_param`, V1 `layers` turned into `layer`, net-level inputs into an Input layer.
/// Already-current nets come back unchanged.
pub fn upgrade_net(mut net: NetParameter) -> Result<NetParameter, NetError> {
    if !net.layers.is_empty() {
        if !net.layer.is_empty() {
            return Err(NetError::Upgrade(
                "the net uses both `layer` (current syntax) and `layers` (V1 syntax); use one"
                    .into(),
            ));
        }
        for v1 in &mut net.layers {
            upgrade_v1_data_transformation(v1);
        }
        net.layer = std::mem::take(&mut net.layers)
            .into_iter()
            .enumerate()
            .map(|(i, v1)| upgrade_v1_layer(v1, i))
            .collect::<Result<_, _>>()?;
    }
    upgrade_net_input(&mut net)?;
    Ok(net)
}

/// Caffe's UpgradeNetDataTransformation for one V1 layer: a DATA layer's `data_param.scale`,
/// `mean_file`, `crop_size` and `mirror` move to `transform_param`.
fn upgrade_v1_data_transformation(v1: &mut V1LayerParameter) {
    if v1.r#type() != LayerType::Data {
        return;
    }
    let Some(data) = v1.data_param.as_mut() else {
        return;
    };
    let t = v1
        .transform_param
        .get_or_insert_with(TransformationParameter::default);
    if let Some(scale) = data.scale.take() {
        t.scale = Some(scale);
    }
    if let Some(mean_file) = data.mean_file.take() {
        t.mean_file = Some(mean_file);
    }
    if let Some(crop) = data.crop_size.take() {
        t.crop_size = Some(crop);
    }
    if let Some(mirror) = data.mirror.take() {
        t.mirror = Some(mirror);
    }
}

/// Caffe's UpgradeV1LayerParameter: type enum to type name, `param` names, `blob_share_mode`,
/// `blobs_lr` and `weight_decay` to one `ParamSpec` per parameter blob.
fn upgrade_v1_layer(v1: V1LayerParameter, index: usize) -> Result<LayerParameter, NetError> {
    let kind = match v1.r#type {
        None => None,
        Some(raw) => {
            let t = LayerType::try_from(raw).map_err(|_| {
                NetError::Upgrade(format!(
                    "V1 layer #{index} ('{}'): unknown layer type number {raw}",
                    v1.name()
                ))
            })?;
            Some(v1_type_name(t).to_string())
        }
    };
    let mut param: Vec<ParamSpec> = Vec::new();
    fn slot(param: &mut Vec<ParamSpec>, i: usize) -> &mut ParamSpec {
        if param.len() <= i {
            param.resize_with(i + 1, ParamSpec::default);
        }
        &mut param[i]
    }
    for (i, name) in v1.param.iter().enumerate() {
        slot(&mut param, i).name = Some(name.clone());
    }
    for (i, &mode) in v1.blob_share_mode.iter().enumerate() {
        let mode = match V1DimCheckMode::try_from(mode) {
            Ok(V1DimCheckMode::Permissive) => DimCheckMode::Permissive,
            _ => DimCheckMode::Strict,
        };
        slot(&mut param, i).set_share_mode(mode);
    }
    for (i, &lr) in v1.blobs_lr.iter().enumerate() {
        slot(&mut param, i).lr_mult = Some(lr);
    }
    for (i, &decay) in v1.weight_decay.iter().enumerate() {
        slot(&mut param, i).decay_mult = Some(decay);
    }
    Ok(LayerParameter {
        name: v1.name,
        r#type: kind,
        bottom: v1.bottom,
        top: v1.top,
        loss_weight: v1.loss_weight,
        param,
        blobs: v1.blobs,
        include: v1.include,
        exclude: v1.exclude,
        transform_param: v1.transform_param,
        loss_param: v1.loss_param,
        accuracy_param: v1.accuracy_param,
        contrastive_loss_param: v1.contrastive_loss_param,
        convolution_param: v1.convolution_param,
        data_param: v1.data_param,
        dropout_param: v1.dropout_param,
        inner_product_param: v1.inner_product_param,
        pooling_param: v1.pooling_param,
        relu_param: v1.relu_param,
        softmax_param: v1.softmax_param,
        slice_param: v1.slice_param,
        ..Default::default()
    })
}

/// Caffe's UpgradeV1LayerType: the V1 enum to the registered layer type name.
pub fn v1_type_name(t: LayerType) -> &'static str {
    use LayerType::*;
    match t {
        None => "",
        Absval => "AbsVal",
        Accuracy => "Accuracy",
        Argmax => "ArgMax",
        Bnll => "BNLL",
        Concat => "Concat",
        ContrastiveLoss => "ContrastiveLoss",
        Convolution => "Convolution",
        Deconvolution => "Deconvolution",
        Data => "Data",
        Dropout => "Dropout",
        DummyData => "DummyData",
        EuclideanLoss => "EuclideanLoss",
        Eltwise => "Eltwise",
        Exp => "Exp",
        Flatten => "Flatten",
        Hdf5Data => "HDF5Data",
        Hdf5Output => "HDF5Output",
        HingeLoss => "HingeLoss",
        Im2col => "Im2col",
        ImageData => "ImageData",
        InfogainLoss => "InfogainLoss",
        InnerProduct => "InnerProduct",
        Lrn => "LRN",
        MemoryData => "MemoryData",
        MultinomialLogisticLoss => "MultinomialLogisticLoss",
        Mvn => "MVN",
        Pooling => "Pooling",
        Power => "Power",
        Relu => "ReLU",
        Sigmoid => "Sigmoid",
        SigmoidCrossEntropyLoss => "SigmoidCrossEntropyLoss",
        Silence => "Silence",
        Softmax => "Softmax",
        SoftmaxLoss => "SoftmaxWithLoss",
        Split => "Split",
        Slice => "Slice",
        Tanh => "TanH",
        WindowData => "WindowData",
        Threshold => "Threshold",
    }
}

/// Caffe's UpgradeNetInput: net-level `input` + `input_shape`/`input_dim` become an Input layer
/// named "input" placed first.
fn upgrade_net_input(net: &mut NetParameter) -> Result<(), NetError> {
    let has_shape = !net.input_shape.is_empty();
    let has_dim = !net.input_dim.is_empty();
    if has_shape || has_dim {
        let mut shapes = Vec::with_capacity(net.input.len());
        for (i, input) in net.input.iter().enumerate() {
            let shape = if has_shape {
                net.input_shape.get(i).cloned().ok_or_else(|| {
                    NetError::Upgrade(format!(
                        "input '{input}' has no input_shape ({} inputs, {} input_shape)",
                        net.input.len(),
                        net.input_shape.len()
                    ))
                })?
            } else {
                let dims = net.input_dim.get(i * 4..i * 4 + 4).ok_or_else(|| {
                    NetError::Upgrade(format!(
                        "input '{input}' needs 4 input_dim values ({} inputs, {} input_dim)",
                        net.input.len(),
                        net.input_dim.len()
                    ))
                })?;
                BlobShape {
                    dim: dims.iter().map(|&d| i64::from(d)).collect(),
                }
            };
            shapes.push(shape);
        }
        let layer = LayerParameter {
            name: Some("input".into()),
            r#type: Some("Input".into()),
            top: net.input.clone(),
            input_param: Some(InputParameter { shape: shapes }),
            ..Default::default()
        };
        net.layer.insert(0, layer);
    }
    net.input.clear();
    net.input_shape.clear();
    net.input_dim.clear();
    Ok(())
}

/// Caffe's UpgradeSolverAsNeeded: the `solver_type` enum becomes the `type` string; embedded
/// nets are upgraded too.
pub fn upgrade_solver(mut s: SolverParameter) -> Result<SolverParameter, NetError> {
    if let Some(raw) = s.solver_type.take() {
        let name = match SolverType::try_from(raw) {
            Ok(SolverType::Sgd) => "SGD",
            Ok(SolverType::Nesterov) => "Nesterov",
            Ok(SolverType::Adagrad) => "AdaGrad",
            Ok(SolverType::Rmsprop) => "RMSProp",
            Ok(SolverType::Adadelta) => "AdaDelta",
            Ok(SolverType::Adam) => "Adam",
            Err(_) => {
                return Err(NetError::Upgrade(format!(
                    "unknown solver_type number {raw}"
                )));
            }
        };
        if s.r#type.as_deref().is_some_and(|t| t != name) {
            return Err(NetError::Upgrade(format!(
                "solver_type {name} and type \"{}\" disagree; give only `type`",
                s.r#type()
            )));
        }
        s.r#type = Some(name.to_string());
    }
    for net in s
        .net_param
        .iter_mut()
        .chain(s.train_net_param.iter_mut())
        .chain(s.test_net_param.iter_mut())
    {
        *net = upgrade_net(std::mem::take(net))?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_net_text;

    fn one(text: &str) -> LayerParameter {
        let net = parse_net_text(text, "t").unwrap();
        assert_eq!(net.layer.len(), 1, "{net:?}");
        assert!(net.layers.is_empty());
        net.layer.into_iter().next().unwrap()
    }

    #[test]
    fn v1_type_enum_becomes_type_name() {
        for (v1, v2) in [
            ("CONVOLUTION", "Convolution"),
            ("INNER_PRODUCT", "InnerProduct"),
            ("RELU", "ReLU"),
            ("SOFTMAX_LOSS", "SoftmaxWithLoss"),
            ("CONTRASTIVE_LOSS", "ContrastiveLoss"),
            ("TANH", "TanH"),
            ("HDF5_DATA", "HDF5Data"),
        ] {
            let l = one(&format!("layers {{ name: \"x\" type: {v1} }}"));
            assert_eq!(l.r#type(), v2);
        }
    }

    #[test]
    fn blobs_lr_becomes_lr_mult() {
        let l = one("layers { type: CONVOLUTION blobs_lr: 1 blobs_lr: 2 }");
        let lr: Vec<_> = l.param.iter().map(|p| p.lr_mult).collect();
        assert_eq!(lr, [Some(1.0), Some(2.0)]);
        assert!(
            l.param
                .iter()
                .all(|p| p.name.is_none() && p.decay_mult.is_none())
        );
    }

    #[test]
    fn weight_decay_becomes_decay_mult() {
        let l = one("layers { type: CONVOLUTION weight_decay: 1 weight_decay: 0 }");
        let d: Vec<_> = l.param.iter().map(|p| p.decay_mult).collect();
        assert_eq!(d, [Some(1.0), Some(0.0)]);
    }

    #[test]
    fn param_names_become_param_specs() {
        let l = one("layers { type: CONVOLUTION param: \"w\" param: \"b\" blobs_lr: 3 }");
        assert_eq!(l.param.len(), 2);
        assert_eq!(l.param[0].name(), "w");
        assert_eq!(l.param[0].lr_mult, Some(3.0));
        assert_eq!(l.param[1].name(), "b");
        assert_eq!(l.param[1].lr_mult, None);
    }

    #[test]
    fn blob_share_mode_becomes_share_mode() {
        let l = one("layers { type: CONVOLUTION param: \"w\" blob_share_mode: PERMISSIVE }");
        assert_eq!(l.param[0].share_mode(), DimCheckMode::Permissive);
    }

    #[test]
    fn data_param_scale_moves_to_transform_param() {
        let l = one(
            "layers { type: DATA data_param { source: \"s\" scale: 0.5 batch_size: 4 mirror: true } }",
        );
        let d = l.data_param.as_ref().unwrap();
        assert!(d.scale.is_none() && d.mirror.is_none());
        assert_eq!(d.source(), "s");
        let t = l.transform_param.as_ref().unwrap();
        assert_eq!(t.scale(), 0.5);
        assert!(t.mirror());
    }

    #[test]
    fn include_rules_are_kept() {
        let l = one("layers { type: DATA include: { phase: TEST } }");
        assert_eq!(l.include[0].phase(), siamese_proto::Phase::Test);
    }

    #[test]
    fn net_inputs_become_an_input_layer_first() {
        let net = parse_net_text(
            "input: \"data\" input_dim: 10 input_dim: 1 input_dim: 28 input_dim: 28\n\
             layers { name: \"r\" type: RELU bottom: \"data\" top: \"data\" }",
            "t",
        )
        .unwrap();
        assert_eq!(net.layer[0].name(), "input");
        assert_eq!(net.layer[0].r#type(), "Input");
        assert_eq!(net.layer[0].top, ["data"]);
        assert_eq!(
            net.layer[0].input_param.as_ref().unwrap().shape[0].dim,
            [10, 1, 28, 28]
        );
        assert_eq!(net.layer[1].name(), "r");
        assert!(net.input.is_empty() && net.input_dim.is_empty());
    }

    #[test]
    fn short_input_dim_is_an_error() {
        let e = parse_net_text("input: \"data\" input_dim: 10 input_dim: 1", "f").unwrap_err();
        assert!(e.to_string().contains("4 input_dim"), "{e}");
    }

    #[test]
    fn mixed_syntaxes_are_an_error() {
        let e = parse_net_text("layer { name: \"a\" } layers { name: \"b\" }", "f").unwrap_err();
        assert!(e.to_string().starts_with("f: the net uses both"), "{e}");
    }

    #[test]
    fn current_syntax_is_unchanged() {
        let text = "layer { name: \"c\" type: \"Convolution\" param { name: \"w\" lr_mult: 1 } }";
        let net = parse_net_text(text, "t").unwrap();
        assert_eq!(net.layer[0].param[0].name(), "w");
        assert_eq!(net.layer[0].r#type(), "Convolution");
    }
}
