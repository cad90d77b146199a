/**
 * Waits until `fn` gives a value (anything but undefined or false) and returns it; fails naming
 * `what` when it does not come within `timeoutMs`. For conditions a test cannot be told of.
 */
export async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 15_000, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
