import { type DestinationStream, type Logger, pino } from "pino";

/** JSON lines on stdout (or destination); `debug` lowers the level from info. */
export function createLogger(component: string, debug: boolean, destination?: DestinationStream): Logger {
  const options = { level: debug ? "debug" : "info", base: { component }, serializers: errorSerializers };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * The logger with errors logged safely, for loggers made elsewhere (tests, embedders): pino's own
 * error serializer copies every field of an error, and an error may carry what a cluster we do not
 * trust answered.
 */
export function withSafeErrors(logger: Logger): Logger {
  return logger.child({}, { serializers: errorSerializers });
}

/** Longest error message a log line repeats (a Status message is already cut to 1000 characters). */
export const maxLoggedErrorChars = 2000;

/** An error as a log line holds it: its type, message (cut) and code, never its other fields. */
export type LoggedError = { type: string; message: string; code?: number | string };

export function serializeError(value: unknown): LoggedError | string {
  if (!(value instanceof Error)) return cut(typeof value === "string" ? value : String(value));
  const logged: LoggedError = { type: cut(value.name, 64), message: cut(value.message) };
  const code: unknown = (value as { code?: unknown }).code;
  if (typeof code === "number" && Number.isFinite(code)) logged.code = code;
  else if (typeof code === "string") logged.code = cut(code, 64);
  return logged;
}

const errorSerializers = { err: serializeError, error: serializeError };

function cut(text: string, max = maxLoggedErrorChars): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}
