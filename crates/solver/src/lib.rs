//! siamese-solver: see ARCHITECTURE.md.
