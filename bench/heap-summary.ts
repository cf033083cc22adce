// bench/heap-summary: where a V8 heap snapshot's bytes are, by kind and constructor (self sizes).
//   node bench/heap-summary.ts FILE.heapsnapshot [--top 30]
// The snapshot from BENCH_HEAP_SNAPSHOT=DIR node bench/sync.ts ... (after the cold start).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

type Snapshot = {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
};

export type HeapRow = { kind: string; name: string; count: number; bytes: number };

/** self sizes summed by kind (object, string, array, code...) and, for objects, constructor name */
export function summarize(snapshot: Snapshot): HeapRow[] {
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const kinds = snapshot.snapshot.meta.node_types[0];
  const rows = new Map<string, HeapRow>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const kind = kinds[snapshot.nodes[i + typeAt] as number] ?? "?";
    // strings by kind only: their text is data, not a type
    const name =
      kind === "object" || kind === "closure" || kind === "native"
        ? (snapshot.strings[snapshot.nodes[i + nameAt] as number] ?? "?")
        : "";
    const key = `${kind}\u0000${name}`;
    const row = rows.get(key) ?? { kind, name, count: 0, bytes: 0 };
    row.count += 1;
    row.bytes += snapshot.nodes[i + sizeAt] as number;
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => b.bytes - a.bytes);
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "30" } },
  });
  const file = positionals[0];
  if (!file) throw new Error("usage: node bench/heap-summary.ts FILE.heapsnapshot [--top 30]");
  const rows = summarize(JSON.parse(readFileSync(file, "utf8")) as Snapshot);
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  const mib = (b: number) => (b / 1048576).toFixed(1);
  console.log(`total ${mib(total)} MiB in ${rows.reduce((s, r) => s + r.count, 0)} heap objects`);
  for (const r of rows.slice(0, Number(values.top)))
    console.log(`${mib(r.bytes).padStart(8)} MiB ${String(r.count).padStart(9)}  ${r.kind} ${r.name}`);
}
