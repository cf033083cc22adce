// src/cli/common.ts: what `sync` and `konnector` share. Their flags come from one definition each
// (the help of both reads as it did before they were shared), their numbers are checked alike,
// their kubeconfig is found alike (never ~/.kube/config), and they stop alike.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import {
  lifetimeShare,
  logStopping,
  logUnhandledRejections,
  podKubeconfig,
  positive,
  stopSignals,
} from "../../src/cli/common.ts";
import { konnectorFlags } from "../../src/cli/konnector.ts";
import { syncFlags } from "../../src/cli/sync.ts";
import { UsageError } from "../../src/cli/usage.ts";
import { createLogger } from "../../src/log.ts";

describe("the flags sync and konnector share", () => {
  const shared = [
    "kubeconfig",
    "qps",
    "burst",
    "leader-election-namespace",
    "lease-duration",
    "metrics-address",
    "health-address",
    "debug",
  ] as const;

  it("are defined alike in both, differing only in the words naming the command's cluster and Leases", () => {
    for (const name of shared) {
      const { description: a, defaultText: _a, default: da, ...sync } = syncFlags[name] as Record<string, unknown>;
      const {
        description: b,
        defaultText: _b,
        default: db,
        ...konnector
      } = konnectorFlags[name] as Record<string, unknown>;
      assert.deepEqual(konnector, sync, `--${name}`);
      assert.equal(typeof da, typeof db, `--${name}'s default`);
      assert.equal(typeof a, "string");
      assert.equal(typeof b, "string");
    }
    for (const name of ["metrics-address", "health-address", "lease-duration", "debug"] as const) {
      assert.equal(syncFlags[name].default, konnectorFlags[name].default, `--${name}'s default`);
    }
    assert.equal(syncFlags.burst.description, konnectorFlags.burst.description);
    assert.equal(syncFlags["metrics-address"].description, konnectorFlags["metrics-address"].description);
    assert.equal(syncFlags.debug.description, konnectorFlags.debug.description);
  });

  it("say what they said before they were shared", () => {
    const said: Record<string, [string, string]> = {
      kubeconfig: [
        "the control plane's kubeconfig; without it, the files in KUBECONFIG, merged as kubectl does (never ~/.kube/config)",
        "the app cluster's kubeconfig; without it, the files in KUBECONFIG, merged as kubectl does (never ~/.kube/config)",
      ],
      qps: [
        "requests per second of each client: to the control plane, and to each app cluster",
        "requests per second of each client: to the app cluster, and to each control plane",
      ],
      "leader-election-namespace": [
        "the namespace of the Leases of --leader-elect and --shards",
        "the namespace of the Lease klutch-bind-konnector that one replica holds while it serves",
      ],
      "lease-duration": [
        "how long a Lease of --leader-elect or --shards holds without renewal",
        "how long the Lease holds without renewal",
      ],
      "health-address": [
        "where to serve /healthz and /readyz; they judge the process (the control plane's caches listed, the " +
          "work queue running), never an app cluster, and answer from the start, also while waiting for leadership; " +
          "empty for none",
        "where to serve /healthz and /readyz (ready once the app cluster's APIServiceBindings are listed; a " +
          "standby is ready too); empty for none",
      ],
    };
    for (const [name, [sync, konnector]] of Object.entries(said)) {
      assert.equal(syncFlags[name as keyof typeof said & keyof typeof syncFlags].description, sync, `sync --${name}`);
      assert.equal(
        konnectorFlags[name as keyof typeof said & keyof typeof konnectorFlags].description,
        konnector,
        `konnector --${name}`,
      );
    }
    assert.deepEqual(
      [syncFlags.qps.default, syncFlags.burst.default, konnectorFlags.qps.default, konnectorFlags.burst.default],
      ["500", "1000", "50", "100"],
    );
    assert.equal(syncFlags["leader-election-namespace"].defaultText, "crossplane-system");
    assert.equal(konnectorFlags["leader-election-namespace"].defaultText, "klutch-bind");
  });
});

describe("the numbers of sync's and konnector's flags", () => {
  it("positive takes whole numbers above 0 and refuses others, naming the flag", () => {
    assert.equal(positive("workers", "4"), 4);
    for (const bad of ["0", "-1", "1.5", "x", ""]) {
      assert.throws(
        () => positive("workers", bad),
        (err: unknown) =>
          err instanceof UsageError && err.message === `--workers must be a positive whole number, got "${bad}"`,
      );
    }
  });

  it("lifetimeShare takes a share strictly between 0 and 1, naming the flag", () => {
    assert.equal(lifetimeShare("token-renew-at", "0.8"), 0.8);
    for (const bad of ["0", "1", "1.2", "-0.1", "x"]) {
      assert.throws(
        () => lifetimeShare("token-renew-at", bad),
        (err: unknown) =>
          err instanceof UsageError &&
          err.message === `--token-renew-at must be a share of the token's lifetime between 0 and 1, got "${bad}"`,
      );
    }
  });
});

