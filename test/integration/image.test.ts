// The runtime image `make image` builds without Docker, and the package `make xpkg` embeds it in.
// The image is unpacked into a directory and its entrypoint run confined to it (chroot plus mount
// and PID namespaces, as the image's user; in a user namespace when not root), so nothing from
// this machine's root takes part: its Kubernetes client reaches the control cluster, and it serves
// the function as Crossplane starts it and answers RunFunction calls. The package must carry that
// image and its package.yaml.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { parseAllDocuments } from "yaml";
import { composedKeys } from "../../src/function/composed-keys.ts";
import { seedClaims, xrd } from "../fixtures/xrds.ts";
import { makePki } from "../support/certs.ts";
import { testClusters } from "../support/clusters.ts";
import { desiredJson, functionClient, request } from "../support/function-client.ts";
import { applyCrds } from "../support/manifests.ts";
import { freePort, waitForPort } from "../support/net.ts";
import { crossplaneUnavailable, devDir, repoRoot } from "../support/tools.ts";

const imageTar = join(devDir, "function-klutch-bind-image.tar");
const xpkgFile = join(devDir, "function-klutch-bind.xpkg");
const nodeVersion = /^NODE_VERSION\s*:=\s*(\S+)/m.exec(readFileSync(join(repoRoot, "Makefile"), "utf8"))?.[1];
const asRoot = process.getuid?.() === 0;

type ImageConfig = {
  architecture: string;
  os: string;
  rootfs: { diff_ids: string[] };
  config: {
    Entrypoint?: string[];
    Cmd?: string[];
    User?: string;
    WorkingDir?: string;
    Env?: string[];
    Labels?: Record<string, string>;
  };
};
type Image = { dir: string; config: ImageConfig; layers: string[] };

