// Reading answers strictly: a body bounded and decoded as UTF-8 and JSON, objects checked to be of
// the resource asked for, watch streams split into bounded lines and checked event by event.
import type * as http from "node:http";
import type { KubeObject, ResourceRef, WatchEvent, WatchOptions } from "./client.ts";
import { asStatus, describeBody, isRecord, KubeApiError, KubeDecodeError } from "./errors.ts";
import type { AnswerStream } from "./h2.ts";

/**
 * An answer read in full; problem says why its body could not be decoded (body is then its text or
 * undefined); bytes is the body's size as sent.
 */
export type Response = {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  problem?: string;
  bytes: number;
};

export function apiVersionOf(ref: ResourceRef): string {
  return ref.group === "" ? ref.version : `${ref.group}/${ref.version}`;
}

export class ResponseTooLarge extends Error {}

/**
 * Reads an answer up to maxBytes (then destroys it and rejects). A body that is not UTF-8, or
 * labelled JSON but not parseable, resolves with a problem: the caller decides what it means.
 * onChunk is told each chunk's size as it arrives; what it throws ends the answer the same way.
 */
export function readResponse(
  res: AnswerStream,
  maxBytes: number,
  onChunk?: (bytes: number) => void,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const fail = (err: unknown) => {
      failed = true;
      res.destroy();
      reject(err);
    };
    res.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        fail(new ResponseTooLarge(`the answer is larger than ${maxBytes} bytes`));
        return;
      }
      try {
        onChunk?.(chunk.length);
      } catch (err) {
        fail(err);
        return;
      }
      chunks.push(chunk);
    });
    res.on("error", reject);
    res.on("close", () => {
      if (!res.complete) reject(new Error(`connection closed before the answer (${res.statusCode}) was complete`));
    });
    res.on("end", () => {
      const status = res.statusCode ?? 0;
      const headers = res.headers;
      if (size === 0) {
        resolve({ status, headers, body: undefined, bytes: size });
        return;
      }
      let text: string;
      try {
        text = strictUtf8.decode(Buffer.concat(chunks));
      } catch {
        resolve({ status, headers, body: undefined, problem: "the answer is not UTF-8 text", bytes: size });
        return;
      }
      if (!(headers["content-type"] ?? "").includes("json")) {
        resolve({
          status,
          headers,
          body: text,
          problem: `expected JSON, ${describeBody(text, headers["content-type"])}`,
          bytes: size,
        });
        return;
      }
      try {
        resolve({ status, headers, body: JSON.parse(text), bytes: size });
      } catch {
        resolve({ status, headers, body: text, problem: `the answer is not valid JSON (${size} bytes)`, bytes: size });
      }
    });
  });
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export type ListPage = { kind: string; resourceVersion: string; items: KubeObject[]; continue: string | undefined };

/**
 * One object of ref (of kind, when known), its apiVersion and kind filled in where a list leaves
 * them out. at names the place in the answer for messages.
 */
export function decodeObject(
  method: string,
  path: string,
  value: unknown,
  ref: ResourceRef,
  kind?: string,
  at = "the answer",
): KubeObject {
  if (!isRecord(value)) throw new KubeDecodeError(method, path, `${at} is not an object`);
  const metadata = value.metadata;
  if (!isRecord(metadata) || typeof metadata.name !== "string" || metadata.name === "") {
    throw new KubeDecodeError(method, path, `${at} has no metadata.name`);
  }
  if (!validSegment(metadata.name)) {
    throw new KubeDecodeError(
      method,
      path,
      `${at} has a metadata.name no API server gives: ${describeName(metadata.name)}`,
    );
  }
  if (metadata.namespace !== undefined && typeof metadata.namespace !== "string") {
    throw new KubeDecodeError(method, path, `${at} has a metadata.namespace that is not a string`);
  }
  if (metadata.namespace !== undefined && metadata.namespace !== "" && !validSegment(metadata.namespace)) {
    throw new KubeDecodeError(
      method,
      path,
      `${at} has a metadata.namespace no API server gives: ${describeName(metadata.namespace)}`,
    );
  }
  const apiVersion = apiVersionOf(ref);
  if (value.apiVersion !== undefined && value.apiVersion !== apiVersion) {
    throw new KubeDecodeError(method, path, `${at} is ${JSON.stringify(value.apiVersion)}, expected ${apiVersion}`);
  }
  if (value.kind !== undefined && (typeof value.kind !== "string" || (kind !== undefined && value.kind !== kind))) {
    throw new KubeDecodeError(
      method,
      path,
      `${at} is of kind ${JSON.stringify(value.kind)}${kind ? `, expected ${kind}` : ""}`,
    );
  }
  if (value.kind === undefined && kind === undefined) throw new KubeDecodeError(method, path, `${at} has no kind`);
  value.apiVersion = apiVersion;
  value.kind ??= kind;
  return value as KubeObject;
}

