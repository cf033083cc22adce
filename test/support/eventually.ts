import { setTimeout as sleep } from "node:timers/promises";

/**
 * Retries check until it passes or timeoutMs runs out, then throws its last error. For state that
 * controllers reach asynchronously; the timeout bounds the test, it does not measure anything.
 */
export async function eventually(what: string, check: () => unknown, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      last = err;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${what}: not true within ${timeoutMs / 1000}s: ${last instanceof Error ? last.message : String(last)}`,
      );
    }
    await sleep(100);
  }
}
