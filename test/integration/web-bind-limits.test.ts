// What one signed-in user's binds may cost the page's process: their app cluster host name lookups
// share one gate (keyed by the user, never by the namespace typed into the form), their binds in
// flight are bounded (more are refused at once), and app clusters on loopback are refused unless
// allowed. Another user is unaffected.
import assert from "node:assert/strict";
import type { LookupFunction } from "node:net";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { refs } from "../../src/api/resources.ts";
import { LookupGate } from "../../src/kube/lookup.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import { onFileDone, testNamespace } from "../support/clusters.ts";
import { type CountingListener, countingListener } from "../support/counting-listener.ts";
import { eventually } from "../support/eventually.ts";
import { apply, readManifests } from "../support/manifests.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { type Answer, WebAgent } from "../support/web-agent.ts";

/** The app cluster's kubeconfig with another server URL. */
function pointedAt(env: SyncEnv, server: string): string {
  const text = env.appKubeconfig.replace(/server: \S+/, `server: ${server}`);
  assert.ok(text.includes(`server: ${server}`));
  return text;
}

describe("the web page's binds, bounded per signed-in user", () => {
  let env: SyncEnv;
  let carol: Account;
  let dan: Account;
  /** the namespaces carol may bind into (the template in each) */
  let carolsNamespaces: string[];
  let dansNamespace: string;
  let exportId: string;
  let listener: CountingListener;
  /** lookups the stand-in resolver holds, by host name */
  const held: Array<{ hostname: string; answer: () => void }> = [];
  let holding = true;
  const resolve: LookupFunction = (hostname, _options, callback) => {
    const answer = () => {
      const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
      err.code = "ENOTFOUND";
      callback(err, "", 0);
    };
    if (holding) held.push({ hostname, answer });
    else answer();
  };
  const gate = new LookupGate({ resolve });
  const maxBindsPerUser = 4;
  let web: RunningWeb;
  let strictWeb: RunningWeb;

  before(async () => {
    listener = await countingListener();
    env = await syncEnv();
    exportId = `postgresqlinstances.${env.ref.group}`;
    const users = await testNamespace(env.control, "web-limits");
    carol = await serviceAccount(env.controlClient, users, "carol");
    dan = await serviceAccount(env.controlClient, users, "dan");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    carolsNamespaces = [env.bindingNamespace];
    for (let i = 1; i < maxBindsPerUser; i++) carolsNamespaces.push(await testNamespace(env.control, `carol-${i}`));
    dansNamespace = await testNamespace(env.control, "dan");
    for (const ns of carolsNamespaces) await grant(env.controlClient, carol, "klutch-bind:binder", ns);
    await grant(env.controlClient, dan, "klutch-bind:binder", dansNamespace);
    for (const ns of [...carolsNamespaces, dansNamespace]) await env.template([], ns);
    web = await startWebServer({
      control: env.controlClient,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
      allowLoopbackAppServers: true,
      lookups: gate,
      maxBindsPerUser,
    });
    onFileDone(() => web.stop());
    // as the sync runs it by default: loopback app clusters refused
    strictWeb = await startWebServer({
      control: env.controlClient,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => strictWeb.stop());
  });

  const bindForm = (csrf: string, name: string, namespace: string, kubeconfig: string) => ({
    _csrf: csrf,
    name,
    namespace,
    export: exportId,
    kubeconfig,
  });

  it("gates a user's lookups as one, whatever namespaces they type; refuses binds over the bound at once; another user goes on", async () => {
    const carolHost = "carols-cluster.example.test";
    const danHost = "dans-cluster.example.test";
    const carolAgent = new WebAgent(web.url);
    const carolCsrf = await carolAgent.signIn(carol.token);
    const danAgent = new WebAgent(web.url);
    const danCsrf = await danAgent.signIn(dan.token);
    const carolKubeconfig = pointedAt(env, `https://${carolHost}:6443`);

    // one bind into each namespace carol may bind into, all at once
    const binds: Array<Promise<Answer>> = carolsNamespaces.map((ns, i) =>
      carolAgent.send("POST", "/bind", bindForm(carolCsrf, `held-${i}`, ns, carolKubeconfig)),
    );
    const carolsKey = `user:${carol.username}`;
    await eventually("carol's lookups wait in one lane", () => {
      assert.equal(gate.pending(carolsKey), maxBindsPerUser);
    });
    // two run (the gate's share of one key), the others wait: typing more namespaces gave no more
    assert.equal(held.filter((h) => h.hostname === carolHost).length, 2);
    for (const ns of carolsNamespaces) assert.equal(gate.pending(ns), 0, `nothing keyed by namespace ${ns}`);

    const over = await carolAgent.send(
      "POST",
      "/bind",
      bindForm(carolCsrf, "one-more", env.bindingNamespace, carolKubeconfig),
    );
    assert.equal(over.status, 429, over.body);
    assert.match(over.body, /Too many binds at once/);
    assert.match(over.body, new RegExp(`You have ${maxBindsPerUser} binds in progress already`));

    // dan is neither refused nor queued behind carol
    const danBind = danAgent.send(
      "POST",
      "/bind",
      bindForm(danCsrf, "dans", dansNamespace, pointedAt(env, `https://${danHost}:6443`)),
    );
    await eventually("dan's lookup runs", () => {
      assert.equal(held.filter((h) => h.hostname === danHost).length, 1);
    });
    assert.equal(gate.pending(`user:${dan.username}`), 1);
    assert.equal(gate.pending(carolsKey), maxBindsPerUser, "carol's lookups still wait");

    holding = false;
    for (const h of held.splice(0)) h.answer();
    for (const answer of [...(await Promise.all(binds)), await danBind]) {
      // ENOTFOUND, or the bind's deadline when the machine was slow: either way an answer
      assert.equal(answer.status, 400, answer.body);
      assert.match(answer.body, /unreachable/);
    }
    assert.equal(gate.pending(carolsKey), 0);
    // done: carol may bind again
    const again = await carolAgent.send(
      "POST",
      "/bind",
      bindForm(carolCsrf, "again", env.bindingNamespace, carolKubeconfig),
    );
    assert.equal(again.status, 400, again.body);
    assert.match(again.body, /ENOTFOUND/);
  });

  it("refuses an app cluster on loopback, by address or by name, naming the flag, without connecting", async () => {
    const agent = new WebAgent(strictWeb.url);
    const csrf = await agent.signIn(carol.token);
    const cases: Array<[string, string, RegExp]> = [
      ["real", env.appKubeconfig, /refused: 127\.0\.0\.1, a loopback address/],
      ["literal", pointedAt(env, `https://127.0.0.1:${listener.port}`), /refused: 127\.0\.0\.1, a loopback address/],
      [
        "named",
        pointedAt(env, `https://localhost:${listener.port}`),
        /refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address/,
      ],
      ["metadata", pointedAt(env, "https://169.254.169.254"), /refused: 169\.254\.169\.254, a link-local address/],
    ];
    for (const [name, kubeconfig, why] of cases) {
      const answer = await agent.send("POST", "/bind", bindForm(csrf, name, env.bindingNamespace, kubeconfig));
      assert.equal(answer.status, 400, name);
      assert.match(answer.body, why);
      if (name !== "metadata") assert.match(answer.body, /--allow-loopback-app-servers/);
      assert.equal(await env.controlClient.get(refs.klutchBindings, name, env.bindingNamespace), undefined);
    }
    assert.equal(listener.accepted(), 0, "no connection to the loopback listener");
    // the page that allows loopback does connect: the listener counts
    const allowed = new WebAgent(web.url);
    const allowedCsrf = await allowed.signIn(carol.token);
    const answer = await allowed.send(
      "POST",
      "/bind",
      bindForm(allowedCsrf, "literal", env.bindingNamespace, pointedAt(env, `https://127.0.0.1:${listener.port}`)),
    );
    assert.equal(answer.status, 400);
    assert.match(answer.body, /unreachable/);
    assert.ok(listener.accepted() > 0, "the allowing page connected");
  });
});
