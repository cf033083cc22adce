// Mutations of real API server answers (lists and watch streams), for the answer fuzzers: cut,
// bytes flipped, invalid UTF-8, HTML around them, other content types, keys dropped, kinds and
// versions changed, items dropped or all of them.
import type { random } from "./fuzz.ts";

export type Mutation = { body: Buffer; contentType: string; dropped: Set<string> };
export type Rng = ReturnType<typeof random>;

export const mutators: Array<(rng: Rng, text: string) => Omit<Mutation, "dropped"> & { dropped?: Set<string> }> = [
  (rng, t) => ({ body: Buffer.from(t.slice(0, rng.int(t.length))), contentType: "application/json" }),
  (rng, t) => {
    const b = Buffer.from(t);
    for (let i = rng.int(4) + 1; i > 0; i--) b[rng.int(b.length)] = rng.int(256);
    return { body: b, contentType: "application/json" };
  },
  (rng, t) => {
    const b = Buffer.from(t);
    const at = rng.int(b.length);
    return {
      body: Buffer.concat([b.subarray(0, at), Buffer.from([0xc3, 0x28]), b.subarray(at)]),
      contentType: "application/json",
    };
  },
  (_rng, t) => ({ body: Buffer.from(`<html><body><pre>${t}</pre></body></html>`), contentType: "text/html" }),
  (_rng, t) => ({ body: Buffer.from(t), contentType: "text/plain" }),
  (rng, t) => structural(rng, t),
  (rng, t) => structural(rng, t),
  (rng, t) => structural(rng, t),
];

/** Decoded, changed in one place, encoded again: valid JSON that may or may not still be a list. */
export function structural(rng: Rng, text: string): Omit<Mutation, "dropped"> & { dropped?: Set<string> } {
  const doc = JSON.parse(text) as Record<string, unknown> & { items?: Array<Record<string, unknown>> };
  const dropped = new Set<string>();
  const items = Array.isArray(doc.items) ? doc.items : [];
  const item = items[rng.int(items.length)] as { metadata?: Record<string, unknown>; kind?: unknown } | undefined;
  switch (rng.int(13)) {
    case 0:
      delete doc.items;
      break;
    case 1:
      doc.items = null as never;
      break;
    case 2:
      doc.kind = rng.pick(["Status", "List", "SecretList", "ConfigMap", 7, null]);
      break;
    case 3:
      doc.apiVersion = rng.pick(["v1", "apps/v1", "", null]);
      break;
    case 4:
      delete doc.metadata;
      break;
    case 5: {
      const i = rng.int(items.length);
      const [gone] = items.splice(i, 1);
      const name = (gone?.metadata as { name?: string } | undefined)?.name;
      if (name) dropped.add(name);
      break;
    }
    case 6:
      if (item) item.kind = rng.pick(["Secret", "Status", 1]);
      break;
    case 7:
      if (item?.metadata) item.metadata.name = rng.pick([undefined, "", 5, null]);
      break;
    case 8:
      if (item?.metadata) item.metadata.namespace = rng.pick(["elsewhere", 3]);
      break;
    case 9:
      if (item) (item as Record<string, unknown>).apiVersion = "v2";
      break;
    case 10:
      if (item) (item as Record<string, unknown>).metadata = "x";
      break;
    case 11:
      // a valid list with nothing in it: what a broken proxy or a wiped cache would say
      for (const gone of items.splice(0)) {
        const name = (gone?.metadata as { name?: string } | undefined)?.name;
        if (name) dropped.add(name);
      }
      break;
    default:
      return {
        body: Buffer.from(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 500 })),
        contentType: "application/json",
      };
  }
  return { body: Buffer.from(JSON.stringify(doc)), contentType: "application/json", dropped };
}

/** A list answer that is valid and lies: some of its items (or all) left out. */
export function lyingList(rng: Rng, text: string): Omit<Mutation, "dropped"> {
  const doc = JSON.parse(text) as { items?: unknown[] };
  const items = Array.isArray(doc.items) ? doc.items : [];
  doc.items = rng.next() < 0.5 ? [] : items.filter(() => rng.next() < 0.5);
  return { body: Buffer.from(JSON.stringify(doc)), contentType: "application/json" };
}
