import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import fsp = require("node:fs/promises"); // the module object itself, so a stub is what lib/ calls
import * as path from "node:path";
import * as sinon from "sinon";
import { fsyncDir, renameReplacing } from "../lib/archive/fsutil";
import { tempDir } from "./support/tree";

/**
 * Renaming over an existing file as Windows does it: refused while another program holds the target
 * open. The refusals are injected (this machine is Linux); the renames themselves are real.
 */
describe("rename over an existing file", () => {
  let dir: string;
  let from: string;
  let to: string;
  beforeEach(() => {
    dir = tempDir("tick-rename-");
    from = path.join(dir, "new.tmp");
    to = path.join(dir, "catalog.json");
    fs.writeFileSync(from, "new");
    fs.writeFileSync(to, "old");
  });
  afterEach(() => sinon.restore());

  function busyFor(times: number, code: string): sinon.SinonStub {
    const real = fsp.rename;
    let left = times;
    return sinon.stub(fsp, "rename").callsFake(async (a, b) => {
      if (left-- > 0) throw Object.assign(new Error(`${code}: operation not permitted, rename`), { code });
      return real(a, b);
    });
  }

  it("on Windows waits out a scanner holding the target, then replaces it", async () => {
    const rename = busyFor(3, "EPERM");
    await renameReplacing(from, to, { platform: "win32" });
    assert.equal(rename.callCount, 4);
    assert.equal(fs.readFileSync(to, "utf8"), "new");
    assert.equal(fs.existsSync(from), false);
  });

  it("on Windows gives up after its wait with the real error, leaving both files as they were", async () => {
    busyFor(Infinity, "EBUSY");
    await assert.rejects(renameReplacing(from, to, { platform: "win32", waitMs: 200 }), /EBUSY/);
    assert.equal(fs.readFileSync(to, "utf8"), "old");
    assert.equal(fs.readFileSync(from, "utf8"), "new");
  });

  it("elsewhere, and for errors no wait can cure, fails at once", async () => {
    const rename = busyFor(1, "EPERM");
    await assert.rejects(renameReplacing(from, to, { platform: "linux" }), /EPERM/);
    assert.equal(rename.callCount, 1);
    sinon.restore();
    const missing = busyFor(1, "ENOENT");
    await assert.rejects(renameReplacing(from, to, { platform: "win32" }), /ENOENT/);
    assert.equal(missing.callCount, 1);
  });

  it("replaces for real on this machine", async () => {
    await renameReplacing(from, to);
    assert.equal(fs.readFileSync(to, "utf8"), "new");
  });
});

/** Folder fsync as each platform answers it: Windows cannot open a folder for it (EISDIR), some shares refuse. */
describe("fsync of a folder", () => {
  afterEach(() => sinon.restore());

  for (const code of ["EISDIR", "EINVAL", "EPERM", "ENOTSUP"]) {
    it(`goes on where the platform answers ${code} (the rename is still atomic)`, async () => {
      const open = sinon.stub(fsp, "open").rejects(Object.assign(new Error(code), { code }));
      await fsyncDir(tempDir("tick-fsync-"));
      assert.equal(open.callCount, 1);
    });
  }

  it("reports a real disk error instead of hiding it", async () => {
    sinon.stub(fsp, "open").rejects(Object.assign(new Error("EIO: i/o error"), { code: "EIO" }));
    await assert.rejects(fsyncDir(tempDir("tick-fsync-")), /EIO/);
  });
});
