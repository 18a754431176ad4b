//! Questions about the verdict document of `replay --json`.

use serde_json::Value;

/// The verdict's pair from `client` (an address) to `server` (address:port).
pub fn verdict_pair<'a>(verdict: &'a Value, client: &str, server: &str) -> &'a Value {
    verdict["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["client"] == client && p["server"] == server)
        .unwrap_or_else(|| panic!("no pair {client} -> {server} in {verdict:#}"))
}
