import { createHash } from "node:crypto";

const FORMAT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** The fingerprint of a raw SSH public key blob, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/** Accepts what people paste (spaces, a trailing "=", the whole `ssh-keygen -l` line) and returns `SHA256:…`, or "" if none. */
export function normalizeFingerprint(text: string | undefined): string {
  const match = /SHA256:[A-Za-z0-9+/]{43}/.exec((text ?? "").trim());
  return match ? match[0] : "";
}

export function isFingerprint(text: string): boolean {
  return FORMAT.test(text);
}
