//! What the host accepts from a plugin's answer before it goes into a frame: replacement
//! `data` and `meta` are spliced into frames as they are (never re-encoded), so they must
//! be within `max_message_size` ([`OutputTooBig`]) and be JSON of the right shape
//! ([`OutputInvalid`], [`check_json`]). A refused output fails the call like a trap, but
//! keeps the instance, and the plugin's policy applies.

/// A hook's output over the limit: replacement `data` or `meta` larger than
/// `server.max_message_size`. The chain's call closures return it; the instance is kept,
/// since its store is not poisoned, and the plugin's policy applies.
#[derive(Debug, thiserror::Error)]
#[error("output of {size} bytes is over the limit of {limit}")]
pub struct OutputTooBig {
    /// Bytes the plugin returned.
    pub size: usize,
    /// Bytes allowed.
    pub limit: usize,
}

/// A hook's output that cannot go into a frame: replacement `data` that is not JSON, or
/// `meta` that is not a JSON object. Like [`OutputTooBig`], the instance is kept and the
/// plugin's policy applies.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutputInvalid(pub &'static str);

/// Checks a plugin's replacement `data` (any JSON, within [`crate::protocol::MAX_DATA_DEPTH`])
/// or `meta` (a JSON object): both are spliced into frames as they are, so anything else
/// would send clients broken JSON or extra keys.
pub fn check_json(text: Option<&str>, object: bool) -> Result<(), OutputInvalid> {
    let Some(text) = text else { return Ok(()) };
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(OutputInvalid(if object {
            "`meta` is not valid JSON"
        } else {
            "replacement `data` is not valid JSON"
        }));
    }
    if object && !text.trim_start().starts_with('{') {
        return Err(OutputInvalid("`meta` is not a JSON object"));
    }
    if crate::protocol::check_depth(text).is_err() {
        return Err(OutputInvalid("output nests too deep"));
    }
    Ok(())
}
