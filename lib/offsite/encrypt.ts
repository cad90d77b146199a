import { PassThrough, Readable } from "node:stream";
import { ConfigError, messageOf } from "../errors";
import { ObjectUndecryptable, type PutSource } from "./target";

/* eslint-disable @typescript-eslint/no-explicit-any */
type AgeModule = any;

// age-encryption is an ES module. TypeScript compiling to CommonJS turns `import()` into require(),
// which cannot load it; a Function body is left alone, so this stays a real dynamic import.
const importEsm = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<AgeModule>;
let loaded: Promise<AgeModule> | undefined;

/** The age implementation (typage, by age's own authors), loaded once. */
export function loadAge(): Promise<AgeModule> {
  loaded ??= importEsm("age-encryption");
  return loaded;
}

/** Checks an age recipient (public key) as the user typed it. */
export function checkRecipient(recipient: string): string {
  const r = recipient.trim();
  if (!/^age1[02-9ac-hj-np-z]{58}$/.test(r) && !/^age1pq1[02-9ac-hj-np-z]+$/.test(r)) {
    throw new ConfigError(`"${r.slice(0, 12)}…" is not an age recipient (a public key starting with age1)`);
  }
  return r;
}

/**
 * Encrypts a stream to one age recipient, streaming (64 KiB chunks, constant memory). The result is
 * a standard age file: `age -d -i key.txt` decrypts it.
 */
export function encryptStream(plain: Readable, recipient: string): Readable {
  return throughAge(plain, (age, input) => {
    const encrypter = new age.Encrypter();
    encrypter.addRecipient(recipient);
    return encrypter.encrypt(input);
  });
}

/**
 * What a put sends of some plaintext: `open` gives the plaintext afresh at each call (a retry reads
 * it again), encrypted on the way when there is a recipient; the size is then not known beforehand.
 */
export function putSource(open: () => Readable, plain: { size: number; sha256: string }, recipient: string | undefined): PutSource {
  return {
    open: () => (recipient ? encryptStream(open(), recipient) : open()),
    size: recipient ? undefined : plain.size,
    sha256: plain.sha256,
    encrypted: recipient !== undefined,
  };
}

/**
 * Decrypts an age stream with a secret key, streaming (restores of large files). Bytes that the key
 * does not open fail as ObjectUndecryptable; a failure to read the ciphertext stays what it was.
 */
export function decryptStream(cipher: Readable, identity: string): Readable {
  return throughAge(
    cipher,
    (age, input) => {
      const decrypter = new age.Decrypter();
      decrypter.addIdentity(identity.trim());
      return decrypter.decrypt(input);
    },
    undecryptable,
  );
}

/** Runs a Node stream through one of age's web-stream transforms; an error on either side ends both. */
function throughAge(
  input: Readable,
  run: (age: AgeModule, input: ReadableStream<Uint8Array>) => Promise<ReadableStream<Uint8Array>>,
  ageFailure: (err: unknown) => unknown = (err) => err,
): Readable {
  const out = new PassThrough();
  out.on("close", () => input.destroy());
  // age rethrows what its input failed with: that error is the input's, not age's verdict on the bytes.
  let inputError: unknown;
  input.once("error", (err) => (inputError = err));
  const fail = (err: unknown) => out.destroy((inputError ?? ageFailure(err)) as Error);
  (async () => {
    const age = await loadAge();
    try {
      const result = await run(age, Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>);
      const source = Readable.fromWeb(result as unknown as import("node:stream/web").ReadableStream<Uint8Array>);
      source.on("error", fail);
      source.pipe(out);
    } catch (err) {
      fail(err);
    }
  })().catch((err) => out.destroy(err));
  return out;
}

/** Decrypts a whole age file with a secret key (AGE-SECRET-KEY-1…), for restores and tests. */
export async function decryptBuffer(cipher: Uint8Array, identity: string): Promise<Buffer> {
  const age = await loadAge();
  const decrypter = new age.Decrypter();
  decrypter.addIdentity(identity.trim());
  try {
    return Buffer.from(await decrypter.decrypt(cipher));
  } catch (err) {
    throw undecryptable(err);
  }
}

function undecryptable(err: unknown): ObjectUndecryptable {
  return new ObjectUndecryptable(`${messageOf(err)}: damaged, altered, or encrypted to another key`, err);
}
