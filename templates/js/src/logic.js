// The plugin's logic, free of WIT imports so that `node --test` runs it natively.

/**
 * Reads `{ "max_bytes": N }`; throws a string naming the problem.
 * @param {string} text the plugin's `config` table as JSON
 */
export function parseConfig(text) {
  const config = JSON.parse(text);
  const n = config.max_bytes;
  if (!Number.isInteger(n) || n < 1) {
    throw `max_bytes: required, a whole number of at least 1 (config was ${text})`;
  }
  return { maxBytes: n };
}

/**
 * Why a message's `data` (JSON text) must be dropped, or `null` to let it pass.
 * @param {object} config the result of parseConfig
 * @param {string} data
 */
export function dropReason(config, data) {
  const size = new TextEncoder().encode(data).length;
  return size > config.maxBytes ? `data is larger than ${config.maxBytes} bytes` : null;
}
