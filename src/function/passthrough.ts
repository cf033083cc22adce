// Desired resources of earlier pipeline steps travel through this function unread. Instead of
// decoding them into Structs and encoding them again (most of the work on a large request), the
// request's desired.resources map entries are cut out as raw bytes, and the same bytes are put
// back into the response's desired state. A resource the handler sets under the same name wins.
//
// Wire format facts used here: a map<string, Resource> field is a repeated embedded message of
// (key = 1, value = 2); State has composite = 1 and resources = 2; desired is field 3 of the
// request and field 2 of the response; a later map entry with the same key replaces an earlier one.

/** Raw map entries (each with its tag and length) by resource name, in request order. */
export type RawEntries = Map<string, Buffer>;

/** Where a decoded request's desired state (and the response made from it) keeps its raw entries. */
export const rawDesiredEntries: unique symbol = Symbol("raw desired resources");

const lengthDelimited = 2;
const requestDesired = 3;
const responseDesired = 2;
const stateResources = 2;
const entryKey = 1;

function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (let at = pos; at < buf.length; at++) {
    const byte = buf[at] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at + 1];
    shift += 7;
    if (shift > 63) break;
  }
  throw new RangeError("truncated or overlong varint");
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** The end of the field whose value starts at pos. */
function skip(buf: Buffer, pos: number, wireType: number): number {
  switch (wireType) {
    case 0:
      return readVarint(buf, pos)[1];
    case 1:
      return pos + 8;
    case lengthDelimited: {
      const [length, start] = readVarint(buf, pos);
      return start + length;
    }
    case 5:
      return pos + 4;
    default:
      throw new RangeError(`unsupported wire type ${wireType}`);
  }
}

type Field = { number: number; wireType: number; start: number; valueStart: number; end: number };

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  while (pos < buf.length) {
    const [tag, valueStart] = readVarint(buf, pos);
    const wireType = tag & 7;
    const end = skip(buf, valueStart, wireType);
    if (end > buf.length) throw new RangeError("field runs past the end of the message");
    yield { number: Math.floor(tag / 8), wireType, start: pos, valueStart, end };
    pos = end;
  }
}

function body(buf: Buffer, field: Field): Buffer {
  const [length, start] = readVarint(buf, field.valueStart);
  return buf.subarray(start, start + length);
}

function keyOf(entry: Buffer): string {
  for (const f of fields(entry)) {
    if (f.number === entryKey && f.wireType === lengthDelimited) return body(entry, f).toString("utf8");
  }
  return "";
}

function tagged(fieldNumber: number, value: Buffer): Buffer {
  return Buffer.concat([varint(fieldNumber * 8 + lengthDelimited), varint(value.length), value]);
}

/**
 * Splits a RunFunctionRequest into the request without its desired resources, and those
 * resources as raw entries. Throws RangeError on bytes that are not well-formed protobuf; the
 * caller then decodes the request whole, which reports the error as protobufjs does.
 */
export function splitDesiredResources(request: Buffer): { rest: Buffer; entries: RawEntries } {
  const entries: RawEntries = new Map();
  const parts: Buffer[] = [];
  let copiedTo = 0;
  for (const f of fields(request)) {
    if (f.number !== requestDesired || f.wireType !== lengthDelimited) continue;
    const state = body(request, f);
    const kept: Buffer[] = [];
    for (const s of fields(state)) {
      if (s.number === stateResources && s.wireType === lengthDelimited) {
        const raw = state.subarray(s.start, s.end);
        const key = keyOf(body(state, s));
        entries.delete(key); // a later entry replaces an earlier one, and takes its place in order
        entries.set(key, raw);
      } else {
        kept.push(state.subarray(s.start, s.end));
      }
    }
    parts.push(request.subarray(copiedTo, f.start), tagged(requestDesired, Buffer.concat(kept)));
    copiedTo = f.end;
  }
  if (entries.size === 0) return { rest: request, entries };
  parts.push(request.subarray(copiedTo));
  return { rest: Buffer.concat(parts), entries };
}

/**
 * A RunFunctionResponse encoded without its desired state, plus that state encoded on its own,
 * become one response whose desired resources are the raw entries (less those the handler set)
 * and then the handler's own.
 */
export function joinDesiredResources(
  responseWithoutDesired: Buffer,
  desiredState: Buffer,
  entries: RawEntries,
  setByHandler: ReadonlySet<string>,
): Buffer {
  const parts: Buffer[] = [];
  let length = desiredState.length;
  for (const [key, raw] of entries) {
    if (setByHandler.has(key)) continue;
    parts.push(raw);
    length += raw.length;
  }
  if (length === 0) return responseWithoutDesired;
  // one copy of the passed-through bytes, straight into the response
  return Buffer.concat([
    responseWithoutDesired,
    varint(responseDesired * 8 + lengthDelimited),
    varint(length),
    ...parts,
    desiredState,
  ]);
}
