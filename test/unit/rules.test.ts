// The pure predicates behind the schema: cron syntax, pinned images, names.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cronProblem } from "../../stacks/config/cron.js";
import { durationSeconds, isHostname, isInZone, isPinnedImage, isTimeZone } from "../../stacks/config/rules.js";

describe("cron expressions", () => {
  for (const ok of ["0 4 * * *", "*/15 * * * *", "30 5 * * 0", "0 3 1,15 * *", "0 0 * jan-mar mon-fri", "0 22 * * 7", "@daily", "5-55/10 0-23/2 * * *"]) {
    it(`accepts ${ok}`, () => assert.equal(cronProblem(ok), undefined));
  }
  const bad: [string, RegExp][] = [
    ["0 4 * *", /4 fields/],
    ["60 * * * *", /minute 60 is out of range/],
    ["0 24 * * *", /hour 24/],
    ["0 0 0 * *", /day of month 0/],
    ["0 0 * 13 *", /month 13/],
    ["0 0 * * 8", /day of week 8/],
    ["*/0 * * * *", /step/],
    ["0 10-2 * * *", /runs backwards/],
    ["0 4 * * funday", /not a valid day of week/],
    ["@reboot", /not a schedule/],
  ];
  for (const [expression, reason] of bad) {
    it(`rejects ${expression}`, () => assert.match(cronProblem(expression) ?? "(accepted)", reason));
  }
});

describe("pinned images", () => {
  for (const ok of ["mariadb:11.4.4", "ghcr.io/bbaegok/bbaegok-api:1.8.2", "localhost:5000/api:2", "nginx:1.28.0-alpine", `api@sha256:${"a".repeat(64)}`]) {
    it(`${ok} is pinned`, () => assert.ok(isPinnedImage(ok)));
  }
  for (const bad of ["nginx", "nginx:latest", "postgres:alpine", "localhost:5000/api", "ghcr.io/x/y:main", "api:stable"]) {
    it(`${bad} is not pinned`, () => assert.ok(!isPinnedImage(bad)));
  }
});

describe("names and zones", () => {
  it("host names", () => {
    assert.ok(isHostname("api.bbaegok.kr"));
    assert.ok(!isHostname("API.bbaegok.kr"));
    assert.ok(!isHostname("bbaegok"));
    assert.ok(!isHostname("-x.bbaegok.kr"));
  });
  it("zones", () => {
    assert.ok(isInZone("api.bbaegok.kr", "bbaegok.kr"));
    assert.ok(!isInZone("api.notbbaegok.kr", "bbaegok.kr"));
  });
  it("time zones and durations", () => {
    assert.ok(isTimeZone("Asia/Seoul"));
    assert.ok(!isTimeZone("Asia/Nowhere"));
    assert.equal(durationSeconds("2m"), 120);
    assert.equal(durationSeconds("500ms"), 0.5);
  });
});
