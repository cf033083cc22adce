// The klutch-bind command as users run it: from the sources and from the built dist/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

async function klutchBind(entry: string, ...args: string[]) {
  return run(process.execPath, [entry, ...args], { cwd: repoRoot }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}

for (const entry of ["src/cli/main.ts", "dist/cli/main.js"]) {
  describe(`klutch-bind (${entry})`, () => {
    it("prints its version as text and as JSON", async () => {
      const text = await klutchBind(entry, "version");
      assert.equal(text.code, 0);
      assert.match(text.stdout, /^klutch-bind \d+\.\d+\.\d+ \(node 2[2-9]\.\d+\.\d+, linux\/x64\)\n$/);
      const json = await klutchBind(entry, "version", "-o", "json");
      assert.equal((JSON.parse(json.stdout) as { node: string }).node, process.versions.node);
    });

    it("rejects an unknown command and an unknown output format with exit code 2", async () => {
      const unknown = await klutchBind(entry, "frobnicate");
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command "frobnicate"/);
      const badFormat = await klutchBind(entry, "version", "-o", "yaml");
      assert.equal(badFormat.code, 2);
      assert.match(badFormat.stderr, /--output must be "text" or "json", got "yaml"/);
    });
  });
}

it("reports an unknown flag as a usage error, not a crash", async () => {
  const result = await klutchBind("src/cli/main.ts", "version", "--colour");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^klutch-bind: Unknown option '--colour'/);
});

it("refuses a --kubeconfig-secrets policy it does not know, naming the ones it does", async () => {
  const result = await klutchBind("src/cli/main.ts", "sync", "--kubeconfig-secrets", "any");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^klutch-bind: --kubeconfig-secrets must be one of marked, same-namespace, got "any"/);
});

it("refuses a --heap-growth that is not a whole percent", async () => {
  const result = await klutchBind("src/cli/main.ts", "sync", "--heap-growth=-5");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^klutch-bind: --heap-growth must be a whole percent from 0 to 1000, got "-5"/);
});

it("refuses a --service-cidr that is not a network, naming it", async () => {
  const result = await klutchBind("src/cli/main.ts", "sync", "--service-cidr", "10.96.0.0/12,10.300.0.0/16");
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^klutch-bind: --service-cidr: "10.300.0.0\/16" is not a network/);
});

describe("klutch-bind function (the server as Crossplane starts it)", () => {
  it("serves with only --insecure, and exits 0 after SIGTERM", async () => {
    const { spawn } = await import("node:child_process");
    const { createInterface } = await import("node:readline");
    const { functionClient, request } = await import("../support/function-client.ts");
    const child = spawn(process.execPath, ["src/cli/main.ts", "--insecure", "--address", "127.0.0.1:0", "--debug"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: child.stdout });
    const logs: Array<{ msg: string; port?: number; tag?: string }> = [];
    const listening = new Promise<number>((resolve) => {
      lines.on("line", (line) => {
        const entry = JSON.parse(line) as { msg: string; port?: number };
        logs.push(entry);
        if (entry.msg === "function server listening" && entry.port) resolve(entry.port);
      });
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const port = await listening;
    const client = functionClient(`127.0.0.1:${port}`);
    const rsp = await client.run(
      request({
        tag: "cli",
        xr: {
          apiVersion: "bind.klutch.dev/v1alpha1",
          kind: "ServiceExport",
          metadata: { name: "x" },
          spec: { xrd: "a.b" },
        },
      }),
    );
    client.close();
    assert.equal(rsp.meta.tag, "cli");
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.ok(
      logs.some((l) => l.msg === "RunFunction" && l.tag === "cli"),
      "one debug line per call, with the tag",
    );
    assert.ok(logs.some((l) => l.msg === "function server stopped"));
  });

  it("explains what TLS needs when neither certificates nor --insecure are given", async () => {
    const result = await klutchBind("src/cli/main.ts", "function", "--address", "127.0.0.1:0");
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /TLS needs --tls-certs-dir \(or TLS_SERVER_CERTS_DIR\) holding tls\.crt, tls\.key and ca\.crt; or pass --insecure/,
    );
  });
});
