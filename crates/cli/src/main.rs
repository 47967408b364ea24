//! The `siamese` command.

fn main() {}
