/**
 * An upload records copies while a pull of the same archive runs in this process (its short
 * catalog updates join the pull's lock): the pull's own record changes must not drop them.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createTarget, uploadOffsite } from "../lib/offsite";
import { pullEnv, sshdServer } from "./support/pull-env";
import { startSshd, type Sshd } from "./support/sshd";
import { tempDir, write } from "./support/tree";

describe("offsite copies beside a running pull", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd();
  });
  after(() => sshd?.stop());

  it("keeps copies recorded while the pull transfers a rewritten file", async () => {
    const remote = path.join(sshd.root, "rewrite-case");
    write(remote, "day.csv", "a".repeat(1_000_000));
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    const before = (await env.archive.readCatalog()).get("day.csv")!;
    assert.equal(before.state, "final");

    // The server rewrites day.csv; while the pull fetches the new content, an upload records its
    // copy of the old content (a second target, say).
    write(remote, "day.csv", "b".repeat(3_000_000));
    let recorded: Promise<unknown> | undefined;
    const copy = { at: new Date().toISOString(), sha256: before.sha256, key: "day.csv", size: before.size };
    const report = await env.run({
      onProgress: (p) => {
        if (p.phase === "pulling" && !recorded) recorded = env.archive.update((cat) => cat.patch("day.csv", (r) => ({ ...r, copies: { ...r.copies, "test:disk": copy } })));
      },
    });
    await recorded;
    assert.equal(report.counts.rewritten, 1);
    const after = (await env.archive.readCatalog()).get("day.csv")!;
    assert.notEqual(after.sha256, before.sha256, "the new content is archived");
    assert.deepEqual(after.copies, { "test:disk": copy }, "the copy recorded during the transfer survives the pull's commit");

    // The next upload sees the copy is of an older content and puts the new one beside it.
    const target = createTarget({ kind: "directory", path: tempDir("offsite-disk-") });
    const up = await uploadOffsite({ archive: env.archive, target, targetName: "disk" });
    assert.equal(up.counts.uploaded, 1);
    assert.equal(fs.statSync(path.join(target.description, "day.csv")).size, 3_000_000);
  });
});
