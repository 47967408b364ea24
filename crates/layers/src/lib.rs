//! siamese-layers: see ARCHITECTURE.md.
