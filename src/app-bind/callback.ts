// The loopback callback of `klutch-bind bind URL`: a server on 127.0.0.1 (never another address)
// that waits for the browser to come back from the page with a one-time code. It takes only the
// code of its own session (the `s` it put in the authorize URL), answers the browser a page saying
// to go back to the terminal, and closes. The code alone is worth nothing: the page hands the
// binding out for it only with the PKCE verifier this process holds.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { sameToken } from "../web/session.ts";

export class CallbackError extends Error {}

export type Callback = {
  port: number;
  /** the URL the page must send the browser to */
  url: string;
  /** the code, once the browser brings it; rejects on timeout or abort */
  code: Promise<string>;
  close: () => void;
};

const page = (title: string, text: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>`;

export async function startCallback(session: string, timeoutMs: number, signal?: AbortSignal): Promise<Callback> {
  let settle: { resolve: (code: string) => void; reject: (err: Error) => void } | undefined;
  const code = new Promise<string>((resolve, reject) => {
    settle = { resolve, reject };
  });
  code.catch(() => {});
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== "/callback") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const given = url.searchParams.get("code") ?? "";
    if (!sameToken(url.searchParams.get("s") ?? "", session) || given === "") {
      res
        .writeHead(400, { "content-type": "text/html; charset=utf-8" })
        .end(
          page("Not this bind", "This answer belongs to no bind this terminal is waiting for. Start the bind again."),
        );
      return;
    }
    // the browser's page is written before the server closes
    res.once("finish", () => settle?.resolve(given));
    res
      .writeHead(200, { "content-type": "text/html; charset=utf-8", connection: "close" })
      .end(page("Bound", "Go back to the terminal: klutch-bind is setting up the app cluster."));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const timer = setTimeout(
    () => settle?.reject(new CallbackError(`no answer from the browser within ${Math.round(timeoutMs / 1000)} s`)),
    timeoutMs,
  );
  const onAbort = () => settle?.reject(new CallbackError("stopped"));
  signal?.addEventListener("abort", onAbort, { once: true });
  const close = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    server.close();
    server.closeAllConnections();
  };
  code.then(close, close);
  return { port, url: `http://127.0.0.1:${port}/callback`, code, close };
}
