//! siamese-data: see ARCHITECTURE.md.
