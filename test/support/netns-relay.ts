// One program in a network namespace of its own (loopback only), reaching chosen loopback ports of
// this machine and reached on chosen ports of its own, through Unix sockets (a socket file is the
// same in every network namespace). For Crossplane's core, which listens on every interface:
// `make dev-crossplane` runs it alone in there, next to the host's servers.
//
//   node netns-relay.ts outside --dir D --ports P,Q        on the host: D/P.sock -> 127.0.0.1:P
//   node netns-relay.ts inside --dir D --ports P,Q --publish H --pid-file F -- CMD ARG...
//                                                           in the namespace: 127.0.0.1:P -> D/P.sock,
//                                                           D/published-H.sock -> 127.0.0.1:H, runs CMD
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The socket file through which port `port` of the host is reached. */
export const hostPortSocket = (dir: string, port: number) => join(dir, `${port}.sock`);
/** The socket file through which port `port` inside the namespace is reached from the host. */
export const publishedSocket = (dir: string, port: number) => join(dir, `published-${port}.sock`);

function pipeTo(target: () => Socket): (client: Socket) => void {
  return (client) => {
    const upstream = target();
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  };
}

function listenOnSocket(path: string, target: () => Socket): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer(pipeTo(target));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}

function listenOnLoopback(port: number, target: () => Socket): Promise<Server> {
  const server = createServer(pipeTo(target));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** The command line that runs `command` in a new network namespace, with the relays inside. */
export function inOwnNetns(
  dir: string,
  ports: number[],
  publish: number[],
  pidFile: string,
  command: string[],
): { command: string; args: string[] } {
  const inside = [
    process.execPath,
    fileURLToPath(import.meta.url),
    "inside",
    "--dir",
    dir,
    "--ports",
    ports.join(","),
    "--publish",
    publish.join(","),
    "--pid-file",
    pidFile,
    "--",
    ...command,
  ].map((a) => `'${a.replaceAll("'", "'\\''")}'`);
  return {
    command: "unshare",
    args: [
      "--net",
      "--fork",
      "--kill-child=SIGTERM",
      "--",
      "sh",
      "-c",
      `ip link set lo up && exec ${inside.join(" ")}`,
    ],
  };
}

/** The relays' command line on the host. */
export function outsideRelay(dir: string, ports: number[]): { command: string; args: string[] } {
  return {
    command: process.execPath,
    args: [fileURLToPath(import.meta.url), "outside", "--dir", dir, "--ports", ports.join(",")],
  };
}

/** GET path of an HTTP server inside the namespace, published as `port`: the status code, or undefined. */
export function getPublished(dir: string, port: number, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ socketPath: publishedSocket(dir, port), path, timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("error", () => resolve(undefined));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

const numbers = (list: string | undefined) =>
  (list ?? "")
    .split(",")
    .filter((p) => p !== "")
    .map(Number);

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      dir: { type: "string" },
      ports: { type: "string" },
      publish: { type: "string" },
      "pid-file": { type: "string" },
    },
    allowPositionals: true,
  });
  const dir = values.dir;
  if (dir === undefined || (mode !== "outside" && mode !== "inside")) {
    throw new Error("usage: netns-relay.ts outside|inside --dir DIR --ports P,Q [--publish H --pid-file F -- CMD...]");
  }
  const servers: Server[] = [];
  const stop = (code: number) => {
    for (const server of servers) server.close();
    process.exit(code);
  };
  if (mode === "outside") {
    for (const port of numbers(values.ports)) {
      servers.push(await listenOnSocket(hostPortSocket(dir, port), () => connect({ host: "127.0.0.1", port })));
    }
    process.once("SIGTERM", () => stop(0));
    process.once("SIGINT", () => stop(0));
    return;
  }
  for (const port of numbers(values.ports)) {
    servers.push(await listenOnLoopback(port, () => connect(hostPortSocket(dir, port))));
  }
  for (const port of numbers(values.publish)) {
    servers.push(await listenOnSocket(publishedSocket(dir, port), () => connect({ host: "127.0.0.1", port })));
  }
  const [command, ...args] = positionals;
  if (command === undefined) throw new Error("netns-relay.ts inside: no command after --");
  const running = spawn(command, args, { stdio: "inherit" });
  if (values["pid-file"] !== undefined && running.pid !== undefined) {
    writeFileSync(values["pid-file"], String(running.pid));
  }
  const forward = () => {
    if (running.exitCode === null && running.signalCode === null) running.kill("SIGTERM");
  };
  process.once("SIGTERM", forward);
  process.once("SIGINT", forward);
  running.on("exit", (code, signal) => {
    console.error(`[netns-relay] ${command} exited (${signal ?? code})`);
    stop(code ?? 0);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`[netns-relay] ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
