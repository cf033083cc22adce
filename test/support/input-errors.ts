// Assertions on the pure core's InputError: the field it names and what it says.
import assert from "node:assert/strict";
import { InputError } from "../../src/export/errors.ts";

/** fn throws an InputError naming field, with a message matching message. */
export function rejects(fn: () => unknown, field: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InputError, `expected an InputError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, message);
    return true;
  });
}
