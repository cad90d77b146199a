import { strict as assert } from "node:assert";
import * as sinon from "sinon";
import { Throttle } from "../lib/sftp/throttle";

describe("bandwidth limit", () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => (clock = sinon.useFakeTimers({ now: 1_000_000 })));
  afterEach(() => clock.restore());

  it("lets one second of burst through, then spaces requests at the set rate", () => {
    const t = new Throttle(100_000, () => Date.now());
    assert.equal(t.book(100_000), 0); // the burst: sent as if it had started a second ago
    assert.equal(t.book(50_000), 0); // starts as the burst's second ends
    assert.equal(t.book(50_000), 500);
    assert.equal(t.book(50_000), 1000);
  });

  it("holds the average rate over a long transfer", () => {
    const t = new Throttle(1024 * 1024, () => Date.now());
    let waited = 0;
    for (let i = 0; i < 80; i++) {
      const wait = t.book(128 * 1024);
      clock.tick(wait);
      waited += wait;
    }
    // 10 MiB at 1 MiB/s: 10 s, less the one-second burst
    assert.ok(Math.abs(waited - 9000) <= 130, `waited ${waited} ms`);
  });

  it("does not bank idle time beyond the burst", () => {
    const t = new Throttle(1000, () => Date.now());
    clock.tick(60_000);
    assert.equal(t.book(1000), 0);
    assert.equal(t.book(1000), 0);
    assert.equal(t.book(1000), 1000);
  });

  it("is off for 0 or no limit", () => {
    assert.equal(Throttle.fromKBps(0), undefined);
    assert.equal(Throttle.fromKBps(undefined), undefined);
    assert.ok(Throttle.fromKBps(10));
  });
});
