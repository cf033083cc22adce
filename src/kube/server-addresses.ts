// Where an app cluster's API server may be. A kubeconfig's server URL is a tenant's word: pointed at
// this host (loopback: the sync's own ports, the function), a link-local address (cloud metadata
// services: 169.254.169.254, fd00:ec2::254) or the control plane's service network, it would make
// the sync ask there and tell the tenant status codes and sizes. So every address is checked where
// the connection is made: an IP literal before it, a host name in the lookup that the connection
// uses (every address it resolves to, on every connection: a name answering differently later, DNS
// rebinding, is checked again). IPv4-mapped IPv6 addresses are checked as the IPv4 address: the
// checks are net.BlockList's, which matches an IPv4 network against them in every spelling, and an
// IPv4-mapped network against IPv4 addresses.
import { lookup as systemLookup } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";

/** A network: text as given (ADDRESS/PREFIX), for messages; list holds it, for checks. */
export type Network = { readonly text: string; readonly list: BlockList };

export type ServerAddressPolicy = {
  /** loopback servers too (--allow-loopback-app-servers: the demo, tests, dev clusters) */
  allowLoopback: boolean;
  /** the control plane's service network (--service-cidr) */
  serviceNetworks: readonly Network[];
};

export type RefusedKind = "loopback" | "link-local" | "service-network";

/** A server address refused by the policy; walk an error's causes with refusedServerAddress. */
export class ServerAddressRefused extends Error {
  override name = "ServerAddressRefused";
  readonly code = "ESERVERADDRESSREFUSED";
  readonly kind: RefusedKind;
  constructor(kind: RefusedKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** The ServerAddressRefused in err or its causes, if any. */
export function refusedServerAddress(err: unknown): ServerAddressRefused | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof ServerAddressRefused) return e;
  }
  return undefined;
}

const loopback = blockList(["127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128"]);
const linkLocal = blockList(["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"]);

/**
 * Why address (an IP address) may not be an app cluster's server, or undefined. host: the name it
 * was resolved from, for the message.
 */
export function checkServerAddress(
  address: string,
  policy: ServerAddressPolicy,
  host?: string,
): ServerAddressRefused | undefined {
  const ip = address.replace(/%.*$/, ""); // a zone (fe80::1%eth0) is no part of the address
  const version = isIP(ip);
  if (version === 0) return undefined; // not an address: the connection fails on its own
  const type = version === 4 ? "ipv4" : "ipv6";
  const at = host !== undefined && host !== address ? `${host} resolves to ${address}` : address;
  if (!policy.allowLoopback && loopback.check(ip, type)) {
    return new ServerAddressRefused(
      "loopback",
      `${at}, a loopback address (this host): app cluster servers there are refused (--allow-loopback-app-servers allows them, for development)`,
    );
  }
  if (linkLocal.check(ip, type)) {
    return new ServerAddressRefused(
      "link-local",
      `${at}, a link-local address (where cloud metadata services answer): app cluster servers there are always refused`,
    );
  }
  const service = policy.serviceNetworks.find((n) => n.list.check(ip, type));
  if (service !== undefined) {
    return new ServerAddressRefused(
      "service-network",
      `${at}, in the control plane's service network ${service.text}: app cluster servers there are refused (--service-cidr)`,
    );
  }
  return undefined;
}

/** The refusal of a server URL's host when it is an IP literal (a name is checked when looked up). */
export function checkServerUrl(server: URL, policy: ServerAddressPolicy): ServerAddressRefused | undefined {
  const host = server.hostname.replace(/^\[|\]$/g, "");
  return isIP(host) === 0 ? undefined : checkServerAddress(host, policy);
}

/**
 * A lookup (net.connect's `lookup` option) that resolves every address of a name through lookup and
 * fails, without connecting, when any of them is refused.
 */
export function guardedLookup(policy: ServerAddressPolicy, lookup: LookupFunction = systemLookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, found, family) => {
      if (err) return callback(err, "", 0);
      const addresses = typeof found === "string" ? [{ address: found, family: family ?? isIP(found) }] : found;
      for (const { address } of addresses) {
        const refused = checkServerAddress(address, policy, hostname);
        if (refused !== undefined) return callback(refused, "", 0);
      }
      const first = addresses[0];
      if (first === undefined) {
        const none: NodeJS.ErrnoException = new Error(`${hostname} resolves to no address`);
        none.code = "ENOTFOUND";
        return callback(none, "", 0);
      }
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * The default service network: the /12 (IPv6: /108) holding KUBERNETES_SERVICE_HOST, which is the
 * first address of the service range. kube-apiserver refuses a range larger than 2^20 addresses, so
 * the whole range, whatever its size, lies in that block. None outside a cluster.
 */
export function defaultServiceNetworks(env: NodeJS.ProcessEnv = process.env): Network[] {
  const host = env.KUBERNETES_SERVICE_HOST?.trim() ?? "";
  const bytes = ipBytes(host);
  if (bytes === undefined) return [];
  const prefix = bytes.length === 4 ? 12 : 108;
  return [parseNetwork(`${formatBytes(masked(bytes, prefix))}/${prefix}`, "KUBERNETES_SERVICE_HOST")];
}

/** Parses ADDRESS/PREFIX; throws naming what (a flag, say) when it is not one. */
export function parseNetwork(text: string, what: string): Network {
  const [address = "", prefixText, ...rest] = text.trim().split("/");
  const version = isIP(address);
  if (version === 0 || rest.length > 0 || prefixText === undefined || !/^\d{1,3}$/.test(prefixText)) {
    throw new Error(`${what}: "${text}" is not a network (ADDRESS/PREFIX, e.g. 10.96.0.0/12)`);
  }
  const prefix = Number(prefixText);
  if (prefix > (version === 4 ? 32 : 128)) throw new Error(`${what}: "${text}" has a prefix longer than its address`);
  const list = new BlockList();
  list.addSubnet(address, prefix, version === 4 ? "ipv4" : "ipv6");
  return { text: text.trim(), list };
}

/** One BlockList of networks written as ADDRESS/PREFIX. */
function blockList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const network of networks) {
    const [address = "", prefix] = network.split("/");
    list.addSubnet(address, Number(prefix), isIP(address) === 4 ? "ipv4" : "ipv6");
  }
  return list;
}

function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  return bytes.map((b, i) => {
    const bits = Math.min(8, Math.max(0, prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
}

function formatBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(":");
}

/**
 * An IP address as bytes: 4 for IPv4 and for IPv4-mapped IPv6 (::ffff:a.b.c.d), else 16; undefined
 * when text is no address. A zone (fe80::1%eth0) is dropped. (For the default service network's
 * text: net.BlockList checks addresses, but neither masks nor prints a network.)
 */
export function ipBytes(text: string): Uint8Array | undefined {
  const address = text.replace(/%.*$/, "");
  const version = isIP(address);
  if (version === 4) return Uint8Array.from(address.split(".").map(Number));
  if (version !== 6) return undefined;
  const [head = "", tail] = address.split("::");
  const part = (s: string | undefined): number[] => {
    if (s === undefined || s === "") return [];
    const out: number[] = [];
    for (const group of s.split(":")) {
      if (group.includes(".")) out.push(...group.split(".").map(Number));
      else {
        const n = Number.parseInt(group, 16);
        out.push(n >> 8, n & 0xff);
      }
    }
    return out;
  };
  const front = part(head);
  const back = part(tail);
  const bytes = Uint8Array.from([...front, ...new Array<number>(16 - front.length - back.length).fill(0), ...back]);
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}
