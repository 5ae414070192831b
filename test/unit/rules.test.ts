// The pure predicates behind the schema: cron syntax, pinned images, names, subnets.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cronProblem } from "../../stacks/config/cron.js";
import { cidrsOverlap, durationSeconds, goDuration, isHostname, isInZone, isPinnedImage, isPrivateCidr, isSubnet24, isTimeZone, nextFreeSubnet24 } from "../../stacks/config/rules.js";
import { edgeAddressing } from "../../infra/server/render.js";

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
  it("durations in Go's form, as Docker's provider reads them back (time.Duration.String)", () => {
    const cases: Record<string, string> = { "500ms": "500ms", "5s": "5s", "59s": "59s", "60s": "1m0s", "90s": "1m30s", "180s": "3m0s", "2m": "2m0s", "1500ms": "1.5s", "61500ms": "1m1.5s", "1h": "1h0m0s", "3700s": "1h1m40s" };
    for (const [written, go] of Object.entries(cases)) assert.equal(goDuration(written), go, written);
  });
});

describe("edge subnets", () => {
  it("a /24 by its network address, in a private range", () => {
    assert.ok(isSubnet24("172.30.10.0/24"));
    assert.ok(!isSubnet24("172.30.10.1/24"));
    assert.ok(!isSubnet24("172.30.10.0/25"));
    assert.ok(!isSubnet24("172.30.256.0/24"));
    assert.ok(isPrivateCidr("10.1.2.0/24") && isPrivateCidr("172.31.255.0/24") && isPrivateCidr("192.168.7.0/24"));
    assert.ok(!isPrivateCidr("172.32.0.0/24") && !isPrivateCidr("8.8.8.0/24") && !isPrivateCidr("172.16.0.0/11"));
  });
  it("overlap, and the next free /24", () => {
    assert.ok(cidrsOverlap("172.30.10.0/24", "172.30.0.0/16"));
    assert.ok(!cidrsOverlap("172.30.10.0/24", "172.30.11.0/24"));
    assert.equal(nextFreeSubnet24("172.30.10.0/24", ["172.30.10.0/24", "172.30.11.0/24"]), "172.30.12.0/24");
    assert.equal(nextFreeSubnet24("172.30.10.0/24", []), "172.30.10.0/24");
    assert.equal(nextFreeSubnet24("172.30.255.0/24", ["172.30.255.0/24"]), undefined);
  });
  it("fixed addresses below the dynamic range", () => {
    assert.deepEqual(edgeAddressing("172.30.10.0/24"), {
      subnet: "172.30.10.0/24",
      gateway: "172.30.10.1",
      ipRange: "172.30.10.128/25",
      blue: "172.30.10.11",
      green: "172.30.10.12",
      metabase: "172.30.10.20",
    });
  });
});
