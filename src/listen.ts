import type { Server } from "node:http";

/** Listens on HOST:PORT (":PORT" for every interface, port 0 for a free one); resolves with the port. */
export function listen(server: Server, address: string): Promise<number> {
  const at = address.lastIndexOf(":");
  const host = at > 0 ? address.slice(0, at).replace(/^\[(.*)\]$/, "$1") : undefined;
  const port = Number(address.slice(at + 1));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const bound = server.address();
      resolve(typeof bound === "object" && bound !== null ? bound.port : port);
    });
  });
}
