// A binding's own page over HTTP, as an app team sees it: the bound objects' provider copies with
// their Ready condition (the message escaped), the claimed Secret copied to the control plane (by
// name, never its data), "not allowed" for what the person may not read; and unbinding from it
// (Orphan keeps the provider copies, Delete has the sync delete them), refused without the form's
// CSRF token, from another site, or without the binding's name typed.

import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { kubeconfigSecretMarks } from "../../src/api/kubeconfig-secret.ts";
import { labels } from "../../src/api/naming.ts";
import { clusterBindingName, pullApiVersion, pullRefs } from "../../src/api/pull-binding.ts";
import { refs } from "../../src/api/resources.ts";
import type { KubeObject } from "../../src/kube/client.ts";
import { type RunningWeb, startWebServer } from "../../src/web/server.ts";
import { type Account, grant, serviceAccount } from "../support/accounts.ts";
import { boundWith, secret } from "../support/claim-binding.ts";
import { onFileDone, testNamespace, uniqueSuffix } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";
import { klutchBinding, markedKubeconfigSecret } from "../support/klutch-binding.ts";
import { apply, applyCrds, readManifests } from "../support/manifests.ts";
import { type SyncEnv, syncEnv } from "../support/sync-env.ts";
import { WebAgent as Agent } from "../support/web-agent.ts";

const hostileMessage = `<script>alert("x")</script> waiting for the database`;
const secretValue = "pw-7f3c9e1d-only-in-the-secret";

