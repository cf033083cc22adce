// Loopback ports for the servers tests and benchmarks start.
import { type AddressInfo, connect, createServer } from "node:net";
import { eventually } from "./eventually.ts";

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves once something accepts connections on 127.0.0.1:port. */
export async function waitForPort(port: number, what: string, timeoutMs = 30_000): Promise<void> {
  await eventually(
    `${what} listening on ${port}`,
    () =>
      new Promise<void>((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port }, () => {
          socket.destroy();
          resolve();
        });
        socket.on("error", reject);
      }),
    timeoutMs,
  );
}
