import { createHash } from "node:crypto";

/**
 * What the archive's filesystem can hold, as found by probing it (fs-probe.ts). The stored name of a
 * remote file is derived from these rules; the catalog keeps both names.
 */
export interface NameRules {
  /** printable characters the filesystem refuses (or that Windows refuses on a Windows-family disk) */
  escapeChars: string;
  /** names may not end in "." or " " (Windows strips them) */
  trailingDotSpace: boolean;
  /** CON, NUL, COM1 … (with any extension) are devices on Windows */
  reservedNames: boolean;
  /** the filesystem takes only ASCII names (some FAT drivers): other characters are escaped as UTF-8 bytes */
  asciiOnly: boolean;
  /** "A.csv" and "a.csv" are one file */
  caseInsensitive: boolean;
  /** "é" composed and decomposed are one file (macOS) */
  normalizationInsensitive: boolean;
  /** longest name of one path component, in UTF-8 bytes or in UTF-16 units */
  maxName: { max: number; unit: "bytes" | "utf16" };
}

/** ext4, xfs, btrfs, ZFS: everything but "/" and NUL, names up to 255 bytes. */
export const POSIX_RULES: NameRules = {
  escapeChars: "",
  trailingDotSpace: false,
  reservedNames: false,
  asciiOnly: false,
  caseInsensitive: false,
  normalizationInsensitive: false,
  maxName: { max: 255, unit: "bytes" },
};

/** NTFS, exFAT, FAT32 and SMB shares as Windows sees them. */
export const WINDOWS_RULES: NameRules = {
  escapeChars: '<>:"|?*',
  trailingDotSpace: true,
  reservedNames: true,
  asciiOnly: false,
  caseInsensitive: true,
  normalizationInsensitive: false,
  maxName: { max: 255, unit: "utf16" },
};

/** The escape character; always escaped itself, so that every stored name decodes to exactly one original. */
const ESCAPE = "%";

const RESERVED = new Set([
  "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
  ...["1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"].flatMap((n) => [`COM${n}`, `LPT${n}`]),
]);

/**
 * Escapes one path component so that the filesystem described by `rules` can hold it, or returns it
 * unchanged when it can. Characters become `%XX` (the UTF-8 bytes, upper-case hex), as in URLs: a
 * person reading the archive sees `EURUSD_10%3A00.csv` and knows it was `EURUSD_10:00.csv`.
 * Always escaped, whatever the filesystem: "%" itself, control characters and "\" (a separator on
 * Windows), so that a stored name is safe to print, list in a manifest and carry to any computer.
 */
export function encodeName(name: string, rules: NameRules): string {
  let out = name.replace(escapePattern(rules), percent);
  if (rules.trailingDotSpace && (out.endsWith(".") || out.endsWith(" "))) out = out.slice(0, -1) + percent(out.slice(-1));
  if (rules.reservedNames && isReserved(out)) out = percent(out[0]) + out.slice(1);
  return out;
}

const patterns = new WeakMap<NameRules, RegExp>();

/** One pattern per rule set for every character to escape: most names match nothing and are returned as they are. */
function escapePattern(rules: NameRules): RegExp {
  let re = patterns.get(rules);
  if (!re) {
    const listed = [...rules.escapeChars].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
    re = new RegExp(`[%\\\\\\u0000-\\u001f\\u007f${listed}]${rules.asciiOnly ? "|[^\\u0000-\\u007e]" : ""}`, "gu");
    patterns.set(rules, re);
  }
  return re;
}

/** The original of a stored name that was only escaped (not shortened or told apart: the catalog knows those). */
export function decodeName(stored: string): string {
  return decodeURIComponent(stored);
}

/** `%XX` for each UTF-8 byte of one character. */
function percent(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (code < 0x80) return ESCAPE + code.toString(16).toUpperCase().padStart(2, "0");
  return encodeURIComponent(ch); // upper-case hex of the UTF-8 bytes, as above
}

/** Windows treats "CON", "con.txt" and "Con .csv" alike: the part before the first dot, trailing spaces ignored. */
function isReserved(name: string): boolean {
  return RESERVED.has(name.split(".")[0].replace(/ +$/, "").toUpperCase());
}

/** Length of a name in the unit its filesystem counts. */
export function nameLength(name: string, unit: NameRules["maxName"]["unit"]): number {
  return unit === "bytes" ? Buffer.byteLength(name, "utf8") : name.length;
}

/**
 * A stored name that is too long is cut, and marked with a hash of the full original so two long
 * names that share a beginning stay apart; the extension is kept, so programs still know the file.
 */
export function shortenName(stored: string, original: string, rules: NameRules): string {
  if (nameLength(stored, rules.maxName.unit) <= rules.maxName.max) return stored;
  return withSuffix(stored, `~${hashOf(original, 10)}`, rules);
}

