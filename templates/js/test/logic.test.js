import assert from "node:assert/strict";
import { test } from "node:test";
import { dropReason, parseConfig } from "../src/logic.js";

test("passes small data and drops large data", () => {
  const config = parseConfig('{"max_bytes": 5}');
  assert.equal(dropReason(config, '"abc"'), null);
  assert.equal(dropReason(config, '"abcd"'), "data is larger than 5 bytes");
});

test("refuses a config without max_bytes", () => {
  assert.throws(() => parseConfig("{}"));
  assert.throws(() => parseConfig('{"max_bytes": 0}'));
});