/** Splits a watch stream into events, line by line, each line bounded and decoded strictly. */
export class WatchDecoder {
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  readonly #path: string;
  readonly #ref: ResourceRef;
  readonly #options: WatchOptions;
  readonly #maxBytes: number;
  #buffered = "";

  constructor(path: string, ref: ResourceRef, options: WatchOptions, maxBytes: number) {
    this.#path = path;
    this.#ref = ref;
    this.#options = options;
    this.#maxBytes = maxBytes;
  }

  write(chunk: Buffer): WatchEvent[] {
    let text: string;
    try {
      text = this.#decoder.decode(chunk, { stream: true });
    } catch {
      throw new KubeDecodeError("GET", this.#path, "the watch sent bytes that are not UTF-8");
    }
    return this.#lines(text, false);
  }

  end(): WatchEvent[] {
    let text: string;
    try {
      text = this.#decoder.decode();
    } catch {
      throw new KubeDecodeError("GET", this.#path, "the watch ended inside a UTF-8 character");
    }
    return this.#lines(text, true);
  }

  #lines(text: string, last: boolean): WatchEvent[] {
    const events: WatchEvent[] = [];
    let from = 0;
    let newline = text.indexOf("\n");
    // a line is parsed from the buffer plus this chunk: only the unfinished tail is kept
    while (newline >= 0) {
      const line = this.#buffered + text.slice(from, newline);
      this.#buffered = "";
      this.#check(line.length);
      const event = this.#parse(line);
      if (event !== undefined) events.push(event);
      from = newline + 1;
      newline = text.indexOf("\n", from);
    }
    this.#buffered += text.slice(from);
    this.#check(this.#buffered.length);
    if (last) {
      const event = this.#parse(this.#buffered);
      this.#buffered = "";
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /** length in UTF-16 units: at most three bytes each, at least one, so the bound holds within a factor */
  #check(length: number): void {
    if (length > this.#maxBytes) {
      throw new KubeDecodeError("GET", this.#path, `a watch event is larger than ${this.#maxBytes} bytes`);
    }
  }

  #parse(line: string): WatchEvent | undefined {
    if (line.trim() === "") return undefined;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      throw new KubeDecodeError(
        "GET",
        this.#path,
        `the watch sent a line that is not JSON (${line.length} characters)`,
      );
    }
    if (!isRecord(event)) throw new KubeDecodeError("GET", this.#path, "the watch sent an event that is not an object");
    const { type, object } = event;
    if (type === "ERROR") {
      const status = asStatus(object);
      throw new KubeApiError(
        "GET",
        this.#path,
        typeof status?.code === "number" ? status.code : 500,
        object,
        "application/json",
      );
    }
    if (type === "BOOKMARK") {
      const rv = isRecord(object) && isRecord(object.metadata) ? object.metadata.resourceVersion : undefined;
      if (typeof rv !== "string") throw new KubeDecodeError("GET", this.#path, "a bookmark without resourceVersion");
      return { type, object: object as KubeObject };
    }
    if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") {
      throw new KubeDecodeError("GET", this.#path, `the watch sent an event of type ${JSON.stringify(type)}`);
    }
    const obj = decodeObject("GET", this.#path, object, this.#ref, this.#options.kind, `a ${type} event`);
    const namespace = this.#options.namespace;
    if (namespace !== undefined && namespace !== "" && obj.metadata.namespace !== namespace) {
      throw new KubeDecodeError("GET", this.#path, `a ${type} event is in another namespace`);
    }
    return { type, object: obj };
  }
}

/**
 * Kubernetes' rule for a name in a path: no "." or "..", no "/" or "%". The first two would address
 * the collection or its parent once a URL is resolved.
 */
export function isPathSegmentName(name: string): boolean {
  return name !== "." && name !== ".." && !/[/%]/.test(name);
}

function validSegment(name: string): boolean {
  return name.length <= 253 && isPathSegmentName(name);
}

function describeName(name: string): string {
  return name.length > 64 ? `${JSON.stringify(name.slice(0, 64))}… (${name.length} characters)` : JSON.stringify(name);
}
