import assert from "node:assert/strict";
import type { LookupAddress, LookupOptions } from "node:dns";
import type { LookupFunction } from "node:net";
import { describe, it } from "node:test";
import {
  checkServerAddress,
  checkServerUrl,
  defaultServiceNetworks,
  guardedLookup,
  ipBytes,
  parseNetwork,
  refusedServerAddress,
  type ServerAddressPolicy,
  ServerAddressRefused,
} from "../../src/kube/server-addresses.ts";

const strict: ServerAddressPolicy = { allowLoopback: false, serviceNetworks: [] };
const allowing: ServerAddressPolicy = { allowLoopback: true, serviceNetworks: [] };
const withService: ServerAddressPolicy = {
  allowLoopback: false,
  serviceNetworks: [parseNetwork("10.96.0.0/12", "test"), parseNetwork("fd00:10:96::/108", "test")],
};

const kindOf = (address: string, policy: ServerAddressPolicy) => checkServerAddress(address, policy)?.kind;

describe("server addresses of app clusters", () => {
  it("refuses loopback and unspecified addresses, IPv4-mapped too, unless allowed", () => {
    for (const address of [
      "127.0.0.1",
      "127.1.2.3",
      "0.0.0.0",
      "::1",
      "::",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "0:0:0:0:0:ffff:7f00:0001",
    ]) {
      assert.equal(kindOf(address, strict), "loopback", address);
      assert.equal(kindOf(address, allowing), undefined, address);
    }
    assert.match(checkServerAddress("127.0.0.1", strict)?.message ?? "", /loopback.*--allow-loopback-app-servers/);
  });

  it("always refuses link-local addresses and the EC2 metadata address", () => {
    for (const address of [
      "169.254.169.254",
      "169.254.0.1",
      "::ffff:169.254.169.254",
      "::ffff:a9fe:a9fe",
      "fe80::1",
      "fe80::1%eth0",
      "febf::1",
      "fd00:ec2::254",
    ]) {
      assert.equal(kindOf(address, strict), "link-local", address);
      assert.equal(kindOf(address, allowing), "link-local", address);
    }
  });

  it("refuses the service networks, and lets other addresses through", () => {
    assert.equal(kindOf("10.96.0.1", withService), "service-network");
    assert.equal(kindOf("10.111.255.254", withService), "service-network");
    assert.equal(kindOf("::ffff:10.100.0.10", withService), "service-network");
    assert.equal(kindOf("fd00:10:96::a", withService), "service-network");
    assert.match(checkServerAddress("10.96.0.1", withService)?.message ?? "", /10\.96\.0\.0\/12.*--service-cidr/);
    for (const address of ["10.95.255.255", "10.112.0.0", "192.168.1.10", "8.8.8.8", "2001:db8::1", "fd00:ec2::253"]) {
      assert.equal(kindOf(address, withService), undefined, address);
    }
    assert.equal(kindOf("169.254.1.1", { allowLoopback: true, serviceNetworks: [] }), "link-local");
  });

  it("matches IPv4-mapped IPv6 addresses in every spelling against IPv4 networks, and the reverse", () => {
    for (const address of ["::ffff:10.96.0.1", "::ffff:a60:1", "0:0:0:0:0:ffff:0a60:0001", "::FFFF:10.111.255.254"]) {
      assert.equal(kindOf(address, withService), "service-network", address);
    }
    for (const address of ["::ffff:a9fe:a9fe", "0:0:0:0:0:ffff:a9fe:1", "::ffff:169.254.0.1%eth0"]) {
      assert.equal(kindOf(address, allowing), "link-local", address);
    }
    assert.equal(kindOf("::ffff:7f00:2", strict), "loopback");
    assert.equal(kindOf("::ffff:0.1.2.3", strict), "loopback");
    // a service network given as IPv4-mapped IPv6 holds the IPv4 addresses too
    const mapped = { allowLoopback: false, serviceNetworks: [parseNetwork("::ffff:10.96.0.0/108", "test")] };
    assert.equal(kindOf("10.96.0.1", mapped), "service-network");
    assert.equal(kindOf("10.112.0.1", mapped), undefined);
    // only ::ffff:0:0/96 is IPv4-mapped: other addresses ending in an IPv4 address are IPv6 of their own
    for (const address of ["::ffff:0:a60:1", "64:ff9b::a60:1", "::ffff:8.8.8.8"]) {
      assert.equal(kindOf(address, withService), undefined, address);
    }
    assert.deepEqual(
      defaultServiceNetworks({ KUBERNETES_SERVICE_HOST: "::ffff:10.96.0.1" }).map((n) => n.text),
      ["10.96.0.0/12"],
    );
  });

  it("checks IP literals of server URLs, not names (looked up when connecting)", () => {
    assert.equal(checkServerUrl(new URL("https://127.0.0.1:6443"), strict)?.kind, "loopback");
    assert.equal(checkServerUrl(new URL("https://[::1]:6443"), strict)?.kind, "loopback");
    assert.equal(checkServerUrl(new URL("https://[::ffff:169.254.169.254]"), allowing)?.kind, "link-local");
    assert.equal(checkServerUrl(new URL("https://localhost:6443"), strict), undefined);
  });

  it("reads IPv6 addresses into bytes, IPv4-mapped ones as IPv4", () => {
    assert.deepEqual([...(ipBytes("::ffff:1.2.3.4") ?? [])], [1, 2, 3, 4]);
    assert.deepEqual([...(ipBytes("fe80::1:2") ?? [])], [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
    assert.equal(ipBytes("localhost"), undefined);
  });

  it("derives the default service network from KUBERNETES_SERVICE_HOST: the /12 (IPv6 /108) holding it", () => {
    assert.deepEqual(
      defaultServiceNetworks({ KUBERNETES_SERVICE_HOST: "10.96.0.1" }).map((n) => n.text),
      ["10.96.0.0/12"],
    );
    assert.deepEqual(
      defaultServiceNetworks({ KUBERNETES_SERVICE_HOST: "172.20.0.1" }).map((n) => n.text),
      ["172.16.0.0/12"],
    );
    assert.deepEqual(
      defaultServiceNetworks({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1" }).map((n) => n.text),
      ["fd00:10:96:0:0:0:0:0/108"],
    );
    assert.deepEqual(defaultServiceNetworks({}), []);
    assert.deepEqual(defaultServiceNetworks({ KUBERNETES_SERVICE_HOST: "kubernetes.default" }), []);
  });

  it("names the flag and the value of a network that is none", () => {
    assert.throws(() => parseNetwork("10.96.0.0", "--service-cidr"), /--service-cidr: "10.96.0.0" is not a network/);
    assert.throws(() => parseNetwork("10.96.0.0/33", "--service-cidr"), /prefix longer than its address/);
    assert.throws(() => parseNetwork("nope/12", "--service-cidr"), /not a network/);
    assert.throws(() => parseNetwork("fd00::/129", "--service-cidr"), /prefix longer than its address/);
    assert.throws(() => parseNetwork("10.96.0.0/12/3", "--service-cidr"), /not a network/);
  });
});

describe("the guarded lookup", () => {
  /** a resolver answering from a list that changes between calls (DNS rebinding) */
  function resolver(answers: LookupAddress[][]): { lookup: LookupFunction; calls: LookupOptions[] } {
    const calls: LookupOptions[] = [];
    const lookup: LookupFunction = (_hostname, options, callback) => {
      calls.push(options);
      const answer = answers[Math.min(calls.length - 1, answers.length - 1)] ?? [];
      setImmediate(() => callback(null, answer));
    };
    return { lookup, calls };
  }
  const lookUp = (lookup: LookupFunction, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[] }>((resolve) =>
      lookup("app.example", { all }, (err, address) => resolve({ err, address })),
    );

  it("asks for every address and refuses the name when any of them is refused", async () => {
    const { lookup, calls } = resolver([
      [
        { address: "203.0.113.5", family: 4 },
        { address: "127.0.0.1", family: 4 },
      ],
    ]);
    const { err } = await lookUp(guardedLookup(strict, lookup), false);
    assert.ok(err instanceof ServerAddressRefused);
    assert.equal(err.kind, "loopback");
    assert.match(err.message, /app\.example resolves to 127\.0\.0\.1, a loopback address/);
    assert.equal(calls[0]?.all, true);
    assert.equal(refusedServerAddress(new Error("GET /version", { cause: err })), err);
  });

  it("checks again at every connection: a name that turns to a metadata address later is refused then", async () => {
    const { lookup } = resolver([[{ address: "203.0.113.5", family: 4 }], [{ address: "169.254.169.254", family: 4 }]]);
    const guarded = guardedLookup(allowing, lookup);
    assert.deepEqual(await lookUp(guarded, false), { err: null, address: "203.0.113.5" });
    const second = await lookUp(guarded, true);
    assert.equal(refusedServerAddress(second.err)?.kind, "link-local");
  });

  it("answers as asked: one address, or all", async () => {
    const addresses = [
      { address: "2001:db8::5", family: 6 },
      { address: "203.0.113.5", family: 4 },
    ];
    const { lookup } = resolver([addresses]);
    assert.deepEqual((await lookUp(guardedLookup(strict, lookup), true)).address, addresses);
    assert.equal((await lookUp(guardedLookup(strict, lookup), false)).address, "2001:db8::5");
  });
});
