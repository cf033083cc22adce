// A listener on 127.0.0.1 that counts the connections it accepts and closes each at once: proof
// that something was (or was not) connected to.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { onFileDone } from "./clusters.ts";

export type CountingListener = { port: number; accepted: () => number };

export async function countingListener(): Promise<CountingListener> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onFileDone(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return { port: address.port, accepted: () => accepted };
}
