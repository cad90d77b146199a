import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { putSource } from "./encrypt";
import { bufferStream } from "./streams";
import { TARGET_STATE } from "./target";
import type { FileContext } from "./upload";

/**
 * The catalog (as recorded now, with this target's copies) and the archive's SHA256SUMS files go
 * to `.tick-backup/` on the target: with them a restore needs nothing from the home disk.
 */
export async function uploadManifests(ctx: FileContext): Promise<void> {
  const catalog = await ctx.archive.readCatalog();
  const snapshot = Buffer.from(
    JSON.stringify({ format: 1, archive: ctx.archive.identity, target: ctx.id, writtenAt: new Date().toISOString(), records: catalog.all().sort((a, b) => (a.path < b.path ? -1 : 1)) }),
  );
  const items: Array<{ name: string; data: Buffer }> = [{ name: "catalog.json", data: snapshot }];
  for (const entry of await fsp.readdir(ctx.archive.root, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.startsWith("SHA256SUMS")) items.push({ name: entry.name, data: await fsp.readFile(path.join(ctx.archive.root, entry.name)) });
  }
  for (const item of items) {
    const sha256 = createHash("sha256").update(item.data).digest("hex");
    const source = putSource(() => bufferStream(item.data), { size: item.data.length, sha256 }, ctx.recipient);
    const key = `${TARGET_STATE}/${item.name}${ctx.recipient ? ".age" : ""}`;
    await ctx.target.put(key, source, { mode: "replaceable", signal: ctx.signal, pace: ctx.pace });
  }
}
