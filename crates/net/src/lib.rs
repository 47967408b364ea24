//! siamese-net: see ARCHITECTURE.md.
