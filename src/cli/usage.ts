/** A mistake in how the command was called: reported in one line with exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** node:util parseArgs reports unknown or malformed flags with these codes. */
export function isUsageError(err: unknown): err is Error {
  if (err instanceof UsageError) return true;
  return (
    err instanceof Error && "code" in err && typeof err.code === "string" && err.code.startsWith("ERR_PARSE_ARGS_")
  );
}
