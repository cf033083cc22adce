/** Input that cannot be exported, naming the field (a JSON path) and the offending value. */
export class InputError extends Error {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, problem: string, value?: unknown) {
    super(`${field}: ${problem}${value === undefined ? "" : `, got ${describe(value)}`}`);
    this.name = "InputError";
    this.field = field;
    this.value = value;
  }
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return String(value);
}