/** `stem` + suffix + extension, the stem cut (never inside an escape or a character) to fit the limit. */
function withSuffix(stored: string, suffix: string, rules: NameRules): string {
  const dot = stored.lastIndexOf(".");
  const ext = dot > 0 && stored.length - dot <= 16 ? stored.slice(dot) : "";
  let stem = stored.slice(0, stored.length - ext.length);
  const fits = (s: string) => nameLength(s + suffix + ext, rules.maxName.unit) <= rules.maxName.max;
  while (stem.length > 0 && !fits(stem)) {
    const chars = [...stem];
    chars.pop();
    stem = chars.join("");
    const cut = stem.lastIndexOf(ESCAPE);
    if (cut >= 0 && cut > stem.length - 3) stem = stem.slice(0, cut); // never leave half an escape
  }
  // A name that ends up ending in "." or " " would be stripped by Windows: the suffix always follows the stem.
  return stem + suffix + ext;
}

function hashOf(text: string, hex: number): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, hex);
}

/** The key under which a filesystem looks a name up: two names with one key are one file there. */
export function collisionKey(name: string, rules: NameRules): string {
  let key = name;
  if (rules.caseInsensitive || rules.normalizationInsensitive) key = key.normalize("NFC");
  // Upper then lower folds more than either alone ("ß" → "ss", Kelvin sign → "k"): telling apart too much is harmless, too little loses a file.
  if (rules.caseInsensitive) key = key.toUpperCase().toLowerCase();
  return key;
}

/**
 * The stored path of every remote path in one archive. Built from the catalog's records, it hands
 * out stored names for new remote paths component by component: escaped as the rules require,
 * shortened when too long, and told apart (`name~<hash>.ext`) when the filesystem would take them for
 * a name already in use in that folder (another case, another Unicode normalisation).
 */
export class NameMap {
  /** remote path (file or folder) → stored path */
  private readonly stored = new Map<string, string>();
  /** stored folder ("" for the root) → collision key → remote path holding it */
  private readonly taken = new Map<string, Map<string, string>>();

  constructor(
    readonly rules: NameRules,
    known: Iterable<{ path: string; storedPath?: string }> = [],
    /** top-level names the archive keeps for itself */
    reserved: string[] = [],
  ) {
    for (const name of reserved) this.occupy("", name, `\0${name}`);
    for (const r of known) this.learn(r.path, r.storedPath ?? r.path);
  }

  /** The stored path of a remote path, assigning one (and remembering it) if the path is new. */
  storedFor(remote: string): string {
    const known = this.stored.get(remote);
    if (known !== undefined) return known;
    const cut = remote.lastIndexOf("/");
    const storedFolder = cut < 0 ? "" : this.storedFor(remote.slice(0, cut)); // the folders first, once each
    const name = this.freeName(storedFolder, remote.slice(cut + 1), remote);
    const stored = storedFolder === "" ? name : `${storedFolder}/${name}`;
    this.stored.set(remote, stored);
    this.occupy(storedFolder, name, remote);
    return stored;
  }

  private learn(remote: string, storedPath: string): void {
    if (this.stored.has(remote)) return;
    const cut = remote.lastIndexOf("/");
    const storedCut = storedPath.lastIndexOf("/");
    if ((cut < 0) !== (storedCut < 0)) return; // not a mapping this version made: ignore rather than guess
    const storedFolder = storedCut < 0 ? "" : storedPath.slice(0, storedCut);
    if (cut >= 0) this.learn(remote.slice(0, cut), storedFolder); // the folders, once each
    this.stored.set(remote, storedPath);
    this.occupy(storedFolder, storedPath.slice(storedCut + 1), remote);
  }

  private occupy(storedFolder: string, name: string, remote: string): void {
    let folder = this.taken.get(storedFolder);
    if (!folder) this.taken.set(storedFolder, (folder = new Map()));
    folder.set(collisionKey(name, this.rules), remote);
  }

  private freeName(storedFolder: string, remoteName: string, remotePrefix: string): string {
    const folder = this.taken.get(storedFolder);
    const free = (name: string) => !folder?.has(collisionKey(name, this.rules));
    const name = shortenName(encodeName(remoteName, this.rules), remoteName, this.rules);
    if (free(name)) return name;
    // Told apart by a hash of the whole remote path: the same remote path always gets the same stored name.
    for (let hex = 8; hex <= 64; hex += 8) {
      const candidate = withSuffix(encodeName(remoteName, this.rules), `~${hashOf(remotePrefix, hex)}`, this.rules);
      if (free(candidate)) return candidate;
    }
    throw new Error(`no free stored name for ${JSON.stringify(remotePrefix)}`); // 2^-256: unreachable in practice
  }
}
