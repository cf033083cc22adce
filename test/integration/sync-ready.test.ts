// A new binding reports Ready as soon as its exports are in sync, not at the next periodic resync.
import assert from "node:assert/strict";
import { it } from "node:test";
import { refs } from "../../src/api/resources.ts";
import { conditionOf } from "../../src/kube/conditions.ts";
import { eventually } from "../support/eventually.ts";
import { syncEnv } from "../support/sync-env.ts";

it("reports a new binding Ready within seconds, with the periodic resync ten minutes away", async () => {
  const env = await syncEnv({ resyncMs: 600_000 });
  const started = Date.now();
  await env.bind("prompt", []);
  await eventually(
    "Ready",
    async () => {
      const read = await env.controlClient.get(refs.bindings, "prompt", env.bindingNamespace);
      assert.equal(conditionOf(read, "Ready")?.status, "True", JSON.stringify(read?.status));
    },
    10_000,
  );
  assert.ok(Date.now() - started < 10_000);
});
