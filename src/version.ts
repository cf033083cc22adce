import { readFileSync } from "node:fs";

export type BuildInfo = { version: string; node: string; platform: string };

// package.json is the parent folder's, from src/version.ts and from dist/version.js alike.
const packageJson = new URL("../package.json", import.meta.url);

export function buildInfo(): BuildInfo {
  const parsed: unknown = JSON.parse(readFileSync(packageJson, "utf8"));
  const version =
    typeof parsed === "object" && parsed !== null && "version" in parsed && typeof parsed.version === "string"
      ? parsed.version
      : "unknown";
  return { version, node: process.versions.node, platform: `${process.platform}/${process.arch}` };
}
