// Unit tests of the limiter logic: `node --test` in this folder.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig, RateLimiter } from "../src/limiter.js";

test("allows per_second messages in any one second, per connection", () => {
  const limiter = new RateLimiter(2);
  assert.equal(limiter.allow("1", 1000), true);
  assert.equal(limiter.allow("1", 1500), true);
  assert.equal(limiter.allow("1", 1999), false, "third within a second");
  assert.equal(limiter.allow("2", 1999), true, "other connections have their own budget");
  assert.equal(limiter.allow("1", 2000), true, "the first left the window");
  assert.equal(limiter.allow("1", 2001), false);
  assert.equal(limiter.allow("1", 2500), true);
});

test("refused messages do not use up the budget", () => {
  const limiter = new RateLimiter(1);
  assert.equal(limiter.allow("1", 0), true);
  for (let t = 1; t < 1000; t += 100) assert.equal(limiter.allow("1", t), false);
  assert.equal(limiter.allow("1", 1000), true);
});

test("forgets connections that have gone", () => {
  const limiter = new RateLimiter(1);
  limiter.allow("1", 0);
  limiter.allow("2", 0);
  limiter.forget("1");
  assert.equal(limiter.size, 1);
  assert.equal(limiter.allow("1", 1), true);
});

test("reads per_second and names what is wrong", () => {
  assert.equal(parseConfig('{"per_second": 5}'), 5);
  assert.throws(() => parseConfig("{}"), /per_second must be a whole number/);
  assert.throws(() => parseConfig('{"per_second": 1.5}'), /not 1.5/);
  assert.throws(() => parseConfig('{"per_second": 0}'), /not 0/);
  assert.throws(() => parseConfig('{"per_second": 3, "burst": 1}'), /unknown config key `burst`/);
  assert.throws(() => parseConfig("[]"), /config must be a table/);
  assert.throws(() => parseConfig("nope"), /config is not JSON/);
});
