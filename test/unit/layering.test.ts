// The layers of src/ as README.md, docs/development.md and the rooms' README.md files describe them,
// read from the import statements of src/**/*.ts: src/api holds pure definitions, src/export is
// the pure core (no Kubernetes, no gRPC, no network), nothing the CLI's bind, the web page or the
// app account share reaches into the sync, and the sync's mirroring does without the binding
// controller (so a konnector in the app cluster can run it, issue 26), which the konnector
// (src/konnector) runs without the sync's controllers.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { describe, it } from "node:test";
import { repoRoot } from "../support/tools.ts";

type Import = { specifier: string; typeOnly: boolean };

const comment = /^\s*(\/\/|\*|\/\*)/;

/** The modules a TypeScript file imports or re-exports, statically or dynamically. */
function importsOf(text: string): Import[] {
  const found: Import[] = [];
  for (const m of text.matchAll(/^(import|export)\s([^;"=]*?)(?<=[\s}*])from\s*"([^"]+)"/gms)) {
    const clause = (m[2] ?? "").trim();
    const named = /^\{([^}]*)\}$/s.exec(clause)?.[1];
    const names = named
      ?.split(",")
      .map((n) => n.trim())
      .filter((n) => n !== "");
    const typeOnly =
      clause.startsWith("type ") ||
      (names !== undefined && names.length > 0 && names.every((n) => n.startsWith("type ")));
    found.push({ specifier: m[3] ?? "", typeOnly });
  }
  for (const m of text.matchAll(/^import\s*"([^"]+)"/gm)) found.push({ specifier: m[1] ?? "", typeOnly: false });
  const code = text
    .split("\n")
    .filter((line) => !comment.test(line))
    .join("\n");
  for (const m of code.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)) found.push({ specifier: m[1] ?? "", typeOnly: false });
  return found;
}

/** What an import names: a file of the repository (as "src/..."), or a package or node: module. */
function target(file: string, specifier: string): string {
  return specifier.startsWith(".") ? posix.normalize(posix.join(posix.dirname(file), specifier)) : specifier;
}

const networkModules = ["node:http", "node:http2", "node:https", "node:net", "node:tls", "node:dns", "node:dgram"];

type Rule = { applies: (file: string) => boolean; offends: (to: string, i: Import) => string | undefined };

const inside = (dir: string) => (path: string) => path.startsWith(`${dir}/`);

const rules: Rule[] = [
  {
    // definitions only: each other, the pure core, node: modules, and the types of Kubernetes objects
    applies: inside("src/api"),
    offends: (to, i) => {
      if (inside("src/api")(to) || inside("src/export")(to)) return undefined;
      if (to.startsWith("node:") && !networkModules.includes(to)) return undefined;
      if (inside("src/kube")(to)) return i.typeOnly ? undefined : "src/api may import only types from src/kube";
      return "src/api holds pure definitions: it imports only src/api, src/export, node: modules and types of src/kube";
    },
  },
  {
    applies: (file) => ["src/bind", "src/web", "src/export", "src/api", "src/app-access"].some((d) => inside(d)(file)),
    offends: (to) =>
      inside("src/sync")(to)
        ? "only the sync (and the CLI starting it) imports src/sync: definitions live in src/api"
        : undefined,
  },
  {
    applies: inside("src/app-access"),
    offends: (to) =>
      inside("src/bind")(to) || inside("src/web")(to) || inside("src/cli")(to)
        ? "src/app-access is shared by bind and the sync: it imports neither's code"
        : undefined,
  },
  {
    // the pure core: no Kubernetes, no gRPC, no network, nothing of the rest of src/
    applies: inside("src/export"),
    offends: (to) => {
      if (inside("src/export")(to)) return undefined;
      if (to.startsWith("node:") && !networkModules.includes(to)) return undefined;
      if (to === "yaml") return undefined;
      return "src/export is the pure core: it imports only src/export, yaml and node: modules without network";
    },
  },
  {
    // the konnector runs the sync's mirroring, never push mode's binding lifecycle nor the control
    // plane's side of pull bindings (only the CRD install of push mode is shared)
    applies: inside("src/konnector"),
    offends: (to) =>
      (inside("src/sync/binding")(to) && to !== "src/sync/binding/consumer-crd.ts") ||
      inside("src/sync/pull")(to) ||
      to === "src/sync/manager.ts"
        ? "src/konnector runs the mirroring (src/sync/mirror) with clients of its own, not the sync's controllers"
        : undefined,
  },
  {
    applies: (file) => !inside("src/konnector")(file) && !inside("src/cli")(file),
    offends: (to) => (inside("src/konnector")(to) ? "only the CLI starts the konnector" : undefined),
  },
  {
    applies: inside("src/sync/mirror"),
    offends: (to) =>
      inside("src/sync/binding")(to) || to === "src/sync/manager.ts"
        ? "src/sync/mirror works with the clients and context handed to it, never with the binding controller"
        : undefined,
  },
];

/** Every import of sources (path -> text) that breaks a rule, as "FILE imports SPECIFIER: WHY". */
function violations(sources: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of sources) {
    for (const i of importsOf(text)) {
      const to = target(file, i.specifier);
      for (const rule of rules) {
        if (!rule.applies(file)) continue;
        const why = rule.offends(to, i);
        if (why !== undefined) found.push(`${file} imports ${i.specifier}: ${why}`);
      }
    }
  }
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

describe("layering of src/", () => {
  it("no file of src/ imports across a layer it may not cross", () => {
    const files = new Map(sources("src").map((f) => [f, readFileSync(join(repoRoot, f), "utf8")]));
    const imports = [...files.values()].reduce((n, text) => n + importsOf(text).length, 0);
    // the scanner sees the imports at all (a broken pattern would find none and pass)
    assert.ok(imports > 500, `found only ${imports} imports in ${files.size} files`);
    assert.deepEqual(violations(files), []);
  });

  it("names the file and the import of each offence", () => {
    const files = new Map([
      [
        "src/api/a.ts",
        'import { KubeClient } from "../kube/client.ts";\nimport type { KubeObject } from "../kube/client.ts";\n',
      ],
      ["src/api/b.ts", 'import {\n  type Logger,\n  pino,\n} from "pino";\nimport { x } from "./a.ts";\n'],
      ["src/bind/c.ts", 'import { refs } from "../sync/resources.ts";\nimport { y } from "../api/resources.ts";\n'],
      ["src/web/d.ts", 'export { z } from "../sync/fence.ts";\n'],
      ["src/export/e.ts", 'import * as grpc from "@grpc/grpc-js";\nconst m = await import("../kube/client.ts");\n'],
      ["src/export/f.ts", 'import { connect } from "node:http2";\nimport { createHash } from "node:crypto";\n'],
      ["src/sync/mirror/g.ts", 'import type { BindingController } from "../binding/controller.ts";\n'],
      ["src/app-access/h.ts", 'import { grantAppAccess } from "../bind/app-access.ts";\n'],
      ["src/sync/binding/i.ts", 'import { reconcileBoundObject } from "../mirror/bound-objects.ts";\n'],
      ["src/cli/j.ts", '// import { a } from "../sync/manager.ts";\nimport { startSync } from "../sync/manager.ts";\n'],
      [
        "src/konnector/k.ts",
        'import { installApi } from "../sync/binding/consumer-crd.ts";\nimport { BindingController } from "../sync/binding/controller.ts";\n',
      ],
      ["src/sync/l.ts", 'import { Konnector } from "../konnector/controller.ts";\n'],
    ]);
    assert.deepEqual(
      violations(files).map((v) => v.split(": ")[0]),
      [
        "src/api/a.ts imports ../kube/client.ts",
        "src/api/b.ts imports pino",
        "src/bind/c.ts imports ../sync/resources.ts",
        "src/web/d.ts imports ../sync/fence.ts",
        "src/export/e.ts imports @grpc/grpc-js",
        "src/export/e.ts imports ../kube/client.ts",
        "src/export/f.ts imports node:http2",
        "src/sync/mirror/g.ts imports ../binding/controller.ts",
        "src/app-access/h.ts imports ../bind/app-access.ts",
        "src/konnector/k.ts imports ../sync/binding/controller.ts",
        "src/sync/l.ts imports ../konnector/controller.ts",
      ],
    );
    assert.match(violations(files)[0] ?? "", /may import only types from src\/kube/);
  });

  it("reads type-only imports as such, and no import inside a comment", () => {
    assert.deepEqual(
      importsOf(
        'import type { A } from "a";\nimport { type B, type C } from "b";\nimport { type D, E } from "c";\n// import { F } from "d";\n',
      ),
      [
        { specifier: "a", typeOnly: true },
        { specifier: "b", typeOnly: true },
        { specifier: "c", typeOnly: false },
      ],
    );
  });
});
