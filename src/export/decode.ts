// Readers for untrusted JSON: each returns the typed value or throws an InputError naming the field.
import { InputError } from "./errors.ts";

export type JsonObject = { [key: string]: unknown };

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function object(value: unknown, field: string): JsonObject {
  if (!isObject(value)) throw new InputError(field, "must be an object", value);
  return value;
}

export function optionalObject(value: unknown, field: string): JsonObject | undefined {
  return value === undefined || value === null ? undefined : object(value, field);
}

export function string(value: unknown, field: string): string {
  if (typeof value !== "string") throw new InputError(field, "must be a string", value);
  return value;
}

export function nonEmptyString(value: unknown, field: string): string {
  const s = string(value, field);
  if (s === "") throw new InputError(field, "must not be empty");
  return s;
}

export function optionalString(value: unknown, field: string): string | undefined {
  return value === undefined || value === null ? undefined : string(value, field);
}

export function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new InputError(field, "must be true or false", value);
  return value;
}

export function list(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new InputError(field, "must be a list", value);
  return value;
}

export function optionalList(value: unknown, field: string): unknown[] | undefined {
  return value === undefined || value === null ? undefined : list(value, field);
}

export function optionalStringList(value: unknown, field: string): string[] | undefined {
  return optionalList(value, field)?.map((item, i) => string(item, `${field}[${i}]`));
}

export function stringMap(value: unknown, field: string): Record<string, string> {
  const obj = object(value, field);
  // fromEntries defines every key as its own property ("__proto__" too, which assignment would lose)
  return Object.fromEntries(Object.entries(obj).map(([key, v]) => [key, string(v, `${field}.${key}`)]));
}

export function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new InputError(field, "must be a positive whole number", value);
  }
  return value;
}

export function oneOf<T extends string>(value: unknown, allowed: readonly T[], field: string): T {
  const s = string(value, field);
  if (!(allowed as readonly string[]).includes(s)) {
    throw new InputError(field, `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}`, s);
  }
  return s as T;
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** RFC 1123 label characters (callers bound the length). */
export function isDnsLabel(s: string): boolean {
  return dnsLabel.test(s);
}

/** A Kubernetes object name (DNS subdomain, RFC 1123). */
export function dnsSubdomain(value: unknown, field: string): string {
  const s = nonEmptyString(value, field);
  if (s.length > 253 || !s.split(".").every((part) => dnsLabel.test(part))) {
    throw new InputError(field, "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')", s);
  }
  return s;
}

/** A namespace name (DNS label, RFC 1123). */
export function namespaceName(value: unknown, field: string): string {
  const s = nonEmptyString(value, field);
  if (s.length > 63 || !dnsLabel.test(s)) {
    throw new InputError(field, "must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63)", s);
  }
  return s;
}

const dns1035Label = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Names one thing: a wildcard or a subresource gets an error of its own, clearer than a pattern. */
function single(s: string, field: string, what: string): void {
  if (s.includes("*")) throw new InputError(field, `must name one ${what}: wildcards are refused`, s);
}

/** An API group: "" (the core group) or a DNS subdomain; never a wildcard. */
export function apiGroup(value: unknown, field: string): string {
  const s = string(value, field);
  if (s === "") return s;
  single(s, field, "API group");
  if (s.length > 253 || !s.split(".").every((part) => dnsLabel.test(part))) {
    throw new InputError(field, 'must be "" (the core group) or a lowercase RFC 1123 subdomain, e.g. apps', s);
  }
  return s;
}

/** A resource's plural name (RFC 1035 label, as CRDs require): no wildcard, no subresource. */
export function resourceName(value: unknown, field: string): string {
  const s = nonEmptyString(value, field);
  single(s, field, "resource");
  if (s.includes("/")) {
    throw new InputError(field, "must be a resource, not a subresource (RESOURCE/SUBRESOURCE)", s);
  }
  if (s.length > 63 || !dns1035Label.test(s)) {
    throw new InputError(
      field,
      "must be a lowercase plural resource name (a-z, 0-9, '-', starting with a letter, at most 63), e.g. secrets",
      s,
    );
  }
  return s;
}

/** An API version name (RFC 1123 label), e.g. v1 or v1beta1. */
export function versionName(value: unknown, field: string): string {
  const s = nonEmptyString(value, field);
  single(s, field, "version");
  if (s.length > 63 || !dnsLabel.test(s)) {
    throw new InputError(field, "must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63), e.g. v1", s);
  }
  return s;
}