describe("podKubeconfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-common-"));
  const file = (name: string, server: string) => {
    const path = join(dir, name);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name, cluster: { server } }],
        users: [{ name, user: { token: "t" } }],
        contexts: [{ name, context: { cluster: name, user: name } }],
        "current-context": name,
      }),
    );
    return path;
  };
  const given = file("given", "https://given.example:6443");
  const first = file("first", "https://first.example:6443");
  const second = file("second", "https://second.example:6443");
  // a developer's own kubeconfig, which a command run in a pod must never take
  const home = join(dir, "home");
  mkdirSync(join(home, ".kube"), { recursive: true });
  writeFileSync(join(home, ".kube", "config"), "not read");

  function withEnv<T>(env: Record<string, string | undefined>, run: () => T): T {
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    const set = (values: Record<string, string | undefined>) => {
      for (const [k, v] of Object.entries(values)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };
    set(env);
    try {
      return run();
    } finally {
      set(saved);
    }
  }

  it("reads --kubeconfig first, else KUBECONFIG's files merged, else the pod's service account", () => {
    const env = {
      KUBECONFIG: `${first}${delimiter}${second}`,
      HOME: home,
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "443",
    };
    withEnv(env, () => {
      assert.equal(podKubeconfig(given).origin, `kubeconfig ${given}`);
      const merged = podKubeconfig(undefined);
      assert.equal(merged.origin, `kubeconfig ${first}${delimiter}${second}`);
      assert.equal(merged.currentContext, "first");
    });
    withEnv({ ...env, KUBECONFIG: undefined }, () => {
      const config = podKubeconfig(undefined);
      assert.equal(config.origin, "in-cluster config");
      assert.equal(config.clusters.get("inCluster")?.server, "https://10.96.0.1:443");
    });
  });

  it("outside a pod without a kubeconfig, says so rather than reading ~/.kube/config", () => {
    const env = { KUBECONFIG: undefined, HOME: home, KUBERNETES_SERVICE_HOST: undefined, KUBERNETES_SERVICE_PORT: "" };
    withEnv(env, () => assert.throws(() => podKubeconfig(undefined), /not in a cluster .*give a kubeconfig/));
  });
});

describe("stopping sync and konnector", () => {
  /**
   * stopSignals() with the SIGTERM and SIGINT listeners it adds, taken off again after run: they
   * are called here rather than by emitting a signal, which the test runner may listen to too.
   */
  async function withStopSignals(
    run: (
      stop: ReturnType<typeof stopSignals>,
      listeners: { SIGTERM: () => void; SIGINT: () => void },
    ) => Promise<void>,
  ): Promise<void> {
    const before = { SIGTERM: process.listeners("SIGTERM"), SIGINT: process.listeners("SIGINT") };
    const stop = stopSignals();
    const added = (name: "SIGTERM" | "SIGINT") => {
      const found = process.listeners(name).filter((l) => !before[name].includes(l));
      assert.equal(found.length, 1, `one ${name} listener`);
      return found[0] as () => void;
    };
    const listeners = { SIGTERM: added("SIGTERM"), SIGINT: added("SIGINT") };
    try {
      await run(stop, listeners);
    } finally {
      process.off("SIGTERM", listeners.SIGTERM);
      process.off("SIGINT", listeners.SIGINT);
    }
  }

  it("stopSignals: SIGTERM or SIGINT ends the wait with its name and aborts the signal", async () => {
    for (const name of ["SIGTERM", "SIGINT"] as const) {
      await withStopSignals(async (stop, listeners) => {
        assert.equal(stop.signal.aborted, false);
        listeners[name]();
        assert.equal(await stop.stopped, name);
        assert.equal(stop.signal.aborted, true);
      });
    }
  });

  it("stopSignals: the command's own stop(reason) ends the wait with the reason", async () => {
    await withStopSignals(async (stop, listeners) => {
      stop.stop("lost leadership");
      assert.equal(await stop.stopped, "lost leadership");
      assert.equal(stop.signal.aborted, true);
      listeners.SIGTERM(); // a signal after the stop changes nothing
      assert.equal(await stop.stopped, "lost leadership");
    });
  });

  function capture() {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    return { lines, logger: createLogger("test", false, sink) };
  }

  it("logStopping says why at info, and at error when the Lease was lost", async () => {
    const { lines, logger } = capture();
    logStopping(logger, "SIGTERM", undefined);
    logStopping(logger, "lost leadership", "renewal failed");
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.signal, l.reason]),
      [
        [30, "shutting down", "SIGTERM", undefined],
        [50, "lost leadership: stopping at once", "lost leadership", "renewal failed"],
      ],
    );
  });

  it("logUnhandledRejections logs a forgotten promise's error at error level, its message only", async () => {
    const { lines, logger } = capture();
    const before = process.listeners("unhandledRejection");
    logUnhandledRejections(logger);
    const added = process.listeners("unhandledRejection").filter((l) => !before.includes(l));
    assert.equal(added.length, 1);
    const [listener] = added;
    assert.ok(listener);
    try {
      const err = Object.assign(new Error("boom"), { body: "a cluster's answer" });
      listener(err, Promise.resolve());
      listener("plain", Promise.resolve());
    } finally {
      process.off("unhandledRejection", listener);
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      lines.map((l) => [l.level, l.err, l.msg]),
      [
        [50, "boom", "unhandled rejection (a bug; please report it)"],
        [50, "plain", "unhandled rejection (a bug; please report it)"],
      ],
    );
  });
});
