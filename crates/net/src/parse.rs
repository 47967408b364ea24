//! Protobuf text format (prototxt) into Caffe's messages, via prost-reflect over the
//! descriptor set of `siamese-proto`; errors carry `file:line:col` and the offending line.

use std::sync::OnceLock;

use miette::Diagnostic;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage};
use siamese_proto::{NetParameter, SolverParameter};

use crate::NetError;
use crate::upgrade::{upgrade_net, upgrade_solver};

/// Parses a net definition (either syntax) and upgrades it to the V2 `layer` form.
/// `origin` names the text in error messages (usually the file path).
pub fn parse_net_text(text: &str, origin: &str) -> Result<NetParameter, NetError> {
    let net: NetParameter = parse_message(text, origin, "caffe.NetParameter")?;
    upgrade_net(net).map_err(|e| prefix(origin, e))
}

/// Parses a solver definition and upgrades it (old `solver_type` enum, embedded V1 nets).
pub fn parse_solver_text(text: &str, origin: &str) -> Result<SolverParameter, NetError> {
    let solver: SolverParameter = parse_message(text, origin, "caffe.SolverParameter")?;
    upgrade_solver(solver).map_err(|e| prefix(origin, e))
}

fn prefix(origin: &str, e: NetError) -> NetError {
    match e {
        NetError::Upgrade(m) => NetError::Upgrade(format!("{origin}: {m}")),
        NetError::Invalid(m) => NetError::Invalid(format!("{origin}: {m}")),
        other => other,
    }
}

fn pool() -> Result<&'static DescriptorPool, NetError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(siamese_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| NetError::Invalid(format!("siamese-proto's descriptor set is invalid: {e}")))
}

fn parse_message<T: prost::Message + Default>(
    text: &str,
    origin: &str,
    message: &str,
) -> Result<T, NetError> {
    let desc = pool()?
        .get_message_by_name(message)
        .ok_or_else(|| NetError::Invalid(format!("message {message} missing from caffe.proto")))?;
    let dynamic = DynamicMessage::parse_text_format(desc, text).map_err(|e| {
        let offset = e
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|l| (l.offset(), l.len()))
            .unwrap_or((text.len(), 0));
        syntax_error(text, origin, offset, e.to_string())
    })?;
    dynamic.transcode_to::<T>().map_err(|e| {
        NetError::Invalid(format!(
            "{origin}: cannot convert {} to caffe types: {e}",
            dynamic.descriptor().name()
        ))
    })
}

/// Builds a `Syntax` error at byte `offset` (length `len`) of `text`; line and column are 1-based,
/// the column counts characters.
pub(crate) fn syntax_error(
    text: &str,
    origin: &str,
    (offset, len): (usize, usize),
    message: String,
) -> NetError {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line_text = text[line_start..line_end].trim_end_matches('\r');
    let line = text[..offset].matches('\n').count() + 1;
    let col = text[line_start..offset].chars().count() + 1;
    let caret_len = text[offset..(offset + len).min(line_end).max(offset)]
        .chars()
        .count()
        .max(1);
    let gutter = line.to_string().len();
    let indent: String = text[line_start..offset]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let excerpt = format!(
        "{line:>gutter$} | {line_text}\n{:>gutter$} | {indent}{}",
        "",
        "^".repeat(caret_len)
    );
    NetError::Syntax {
        origin: origin.to_string(),
        line,
        col,
        message,
        excerpt,
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(text: &str) -> (usize, usize, String, String) {
        match parse_net_text(text, "t.prototxt") {
            Err(NetError::Syntax {
                line,
                col,
                message,
                excerpt,
                ..
            }) => (line, col, message, excerpt),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn reads_comments_nesting_enums_and_numbers() {
        let text = r#"
            # a comment
            name: "n"  # trailing comment
            layer { name: "p" type: "Pooling" top: "a" top: 'b'
                    pooling_param: { pool: AVE kernel_size: 0x2 stride: 2 } }
            layer { name: "c" type: "Convolution" param { lr_mult: 1 } param: { lr_mult: 2.5e0 decay_mult: 0 }
                    include { phase: TRAIN } convolution_param { kernel_size: 3 kernel_size: 5 } }
        "#;
        let net = parse_net_text(text, "t").unwrap();
        assert_eq!(net.name(), "n");
        assert_eq!(net.layer.len(), 2);
        let p = net.layer[0].pooling_param.as_ref().unwrap();
        assert_eq!(p.pool(), siamese_proto::pooling_parameter::PoolMethod::Ave);
        assert_eq!(p.kernel_size(), 2);
        assert_eq!(net.layer[0].top, ["a", "b"]);
        let c = &net.layer[1];
        assert_eq!(c.param[1].lr_mult(), 2.5);
        assert_eq!(c.param[1].decay_mult(), 0.0);
        assert_eq!(c.include[0].phase(), siamese_proto::Phase::Train);
        assert_eq!(c.convolution_param.as_ref().unwrap().kernel_size, [3, 5]);
    }

    #[test]
    fn syntax_error_has_line_col_and_caret() {
        let (line, col, message, excerpt) = syntax("name: \"x\"\nlayer {\n  name: \"a\" }\n  }\n");
        assert_eq!((line, col), (4, 3), "{message}");
        assert_eq!(excerpt, "4 |   }\n  |   ^");
        let e = parse_net_text("layer {\n  name: \"a\"\n", "f.prototxt").unwrap_err();
        assert!(e.to_string().starts_with("f.prototxt:3:1: expected"), "{e}");
    }

    #[test]
    fn unknown_field_names_field_and_place() {
        let (line, col, message, excerpt) = syntax("layer {\n  name: \"a\"\n  kernel_sise: 5\n}\n");
        assert_eq!((line, col), (3, 3));
        assert!(message.contains("kernel_sise"), "{message}");
        assert!(message.contains("caffe.LayerParameter"), "{message}");
        assert_eq!(excerpt, "3 |   kernel_sise: 5\n  |   ^^^^^^^^^^^");
    }

    #[test]
    fn unknown_enum_value_names_value_and_place() {
        let (line, col, message, _) = syntax("layer { pooling_param {\n pool: MAXIMUM } }");
        assert_eq!((line, col), (2, 8));
        assert!(
            message.contains("MAXIMUM") && message.contains("PoolMethod"),
            "{message}"
        );
    }

    #[test]
    fn out_of_range_number_is_an_error() {
        let (line, _, message, _) = syntax("layer {\n convolution_param { num_output: -3 } }");
        assert_eq!(line, 2);
        assert!(
            message.contains("-3")
                || message.contains("out of range")
                || message.contains("expected"),
            "{message}"
        );
    }

    #[test]
    fn solver_parses_and_upgrades_solver_type() {
        let s = parse_solver_text(
            "base_lr: 0.01 lr_policy: \"inv\" solver_type: NESTEROV",
            "s",
        )
        .unwrap();
        assert_eq!(s.base_lr(), 0.01);
        assert_eq!(s.r#type(), "Nesterov");
        assert!(s.solver_type.is_none());
    }
}
