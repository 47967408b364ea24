//! The `siamese-tui` command.

fn main() {}
