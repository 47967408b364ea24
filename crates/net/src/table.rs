//! The `siamese net` table: one row per layer with its blobs, output shapes and parameters,
//! then the number of distinct parameters (a parameter shared by name counts once).

use crate::NetSpec;
use crate::shape::fmt_shape;

/// Renders `net` as an aligned text table (no trailing spaces), ending with a newline.
pub fn render(net: &NetSpec) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "layer".into(),
        "type".into(),
        "bottoms -> tops".into(),
        "output shape".into(),
        "parameters".into(),
        "count".into(),
    ]];
    for (li, layer) in net.layers.iter().enumerate() {
        let names = |ids: &[usize]| {
            ids.iter()
                .map(|&b| net.blobs[b].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let flow = match (layer.bottoms.is_empty(), layer.tops.is_empty()) {
            (true, _) => format!("-> {}", names(&layer.tops)),
            (false, true) => format!("{} ->", names(&layer.bottoms)),
            (false, false) => format!("{} -> {}", names(&layer.bottoms), names(&layer.tops)),
        };
        let shapes = layer
            .tops
            .iter()
            .map(|&t| net.blobs[t].shape.as_deref().map_or("?".into(), fmt_shape))
            .collect::<Vec<_>>()
            .join(", ");
        let mut params = Vec::new();
        let mut owned = Some(0usize);
        let mut owns_any = false;
        for (slot, &pid) in layer.params.iter().enumerate() {
            let p = &net.params[pid];
            let label = match &p.name {
                Some(name) => name.clone(),
                None => ["weight", "bias"]
                    .get(slot)
                    .map_or(slot.to_string(), |s| s.to_string()),
            };
            let shape = if p.is_shaped() {
                fmt_shape(&p.shape)
            } else {
                "?".into()
            };
            let shared = if p.users.len() > 1 { " (shared)" } else { "" };
            params.push(format!("{label} {shape}{shared}"));
            if p.owner == (li, slot) {
                owns_any = true;
                owned = owned.zip(p.count()).and_then(|(a, b)| a.checked_add(b));
            }
        }
        let count = match (layer.params.is_empty(), owns_any, owned) {
            (true, _, _) => String::new(),
            (false, false, _) => "shared".into(),
            (false, true, Some(n)) => thousands(n),
            (false, true, None) => "?".into(),
        };
        rows.push([
            layer.name.clone(),
            layer.kind().to_string(),
            flow,
            shapes,
            params.join(", "),
            count,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!("net \"{}\", phase {}\n", net.name, net.phase.as_str_name());
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i == 5 {
                line.push_str(&format!("{cell:>w$}"));
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let outputs: Vec<&str> = net
        .outputs
        .iter()
        .map(|&b| net.blobs[b].name.as_str())
        .collect();
    out.push_str(&format!("outputs: {}\n", outputs.join(", ")));
    let shared = net.params.iter().filter(|p| p.users.len() > 1).count();
    let total = net
        .param_count()
        .map_or("unknown (some shapes are unknown)".into(), thousands);
    out.push_str(&format!(
        "distinct parameters: {total} in {} blobs ({shared} shared by name)\n",
        net.params.len()
    ));
    out
}

/// 431102 -> "431,102".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(431102), "431,102");
        assert_eq!(super::thousands(1234567), "1,234,567");
    }
}
