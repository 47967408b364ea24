//! Where a field sits in a prototxt: a light scan of the text format (names, strings, braces),
//! so checks made after parsing can name `file:line:col` like syntax errors do.

use std::path::Path;

/// A 1-based line and column (columns count characters) in a prototxt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    /// A field name (or an enum value, a number: any bare word).
    Word(&'a str),
    /// A quoted string's contents, escapes left as written.
    Str(&'a str),
    Open,
    Close,
    Colon,
    Other,
}

fn tokens(text: &str) -> Vec<(usize, Token<'_>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(bytes.len());
                out.push((start, Token::Str(&text[start + 1..end])));
                i = end + 1;
                continue;
            }
            b'{' | b'<' => out.push((start, Token::Open)),
            b'}' | b'>' => out.push((start, Token::Close)),
            b':' => out.push((start, Token::Colon)),
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b"_-.+".contains(&bytes[i]))
                {
                    i += 1;
                }
                out.push((start, Token::Word(&text[start..i])));
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            _ => out.push((start, Token::Other)),
        }
        i += 1;
    }
    out
}

/// The offsets of the field names `name` directly inside the block that opens at token
/// `open` (None: the top level), in order.
fn fields_in<'a>(toks: &[(usize, Token<'a>)], open: Option<usize>, name: &str) -> Vec<usize> {
    let mut depth = 0usize;
    let mut found = Vec::new();
    let start = open.map_or(0, |o| o + 1);
    for (k, (offset, tok)) in toks.iter().enumerate().skip(start) {
        match tok {
            Token::Open => depth += 1,
            Token::Close if depth == 0 => break,
            Token::Close => depth -= 1,
            Token::Word(w) if depth == 0 && *w == name && is_field_name(toks, k) => {
                found.push(*offset)
            }
            _ => {}
        }
    }
    found
}

/// A word is a field name when a `:` or a block follows it and it does not follow a `:`.
fn is_field_name(toks: &[(usize, Token)], k: usize) -> bool {
    let after = toks.get(k + 1).map(|t| &t.1);
    let before = k.checked_sub(1).map(|b| &toks[b].1);
    matches!(after, Some(Token::Colon | Token::Open)) && before != Some(&Token::Colon)
}

fn position(text: &str, offset: usize) -> Position {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: text[..offset].matches('\n').count() + 1,
        col: text[line_start..offset].chars().count() + 1,
    }
}

/// The `index`-th occurrence of the top-level field `name` (a solver setting).
pub fn top_level_field(text: &str, name: &str, index: usize) -> Option<Position> {
    let toks = tokens(text);
    let offsets = fields_in(&toks, None, name);
    offsets.get(index).map(|&o| position(text, o))
}

/// The field `field` (a name, or a path such as `convolution_param.stride`) of the layer
/// called `layer` (a `layer {}` or V1 `layers {}` block); the layer's `name` when the field is
/// not written (its default was used), None when no such layer is written.
pub fn layer_field(text: &str, layer: &str, field: &str) -> Option<Position> {
    let toks = tokens(text);
    for open in layer_blocks(&toks) {
        let Some(name_at) = fields_in(&toks, Some(open), "name").first().copied() else {
            continue;
        };
        let k = toks.iter().position(|t| t.0 == name_at)?;
        let named = toks[k + 1..]
            .iter()
            .find(|t| t.1 != Token::Colon)
            .is_some_and(|t| t.1 == Token::Str(layer));
        if named {
            return Some(position(
                text,
                find_path(&toks, open, field).unwrap_or(name_at),
            ));
        }
    }
    None
}

/// The tokens opening each top-level `layer {` / `layers {` block (with or without a `:`).
fn layer_blocks(toks: &[(usize, Token)]) -> Vec<usize> {
    let mut depth = 0usize;
    let mut opens = Vec::new();
    for (k, (_, tok)) in toks.iter().enumerate() {
        match tok {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            Token::Word("layer" | "layers") if depth == 0 => {
                let open = match (toks.get(k + 1), toks.get(k + 2)) {
                    (Some((_, Token::Open)), _) => k + 1,
                    (Some((_, Token::Colon)), Some((_, Token::Open))) => k + 2,
                    _ => continue,
                };
                opens.push(open);
            }
            _ => {}
        }
    }
    opens
}

/// The first `a.b.c` inside the block at `open`: `a` directly inside it, `b` inside `a`...
fn find_path(toks: &[(usize, Token)], open: usize, path: &str) -> Option<usize> {
    let mut block = open;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let at = *fields_in(toks, Some(block), part).first()?;
        if parts.peek().is_none() {
            return Some(at);
        }
        let k = toks.iter().position(|t| t.0 == at)?;
        block = k + toks[k..].iter().position(|t| t.1 == Token::Open)?;
    }
    None
}

/// Reads `path` and locates with `find`; None when the file cannot be read or has no such
/// place (a net built in memory, a value given on the command line).
pub fn in_file(path: &Path, find: impl FnOnce(&str) -> Option<Position>) -> Option<Position> {
    find(&std::fs::read_to_string(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "name: \"n\" # layer { name: \"x\" }\nlayer {\n  name: \"conv1\"\n  type: \"Convolution\"\n  convolution_param { num_output: 20 stride: 0 }\n}\nlayers: {\n  name: 'loss'\n  contrastive_loss_param {\n    margin: -1\n  }\n}\n";

    #[test]
    fn finds_fields_of_named_layers_in_both_syntaxes() {
        let at = |l, f| layer_field(NET, l, f).map(|p| (p.line, p.col));
        assert_eq!(at("conv1", "convolution_param.stride"), Some((5, 38)));
        assert_eq!(at("conv1", "convolution_param.num_output"), Some((5, 23)));
        assert_eq!(at("loss", "contrastive_loss_param.margin"), Some((10, 5)));
        // A field left at its default: the layer's name.
        assert_eq!(at("conv1", "convolution_param.pad"), Some((3, 3)));
        assert_eq!(at("x", "name"), None, "comments are skipped");
        assert_eq!(at("nope", "name"), None);
    }

    #[test]
    fn finds_top_level_fields_not_nested_ones() {
        let text = "net_param { max_iter: 3 }\ntest_iter: 1\n\ntest_iter: -2 max_iter: -5\n";
        let at = |f, i| top_level_field(text, f, i).map(|p| (p.line, p.col));
        assert_eq!(at("max_iter", 0), Some((4, 15)));
        assert_eq!(at("test_iter", 1), Some((4, 1)));
        assert_eq!(at("base_lr", 0), None);
    }
}
