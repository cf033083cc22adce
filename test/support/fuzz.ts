// Random and mutated RunFunctionRequests: broken bytes, wrong types, huge strings, deep nesting.
import { serviceDefinition } from "../../src/function/proto.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { request } from "./function-client.ts";

const method = serviceDefinition("apiextensions.fn.proto.v1.FunctionRunnerService").RunFunction;
if (method === undefined) throw new Error("no RunFunction");
export const runFunctionPath = method.path;
const encode = (r: ReturnType<typeof request>) => method.requestSerialize(r);

/** A small deterministic PRNG, so a failing case can be replayed from its seed. */
export function random(seed: number) {
  let state = Math.imul(seed, 2654435761) >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let i = 0; i < 4; i++) next(); // small seeds start with small states
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  return { next, int, pick };
}

type Rng = ReturnType<typeof random>;

function weirdValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.next() * 1e308 * (rng.next() < 0.5 ? -1 : 1);
    case 2:
      return "x".repeat(rng.int(3) === 0 ? 200_000 : rng.int(40));
    case 3:
      return rng.next() < 0.5;
    case 4:
      return String.fromCharCode(...Array.from({ length: rng.int(20) }, () => rng.int(0xd7ff)));
    case 5:
      return Array.from({ length: rng.int(5) }, () => weirdValue(rng, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: rng.int(5) }, (_, i) => [`k${i}`, weirdValue(rng, depth + 1)]));
  }
}

/** A Struct must be an object: wrap anything else. */
function asObject(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : { value };
}

function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < levels; i++) value = { n: value };
  return value;
}

const valid = {
  apiVersion: "bind.klutch.dev/v1alpha1",
  kind: "ServiceExport",
  metadata: { name: "fuzz" },
  spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
};

/** One fuzz case: the bytes to send as a RunFunctionRequest. */
export function fuzzCase(seed: number): Buffer {
  const rng = random(seed);
  const kind = rng.int(6);
  if (kind === 0) {
    // a valid request with bytes flipped, cut or spliced
    const bytes = Buffer.from(encode(request({ tag: `t${seed}`, xr: valid, required: { xrd: [xrd({})] } })));
    const mutations = 1 + rng.int(8);
    for (let i = 0; i < mutations; i++) {
      const at = rng.int(bytes.length);
      bytes[at] = rng.int(256);
    }
    return rng.int(3) === 0 ? bytes.subarray(0, rng.int(bytes.length)) : bytes;
  }
  if (kind === 1) return Buffer.from(Array.from({ length: rng.int(2000) }, () => rng.int(256)));
  if (kind === 2) {
    // the right shape with the wrong types in it
    const xr = {
      ...valid,
      spec: {
        xrd: weirdValue(rng),
        version: weirdValue(rng),
        permissionClaims: weirdValue(rng),
        templateNamespace: weirdValue(rng),
      },
    };
    return encode(
      request({
        xr: xr as Record<string, unknown>,
        required: { xrd: [asObject(weirdValue(rng))] },
        input: { x: weirdValue(rng) },
      }),
    );
  }
  if (kind === 3) {
    // a plausible XRD with wrong types in it
    const broken = xrd({});
    (broken.spec as Record<string, unknown>)[rng.pick(["group", "names", "versions", "scope"])] = weirdValue(rng);
    return encode(request({ xr: valid, required: { xrd: [broken] } }));
  }
  if (kind === 4) return encode(request({ xr: { ...valid, spec: { ...valid.spec, deep: nested(rng.int(470)) } } }));
  return encode(
    request({ xr: { ...valid, metadata: { name: "x".repeat(rng.int(500_000)) } }, required: { xrd: [xrd({})] } }),
  );
}
