// The klutch-bind command as users run it: from the sources and from the built dist/.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { commands } from "../../src/cli/commands.ts";
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

    for (const [name, command] of Object.entries(commands)) {
      it(`${name} --help exits 0 and names every flag its parser accepts, with its default and environment`, async () => {
        // the very definitions the command hands to parseArgs
        const { help } = await command.load();
        const result = await klutchBind(entry, name, "--help");
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stderr, "");
        assert.ok(result.stdout.startsWith(`klutch-bind ${name}: ${command.summary}\n`), result.stdout);
        const words = result.stdout.replace(/\s+/g, " ");
        const flags = Object.entries(help.flags);
        assert.ok(flags.length > 0);
        for (const [flag, def] of flags) {
          const names = `${def.short ? `-${def.short}, ` : ""}--${flag}`;
          assert.match(result.stdout, new RegExp(`^  ${names}( |,|$)`, "m"), `--${flag} has a line of its own`);
          assert.ok(
            typeof def.description === "string" && def.description.trim() !== "",
            `--${flag} has a description`,
          );
          assert.ok(words.includes(def.description.replace(/\s+/g, " ")), `--${flag}'s description is shown`);
          if (def.env) assert.ok(words.includes(`environment: ${def.env}`), `--${flag} names ${def.env}`);
          const constant = def.type === "string" && def.default ? def.default : undefined;
          const shown = def.defaultText ?? constant;
          if (shown) assert.ok(words.includes(`default: ${shown}`), `--${flag} shows its default ${shown}`);
        }
        assert.match(result.stdout, /^examples?:\n {2}klutch-bind /m);
      });
    }

    it("help COMMAND prints what COMMAND --help does; --help and help list every command", async () => {
      const [viaHelp, viaFlag] = await Promise.all([
        klutchBind(entry, "help", "sync"),
        klutchBind(entry, "sync", "--help"),
      ]);
      assert.equal(viaHelp.code, 0);
      assert.equal(viaHelp.stdout, viaFlag.stdout);
      assert.match(viaHelp.stdout, /--metrics-address HOST:PORT/);
      for (const args of [["--help"], ["help"], ["-h"], ["help", "--help"]]) {
        const list = await klutchBind(entry, ...args);
        assert.equal(list.code, 0, args.join(" "));
        for (const [name, command] of Object.entries(commands)) {
          assert.ok(
            list.stdout.includes(`  ${name.padEnd(12)} ${command.summary}\n`),
            `${args.join(" ")} lists ${name}`,
          );
        }
        assert.match(list.stdout, /klutch-bind help COMMAND/);
      }
      const unknown = await klutchBind(entry, "help", "frobnicate");
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command "frobnicate"/);
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
  assert.match(result.stderr, /try 'klutch-bind version --help'/);
  const sync = await klutchBind("src/cli/main.ts", "sync", "--metrics-adress", ":9090");
  assert.equal(sync.code, 2);
  assert.match(sync.stderr, /Unknown option '--metrics-adress'.*\n\(try 'klutch-bind sync --help'\)\n$/s);
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
