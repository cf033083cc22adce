// A plain HTTPS call to a cluster, for what the generic client lacks (subresources, raw status).
import { request } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

export type RestResponse = { status: number; body: string; json: () => unknown };

export async function kubeRequest(
  kc: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<RestResponse> {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error("kubeconfig has no current cluster");
  const options: Parameters<KubeConfig["applyToHTTPSOptions"]>[0] = { method, headers: {} };
  await kc.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, server),
      { ...options, headers: { ...options.headers, "content-type": contentType, accept: "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