function run(cmd: string, args: string[]): string {
  const out = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (out.error) throw out.error;
  if (out.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${out.status}: ${out.stderr}`);
  return out.stdout;
}

/** A `docker save`-style tarball (what crane and crossplane write) unpacked: its config and layer files. */
function readImage(tarball: string, dir: string): Image {
  mkdirSync(dir, { recursive: true });
  run("tar", ["-xf", tarball, "-C", dir]);
  const [manifest, ...others] = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Array<{
    Config: string;
    Layers: string[];
  }>;
  assert.ok(manifest !== undefined && others.length === 0, `${tarball} holds one image`);
  const config = JSON.parse(readFileSync(join(dir, manifest.Config), "utf8")) as ImageConfig;
  return { dir, config, layers: manifest.Layers.map((l) => join(dir, l)) };
}

const sha256File = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (d) => hash.update(d))
      .on("end", () => resolve(hash.digest("hex")))
      .on("error", reject);
  });

/** Why the image cannot be run confined here, or undefined when it can. */
function confinementUnavailable(): string | undefined {
  const args = [...(asRoot ? [] : ["--user", "--map-root-user"]), "--mount", "--pid", "--fork", "--", "true"];
  const probe = spawnSync("unshare", args, { encoding: "utf8" });
  if (probe.error) return `unshare: ${probe.error.message}`;
  if (probe.status !== 0) return `unshare ${args.join(" ")} failed: ${probe.stderr.trim()}`;
  return undefined;
}

const unshare = spawnSync("sh", ["-c", "command -v unshare"], { encoding: "utf8" }).stdout.trim();

/**
 * argv run as the image runs it: root directory `root`, the image's working directory, environment
 * and user (as root; otherwise as the root of a user namespace, the one user it maps), its own
 * mount and PID namespaces with /proc, this machine's network.
 */
function confined(root: string, image: Image, argv: string[], extraEnv: Record<string, string> = {}) {
  const [uid, gid] = (image.config.config.User ?? "0:0").split(":");
  const args = [
    ...(asRoot ? [] : ["--user", "--map-root-user"]),
    "--mount",
    "--pid",
    "--fork",
    "--kill-child=SIGTERM",
    "--mount-proc=/proc",
    `--root=${root}`,
    `--wd=${image.config.config.WorkingDir ?? "/"}`,
    ...(asRoot ? [`--setuid=${uid}`, `--setgid=${gid ?? uid}`] : []),
    "--",
    ...argv,
  ];
  const env = Object.fromEntries(
    (image.config.config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
  );
  return spawn(unshare, args, { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * Signals the program a confined() started: unshare --fork ignores SIGTERM and SIGINT while it
 * waits, and a changed uid clears --kill-child's parent-death signal, so it goes to unshare's child
 * (by its PID in this namespace; as the init of its PID namespace it gets only signals it handles,
 * and SIGKILL).
 */
function signalConfined(child: ReturnType<typeof confined>, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // unshare has exited meanwhile
  }
  for (const pid of children) process.kill(pid, signal);
  if (signal === "SIGKILL") child.kill("SIGKILL");
}

function output(child: ReturnType<typeof confined>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })));
}

const skip = crossplaneUnavailable() ?? confinementUnavailable();

describe("the runtime image (make image)", { skip }, () => {
  let work: string;
  let image: Image;
  let root: string;
  before(() => {
    assert.ok(existsSync(imageTar), `${imageTar} is missing: make image (make test builds it first)`);
    work = mkdtempSync(join(tmpdir(), "klb-image-"));
    image = readImage(imageTar, join(work, "image"));
    root = join(work, "root");
    mkdirSync(root);
    for (const layer of image.layers) {
      const names = run("tar", ["-tzf", layer]).split("\n");
      assert.deepEqual(
        names.filter((n) => /(^|\/)\.wh\./.test(n)),
        [],
        "no whiteouts: the layers only add files",
      );
      run("tar", ["-xzf", layer, "-C", root]);
    }
    // what a container runtime provides: / that the image's user can enter, a /proc to mount on
    chmodSync(root, 0o755);
    mkdirSync(join(root, "proc"), { recursive: true });
  });
  after(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("is configured to run klutch-bind's function as a non-root user", () => {
    const { config } = image.config;
    assert.equal(`${image.config.os}/${image.config.architecture}`, "linux/amd64");
    assert.deepEqual(config.Entrypoint, ["/usr/local/bin/klutch-bind"]);
    assert.deepEqual(config.Cmd, ["function"]);
    assert.equal(config.User, "65532:65532");
    assert.equal(config.WorkingDir, "/app");
    assert.ok(config.Env?.includes("NODE_ENV=production"));
    assert.equal(image.layers.length, 4, "libraries, node, node_modules, our code");
    const passwd = readFileSync(join(root, "etc/passwd"), "utf8");
    assert.match(passwd, /^nonroot:x:65532:65532:/m);
    const entrypoint = statSync(join(root, "usr/local/bin/klutch-bind"));
    assert.ok(entrypoint.mode & 0o001, "the entrypoint is executable by anyone");
    assert.deepEqual(readdirSync(join(root, "app")).sort(), [
      "deploy",
      "dist",
      "node_modules",
      "package.json",
      "proto",
    ]);
    assert.deepEqual(readdirSync(join(root, "app/deploy")), ["app-cluster"], "only the app cluster's CRDs of deploy/");
    assert.ok(!existsSync(join(root, "app/node_modules/typescript")), "no development dependencies");
    if (asRoot) assert.equal(statSync(join(root, "home/nonroot")).uid, 65532);
  });

  it("runs its own Node.js with nothing from this machine (as uid 65532 when the tests run as root)", async () => {
    const script = `const fs = require("node:fs"); console.log(JSON.stringify({
      version: process.version, uid: process.getuid(), user: require("node:os").userInfo().username,
      root: fs.readdirSync("/").sort(),
      libraries: [...new Set(fs.readFileSync("/proc/self/maps", "utf8").split("\\n").map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.startsWith("/")))].sort(),
    }))`;
    const got = await output(confined(root, image, ["/usr/local/bin/node", "-e", script]));
    assert.equal(got.code, 0, got.stderr);
    const seen = JSON.parse(got.stdout) as {
      version: string;
      uid: number;
      user: string;
      root: string[];
      libraries: string[];
    };
    assert.equal(seen.version, `v${nodeVersion}`);
    assert.deepEqual(seen.root, ["app", "etc", "home", "lib", "lib64", "proc", "tmp", "usr"]);
    if (asRoot) assert.deepEqual([seen.uid, seen.user], [65532, "nonroot"]);
    // every file mapped is the image's: node and the Debian libraries it was built with
    for (const lib of seen.libraries) assert.ok(existsSync(join(root, lib)), `${lib} comes from the image`);
    for (const lib of ["libc.so.6", "libstdc++.so.6", "libgcc_s.so.1"]) {
      assert.ok(
        seen.libraries.some((l) => l.includes(lib)),
        `${lib} is loaded (${seen.libraries.join(", ")})`,
      );
    }

    const version = await output(confined(root, image, [...(image.config.config.Entrypoint ?? []), "version"]));
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, new RegExp(`^klutch-bind \\S+ \\(node ${nodeVersion}, linux/x64\\)`));
  });

  it("runs the Kubernetes client of the CLI and the sync: klutch-bind exports against the control cluster", async () => {
    const { control } = await testClusters();
    // this file may be the first of its run on these clusters: our CRDs are not there by themselves
    for (const crd of ["apiserviceexporttemplate", "appclusterbinding", "klutch-appclusterbinding"])
      await applyCrds(control, `deploy/control-plane/${crd}-crd.yaml`);
    copyFileSync(control.kubeconfigPath, join(root, "tmp/control.kubeconfig"));
    if (asRoot) chownSync(join(root, "tmp/control.kubeconfig"), 65532, 65532);
    const argv = [...(image.config.config.Entrypoint ?? []), "exports", "--kubeconfig=/tmp/control.kubeconfig"];
    const got = await output(confined(root, image, argv));
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /^(no bindable APIs|API +VERSION)/);
  });

  it("runs the konnector as bind URL's Deployment starts it, and carries the CRD bind URL installs", async () => {
    const argv = [...(image.config.config.Entrypoint ?? []), "konnector", "--help"];
    const got = await output(confined(root, image, argv));
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /--app-account NAMESPACE\/NAME/);
    assert.ok(
      existsSync(join(root, "app/deploy/app-cluster/klutch-apiservicebinding-crd.yaml")),
      "the APIServiceBinding CRD beside dist/",
    );
  });

  it("serves the function as Crossplane starts it (TLS_SERVER_CERTS_DIR) and a RunFunction call composes the template", async () => {
    const pki = makePki();
    const certs = join(root, "tls");
    mkdirSync(certs);
    for (const file of ["tls.crt", "tls.key", "ca.crt"]) {
      copyFileSync(join(pki.serverDir, file), join(certs, file));
      if (asRoot) chownSync(join(certs, file), 65532, 65532);
    }
    const port = await freePort();
    const child = confined(
      root,
      image,
      [...(image.config.config.Entrypoint ?? []), ...(image.config.config.Cmd ?? []), `--address=127.0.0.1:${port}`],
      { TLS_SERVER_CERTS_DIR: "/tls" },
    );
    const done = output(child);
    try {
      await Promise.race([
        waitForPort(port, "the function in the image"),
        done.then((exit) => {
          throw new Error(`the function exited (${exit.code}) before it listened: ${exit.stderr}`);
        }),
      ]);
      const client = functionClient(`127.0.0.1:${port}`, {
        creds: credentials.createSsl(pki.ca, pki.crossplaneLikeClient.key, pki.crossplaneLikeClient.cert),
      });
      const xr = {
        apiVersion: "bind.klutch.dev/v1alpha1",
        kind: "ServiceExport",
        metadata: { name: "postgresql" },
        spec: { xrd: "postgresqlinstances.anynines.com", permissionClaims: seedClaims },
      };
      try {
        const first = await client.run(request({ tag: "image-1", xr }));
        assert.equal(first.meta.tag, "image-1");
        assert.equal(first.requirements?.resources?.xrd?.match_name, "postgresqlinstances.anynines.com");
        const second = await client.run(request({ tag: "image-2", xr, required: { xrd: [xrd({})] } }));
        const desired = desiredJson(second);
        assert.deepEqual(Object.keys(desired).sort(), Object.values(composedKeys).sort());
        assert.equal(desired[composedKeys.template]?.kind, "APIServiceExportTemplate");
        assert.deepEqual(desired[composedKeys.template]?.spec, {
          APIServiceSelector: { group: "anynines.com", resource: "postgresqlinstances", version: "v1" },
          permissionClaims: seedClaims,
        });
        assert.equal(second.conditions.find((c) => c.type === "Exported")?.status, "STATUS_CONDITION_TRUE");
      } finally {
        client.close();
      }
    } finally {
      signalConfined(child, "SIGTERM");
    }
    const killer = setTimeout(() => signalConfined(child, "SIGKILL"), 15_000);
    const exit = await done;
    clearTimeout(killer);
    assert.equal(exit.code, 0, `the function stops cleanly on SIGTERM: ${exit.stderr}`);
  });
});

describe("the package (make xpkg)", { skip: crossplaneUnavailable() }, () => {
  let work: string;
  before(() => {
    assert.ok(existsSync(xpkgFile), `${xpkgFile} is missing: make xpkg (make test builds it first)`);
    assert.ok(existsSync(imageTar), `${imageTar} is missing: make image`);
    work = mkdtempSync(join(tmpdir(), "klb-xpkg-"));
  });
  after(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it("carries the runtime image: its layers and config, then package.yaml", async () => {
    const pkg = readImage(xpkgFile, join(work, "xpkg"));
    const image = readImage(imageTar, join(work, "image"));
    const imageLayers = image.config.rootfs.diff_ids;
    assert.deepEqual(pkg.config.rootfs.diff_ids.slice(0, imageLayers.length), imageLayers, "the image's layers first");
    for (const key of ["Entrypoint", "Cmd", "User", "WorkingDir", "Env"] as const) {
      assert.deepEqual(pkg.config.config[key], image.config.config[key], `the package runs as the image: ${key}`);
    }
    assert.deepEqual(pkg.config.config.Entrypoint, ["/usr/local/bin/klutch-bind"]);
    assert.equal(pkg.config.config.User, "65532:65532");
    for (const layer of pkg.layers) {
      assert.equal(`${await sha256File(layer)}.tar.gz`, layer.slice(layer.lastIndexOf("/") + 1), "blob digests hold");
    }

    // Crossplane finds the package's own layer by this label
    const base = Object.entries(pkg.config.config.Labels ?? {}).filter(([, v]) => v === "base");
    assert.equal(base.length, 1, "one layer labeled as the package's base");
    const digest = (base[0]?.[0] ?? "").replace("io.crossplane.xpkg:sha256:", "");
    const packageYaml = run("tar", ["-xzOf", join(pkg.dir, `${digest}.tar.gz`), "package.yaml"]);
    const docs = parseAllDocuments(packageYaml).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string }; spec?: unknown },
    );
    const meta = docs[0] as {
      apiVersion?: string;
      kind: string;
      metadata: { name: string };
      spec?: { capabilities?: string[] };
    };
    assert.equal(meta.apiVersion, "meta.pkg.crossplane.io/v1");
    assert.equal(meta.kind, "Function");
    assert.equal(meta.metadata.name, "function-klutch-bind");
    assert.deepEqual(meta.spec?.capabilities, ["composition", "operation"]);
    assert.ok(
      docs.some((d) => d.kind === "CustomResourceDefinition" && d.metadata.name === "inputs.bind.klutch.dev"),
      "the function's Input CRD",
    );
  });
});