describe("a binding's page", () => {
  let env: SyncEnv;
  let web: RunningWeb;
  /** klutch-bind:binder only: may bind and unbind, may not read the provider namespaces */
  let carol: Account;
  /** carol's rights and a reader's of the exported API, Secrets and ConfigMaps in all namespaces */
  let erin: Account;
  let shown: { ns: string; pns: string };
  let readerRole: string;

  before(async () => {
    env = await syncEnv();
    const users = await testNamespace(env.control, "web-binding-page");
    carol = await serviceAccount(env.controlClient, users, "carol");
    erin = await serviceAccount(env.controlClient, users, "erin");
    await apply(
      env.control,
      readManifests("deploy/control-plane/web-rbac.yaml").filter((o) => o.kind === "ClusterRole"),
    );
    readerRole = `web-binding-page-reader-${uniqueSuffix()}`;
    await env.controlClient.create(refs.clusterRoles, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: readerRole },
      rules: [
        { apiGroups: [env.ref.group], resources: [env.ref.resource], verbs: ["get", "list"] },
        { apiGroups: [""], resources: ["secrets", "configmaps"], verbs: ["list"] },
      ],
    });
    onFileDone(async () => {
      await env.controlClient.delete(refs.clusterRoles, readerRole);
      await env.controlClient.delete(refs.clusterRoleBindings, `${users}-erin-${readerRole}`);
    });
    for (const account of [carol, erin])
      await grant(env.controlClient, account, "klutch-bind:binder", env.bindingNamespace);
    await grant(env.controlClient, erin, readerRole);
    web = await startWebServer({
      allowLoopbackAppServers: true,
      control: env.controlClient,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: env.bindingNamespace,
    });
    onFileDone(() => web.stop());

    shown = await boundWith(env, "shown", [
      { group: "", resource: "secrets", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
    ]);
    await env.appClient.create(refs.secrets, secret(shown.ns, "app-credentials", { password: secretValue }));
    await eventually("the claimed Secret copied to the control plane", async () =>
      assert.ok(await env.controlClient.get(refs.secrets, "app-credentials", shown.pns)),
    );
    // what Crossplane would write on the provider's copy of the XR
    await env.controlClient.mergePatch(
      env.ref,
      "db",
      shown.pns,
      {
        status: {
          conditions: [
            {
              type: "Ready",
              status: "False",
              reason: "Creating",
              message: hostileMessage,
              lastTransitionTime: new Date().toISOString(),
            },
          ],
        },
      },
      "status",
    );
  });

  const pageOf = (name: string, group?: string) =>
    `/bindings/${env.bindingNamespace}/${name}${group ? `?group=${group}` : ""}`;

  it("lists the bound object's provider copy with its Ready condition, the message escaped", async () => {
    const agent = new Agent(web.url);
    await agent.signIn(erin.token);
    const answer = await agent.send("GET", pageOf("shown", "bind.klutch.dev"));
    assert.equal(answer.status, 200);
    const row = new RegExp(
      `<tr data-copy="${shown.pns}/db"><td>${shown.ns}/db</td><td class="muted">${shown.pns}/db</td><td>Ready: <span class="status False">False</span></td><td>Creating</td><td class="muted">([^<]*)</td></tr>`,
    );
    const message = row.exec(answer.body)?.[1];
    assert.equal(message, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; waiting for the database");
    assert.ok(!answer.body.includes("<script>alert"), "the message is never markup");
  });

  it("lists the claimed Secret copied to the control plane by name, never its data", async () => {
    const agent = new Agent(web.url);
    await agent.signIn(erin.token);
    const answer = await agent.send("GET", pageOf("shown", "bind.klutch.dev"));
    assert.equal(answer.status, 200);
    assert.match(
      answer.body,
      new RegExp(
        `<tr data-claimed="Secret/${shown.pns}/app-credentials"><td>Secret</td><td>${shown.pns}</td><td>app-credentials</td><td>app cluster → control plane</td>`,
      ),
    );
    for (const form of [secretValue, Buffer.from(secretValue).toString("base64")]) {
      assert.ok(!answer.body.includes(form), `the Secret's data is not on the page (${form})`);
    }
  });

  it("says what a person may not read, and shows none of it", async () => {
    const agent = new Agent(web.url);
    await agent.signIn(carol.token);
    const answer = await agent.send("GET", pageOf("shown", "bind.klutch.dev"));
    assert.equal(answer.status, 200);
    assert.match(
      answer.body,
      new RegExp(`not allowed to see the provider copies of ${env.ref.resource}\\.${env.ref.group}`),
    );
    assert.match(answer.body, /not allowed to see the claimed objects/);
    assert.ok(!answer.body.includes("data-copy="), "no provider copy listed");
    assert.ok(!answer.body.includes("data-claimed="), "no claimed object listed");
    assert.ok(!answer.body.includes(hostileMessage.slice(20)), "no condition of a copy");
  });

  it("refuses an unbind without the CSRF token, from another site, or without the name typed", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const confirm = await agent.send("GET", `/bindings/${env.bindingNamespace}/shown/unbind?group=bind.klutch.dev`);
    assert.equal(confirm.status, 200);
    // the binding's own policy (Orphan unless it says Delete) is preselected
    assert.match(confirm.body, /<input type="radio" name="policy" value="Orphan" checked required>/);
    assert.match(confirm.body, /<input type="radio" name="policy" value="Delete" required>/);
    const action = `/bindings/${env.bindingNamespace}/shown/unbind?group=bind.klutch.dev`;
    const form = { policy: "Delete", confirm: "shown" };

    const noToken = await agent.send("POST", action, form);
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /CSRF token is missing or wrong/);

    const crossSite = await fetch(`${web.url}${action}`, {
      method: "POST",
      redirect: "manual",
      headers: {
        cookie: [...agent.cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        "content-type": "application/x-www-form-urlencoded",
        origin: "https://attacker.example",
      },
      body: new URLSearchParams({ _csrf: csrf, ...form }).toString(),
    });
    assert.equal(crossSite.status, 403);
    assert.match(await crossSite.text(), /sent from another site \(https:\/\/attacker\.example\)/);

    const wrongName = await agent.send("POST", action, { _csrf: csrf, policy: "Delete", confirm: "show" });
    assert.equal(wrongName.status, 400);
    assert.match(wrongName.body, /type the binding&#39;s name, shown, to unbind it/);

    const binding = await env.controlClient.get(refs.bindings, "shown", env.bindingNamespace);
    assert.ok(binding, "the binding is still there");
    assert.equal(binding.metadata.deletionTimestamp, undefined);
    assert.equal((binding.spec as { deletionPolicy?: string }).deletionPolicy, undefined, "its policy untouched");
  });

  it("unbinds with Orphan: the binding goes, the provider copies stay", async () => {
    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const answer = await agent.send("POST", `/bindings/${env.bindingNamespace}/shown/unbind?group=bind.klutch.dev`, {
      _csrf: csrf,
      policy: "Orphan",
      confirm: "shown",
    });
    assert.equal(answer.status, 303, answer.body);
    const next = answer.headers.get("location") ?? "";
    assert.equal(next, `/bindings/${env.bindingNamespace}/shown?group=bind.klutch.dev&unbinding=1`);
    await eventually("the binding gone", async () => {
      const going = await agent.send("GET", next);
      assert.equal(going.status, 200);
      assert.match(going.body, /id="unbound"/);
    });
    assert.equal(await env.controlClient.get(refs.bindings, "shown", env.bindingNamespace), undefined);
    assert.ok(await env.controlClient.get(env.ref, "db", shown.pns), "the provider copy is kept");
    assert.ok(await env.controlClient.get(refs.secrets, "app-credentials", shown.pns), "the claimed copy is kept");
  });

  it("unbinds klutch-bind's kind with Delete: the sync deletes the provider copies, then lets the binding go", async () => {
    const name = "doomed";
    await markedKubeconfigSecret(
      env,
      name,
      env.appKubeconfig,
      kubeconfigSecretMarks({ group: refs.klutchBindings.group, namespace: env.bindingNamespace, name }),
    );
    const binding: KubeObject = await klutchBinding(env, name);
    const uid = binding.metadata.uid ?? "";
    await env.ready(name);
    const copies = async () =>
      (await env.controlClient.list(env.ref, { labelSelector: `${labels.binding}=${uid}` })).items;
    await eventually("the app object copied for the new binding", async () => assert.ok((await copies()).length > 0));

    const agent = new Agent(web.url);
    const csrf = await agent.signIn(carol.token);
    const before = await agent.send("GET", pageOf(name));
    assert.match(before.body, /href="\/bindings\/[^"]+\/doomed\/unbind">Unbind…<\/a>/);
    const confirm = await agent.send("GET", `/bindings/${env.bindingNamespace}/${name}/unbind`);
    assert.match(confirm.body, /value="Orphan" checked/, "Orphan is this binding's policy: not written, the default");
    const answer = await agent.send("POST", `/bindings/${env.bindingNamespace}/${name}/unbind`, {
      _csrf: csrf,
      policy: "Delete",
      confirm: name,
    });
    assert.equal(answer.status, 303, answer.body);
    assert.equal(answer.headers.get("location"), `${pageOf(name)}?unbinding=1`);
    await eventually("the binding gone", async () =>
      assert.equal(await env.controlClient.get(refs.klutchBindings, name, env.bindingNamespace), undefined),
    );
    assert.deepEqual(
      (await copies()).filter((c) => c.metadata.deletionTimestamp === undefined).map((c) => c.metadata.name),
      [],
      "the provider copies are deleted",
    );
    const gone = await agent.send("GET", `${pageOf(name)}?unbinding=1`);
    assert.equal(gone.status, 200);
    assert.match(gone.body, /Unbound: the binding is gone/);
  });

  it("shows a pull binding's last heartbeat and Healthy condition, linked from its cluster namespace", async () => {
    for (const kind of ["clusterbinding", "apiserviceexport"])
      await applyCrds(env.control, `deploy/control-plane/klutch-${kind}-crd.yaml`);
    const clusterNs = await testNamespace(env.control, "web-pull");
    const pullReader = `${readerRole}-pull`;
    await env.controlClient.create(refs.clusterRoles, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: pullReader },
      rules: [
        {
          apiGroups: [pullRefs.clusterBindings.group],
          resources: ["clusterbindings", "apiserviceexports"],
          verbs: ["get", "list"],
        },
      ],
    });
    onFileDone(() => env.controlClient.delete(refs.clusterRoles, pullReader).then(() => undefined));
    await grant(env.controlClient, erin, pullReader, clusterNs);
    await env.controlClient.create(pullRefs.clusterBindings, {
      apiVersion: pullApiVersion,
      kind: "ClusterBinding",
      metadata: { name: clusterBindingName, namespace: clusterNs },
      spec: { kubeconfigSecretRef: { name: "konnector", key: "kubeconfig" }, providerPrettyName: "test" },
    });
    const beat = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await env.controlClient.mergePatch(
      pullRefs.clusterBindings,
      clusterBindingName,
      clusterNs,
      {
        status: {
          lastHeartbeatTime: beat,
          heartbeatInterval: "30s",
          konnectorVersion: "v9.8.7",
          conditions: [
            {
              type: "Healthy",
              status: "True",
              reason: "HeartbeatReceived",
              message: "the konnector is alive",
              lastTransitionTime: beat,
            },
          ],
        },
      },
      "status",
    );

    const agent = new Agent(web.url);
    await agent.signIn(erin.token);
    const home = await agent.send("GET", `/?namespace=${clusterNs}`);
    assert.match(home.body, new RegExp(`<p id="pull-binding">[^\n]*<a href="/clusters/${clusterNs}">`));
    const answer = await agent.send("GET", `/clusters/${clusterNs}`);
    assert.equal(answer.status, 200, answer.body);
    assert.ok(answer.body.includes(`<span id="last-heartbeat">${beat}</span>`));
    assert.match(answer.body, /konnector v9\.8\.7/);
    assert.match(
      answer.body,
      /<span id="healthy"><span class="status True">True<\/span><\/span> <span class="muted">HeartbeatReceived<\/span> the konnector is alive/,
    );
    assert.match(answer.body, /data-part="exports">none</);

    const other = new Agent(web.url);
    await other.signIn(carol.token);
    const refused = await other.send("GET", `/clusters/${clusterNs}`);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /no permission to read the ClusterBinding/);
    assert.ok(!(await other.send("GET", `/?namespace=${clusterNs}`)).body.includes("pull-binding"));
  });
});
