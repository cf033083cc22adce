// bench/heap-summary.ts: a heap snapshot's self sizes summed by kind and constructor.
import assert from "node:assert/strict";
import { it } from "node:test";
import { summarize } from "../../bench/heap-summary.ts";

it("sums self sizes by kind, and objects by constructor, largest first", () => {
  const fields = ["type", "name", "id", "self_size", "edge_count"];
  const kinds = ["hidden", "object", "string"];
  const strings = ["Informer", "some text", "Map"];
  // type, name, id, self_size, edge_count
  const nodes = [1, 0, 1, 100, 0, 1, 0, 3, 50, 0, 2, 1, 5, 400, 0, 2, 1, 7, 600, 0, 1, 2, 9, 10, 0];
  const rows = summarize({
    snapshot: { meta: { node_fields: fields, node_types: [kinds] }, node_count: nodes.length / fields.length },
    nodes,
    strings,
  });
  assert.deepEqual(rows, [
    { kind: "string", name: "", count: 2, bytes: 1000 },
    { kind: "object", name: "Informer", count: 2, bytes: 150 },
    { kind: "object", name: "Map", count: 1, bytes: 10 },
  ]);
});
