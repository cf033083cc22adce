// Renewing the binding account's control-plane token before it expires: at a share of its
// lifetime (--token-renew-at), a TokenRequest for its own account (the only one its Role lets it
// ask for, ../sync/pull/rules.ts) with the same lifetime, the new token swapped into the running
// client (watches keep going) and the kubeconfig with it written back into the app cluster
// Secrets that hold it (controller.ts; the write is fenced by the konnector's Lease). A kubeconfig
// whose token is no service account token with times (a client certificate, say) is not renewed.
import type { Logger } from "pino";
import {
  kubeconfigToken,
  minTokenSeconds,
  renewalTime,
  tokenAccount,
  tokenTimes,
  withToken,
} from "../app-access/account.ts";
import { requestToken } from "../app-access/token-renewal.ts";
import type { KubeClient } from "../kube/client.ts";

/** after a failed renewal, the next try comes this much later (or at expiry, if sooner) */
const retryMs = 30_000;

export type TokenRenewalOptions = {
  control: KubeClient;
  /** the kubeconfig as the Secret holds it */
  kubeconfig: string;
  /** renew at this share of the token's lifetime (0 < f < 1) */
  fraction: number;
  /** writes a renewed kubeconfig back where it came from */
  write: (text: string) => Promise<void>;
  logger: Logger;
};

export class TokenRenewal {
  readonly #o: TokenRenewalOptions;
  #text: string;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: TokenRenewalOptions) {
    this.#o = options;
    this.#text = options.kubeconfig;
  }

  start(): void {
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(delayMs?: number): void {
    if (this.#stopped) return;
    const token = kubeconfigToken(this.#text);
    const times = token === undefined ? undefined : tokenTimes(token);
    if (token === undefined || times === undefined || tokenAccount(token) === undefined) {
      this.#o.logger.info("the control plane's kubeconfig holds no service account token with an expiry: not renewed");
      return;
    }
    const ms = delayMs ?? Math.max(1000, renewalTime(times, this.#o.fraction) - Date.now());
    this.#timer = setTimeout(() => void this.#renew(), ms);
    this.#timer.unref();
  }

  async #renew(): Promise<void> {
    const token = kubeconfigToken(this.#text) ?? "";
    const account = tokenAccount(token);
    const times = tokenTimes(token);
    if (account === undefined || times === undefined) return;
    const seconds = Math.max(minTokenSeconds, Math.round((times.expires - times.issuedAt) / 1000));
    try {
      const issued = await requestToken(this.#o.control, account, seconds);
      const text = withToken(this.#text, issued.token);
      this.#o.control.setBearerToken(issued.token);
      this.#text = text;
      await this.#o.write(text);
      this.#o.logger.info(
        { account: `${account.namespace}/${account.name}`, expires: issued.expires.toISOString() },
        "control-plane token renewed",
      );
      this.#schedule();
    } catch (err) {
      const left = times.expires - Date.now();
      this.#o.logger.warn(
        { err: err instanceof Error ? err.message : String(err), expiresInSeconds: Math.round(left / 1000) },
        "control-plane token not renewed; trying again",
      );
      this.#schedule(Math.max(1000, Math.min(retryMs, left / 2)));
    }
  }
}
