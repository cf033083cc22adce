// What a binding's page costs the control plane while it follows a binding that is not Ready yet,
// counted with the page's own client (every request it sends, as whichever person): a refresh
// reads the binding alone, never the page's contents (discovery, the copies' and the claimed
// objects' lists), and a page loaded again soon asks discovery nothing new for the same person.
// No sync runs here, so the binding stays not Ready for as long as the test looks.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import { clientConfig, onFileDone, testNamespace } from "../support/clusters.ts";
import { klutchBinding } from "../support/klutch-binding.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { WebAgent as Agent } from "../support/web-agent.ts";

const refreshes = 10;

describe("a binding's page that follows a binding not Ready yet", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  /**
   * binders: the page's reads of the contents are refused them (it says "not allowed"), but each is
   * a request the API server answers all the same, counted as one read with rights would be
   */
  let dana: Account;
  let fred: Account;
  /** API requests the page has sent so far */
  let sent = 0;
  /** klutch-bind's kind, whose page's address names no group: the page looks for both kinds */
  const page = () => `/bindings/${env.bindingNamespace}/pending`;

  before(async () => {
    env = await syncEnv({ inProcess: false });
    const users = await testNamespace(env.control, "web-refresh");
    dana = await serviceAccount(env.controlClient, users, "dana");
    fred = await serviceAccount(env.controlClient, users, "fred");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    for (const account of [dana, fred])
      await grant(env.controlClient, account, "klutch-bind:binder", env.bindingNamespace);
    await klutchBinding(env, "pending");

    // the page's own client, so that what it sends is all that is counted
    const control = KubeClient.fromConfig(clientConfig(env.control), { userAgent: "klutch-bind-web" });
    control.observeRequests(() => {
      sent++;
    });
    web = await startWebServer({
      control,
      closeControl: true,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => web.stop());
  });

  /** Signs in without loading the dashboard, whose reads are not this test's to count. */
  async function signIn(account: Account): Promise<Agent> {
    const agent = new Agent(web.url);
    const signedIn = await agent.tryToken(account.token);
    assert.equal(signedIn.status, 303, signedIn.body);
    return agent;
  }

  /** the API requests what runs sends, once it has its answer */
  async function counted(what: () => Promise<unknown>): Promise<number> {
    const start = sent;
    await what();
    return sent - start;
  }

  /**
   * What a browser asks for when the page refreshes, whichever way the page tells it to: a meta
   * refresh loads the page again; else the page's script asks for the status part.
   */
  function refreshUrl(body: string): string {
    const meta = /<meta http-equiv="refresh" content="\d+(?:;url=([^"]*))?">/.exec(body);
    if (meta) return meta[1] ?? page();
    const status = /data-status-url="([^"]+)"/.exec(body)?.[1];
    assert.ok(status, "the page refreshes itself while the binding is not Ready");
    return status.replaceAll("&amp;", "&");
  }

  it(`${refreshes} refreshes read the binding alone: ${refreshes} requests, no discovery, no lists`, async () => {
    const agent = await signIn(dana);
    let body = "";
    const load = await counted(async () => {
      const answer = await agent.send("GET", page());
      assert.equal(answer.status, 200, answer.body);
      body = answer.body;
    });
    assert.match(body, /data-part="copies:/, "the page reads the bound objects");
    assert.match(body, /data-part="claimed"/, "and the claimed ones");
    const url = refreshUrl(body);
    const cost = await counted(async () => {
      for (let i = 0; i < refreshes; i++) {
        const answer = await agent.send("GET", url);
        assert.equal(answer.status, 200, answer.body);
        assert.match(answer.body, /id=\\?"ready\\?"/, "the refresh brings the binding's Ready");
      }
    });
    assert.equal(load, 6, "a page load: the binding (of both kinds), discovery, the copies, the claimed objects (2)");
    assert.equal(cost, refreshes, `${refreshes} refreshes sent ${cost} API requests (a page load sends ${load})`);
  });

  it("the status part says the binding is not settled, and that the page follows it", async () => {
    const agent = await signIn(dana);
    const answer = await agent.send("GET", refreshUrl((await agent.send("GET", page())).body));
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
    const status = JSON.parse(answer.body) as { settled?: unknown; html?: unknown };
    assert.equal(status.settled, false);
    assert.equal(typeof status.html, "string");
    assert.match(String(status.html), /<span id="ready"><span class="status Unknown">Unknown<\/span><\/span>/);
    assert.match(String(status.html), /refreshing every 2 s/);
    // a binding gone: the script loads the whole page, which says so
    const gone = await agent.send(
      "GET",
      `/bindings/${env.bindingNamespace}/never-made/status?group=${refs.klutchBindings.group}`,
    );
    assert.equal(gone.status, 404);
  });

  it("a page loaded again soon asks discovery once per person", async () => {
    const first = await signIn(fred);
    const load = () =>
      counted(async () => assert.equal((await first.send("GET", page())).status, 200, "the page loads"));
    const cold = await load();
    const warm = await load();
    assert.equal(warm, cold - 1, `loaded again: ${warm} requests, the first time ${cold} (one of them discovery)`);
    // another tab of the same person: its session is another, its identity the same
    const tab = await signIn(fred);
    const again = await counted(async () => assert.equal((await tab.send("GET", page())).status, 200));
    assert.equal(again, warm, "another tab of the same person asks discovery nothing new");
  });
});
