//! Shared by the benchmarks (`mod common;`): command-line flags.

/// The number after the flag `name` (e.g. `--seconds 2`), or `default` when
/// the flag is absent or its value is not a number.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
