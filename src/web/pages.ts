// The pages, as pure functions of what the handlers read. Secrets and kubeconfigs never reach
// them: there is no field to put one in.

import type { DeletionPolicy } from "../api/binding-spec.ts";
import { refs } from "../api/resources.ts";
import type { BindableApi } from "../bind/bindable.ts";
import { choicesOf } from "../bind/claim-choice.ts";
import type { Condition } from "../kube/conditions.ts";
import { type Html, html } from "./html.ts";

export type BindingView = {
  name: string;
  namespace: string;
  connected: Condition | undefined;
  ready: Condition | undefined;
  exports: Array<{ id: string; objects: number; message?: string }>;
  deleting: boolean;
  /** spec.deletionPolicy as the sync reads it (Orphan unless Delete) */
  deletionPolicy: DeletionPolicy;
  /** the API group of its kind: klutch.anynines.com, or bind.klutch.dev for bindings made before */
  group: string;
};

/** The page of a binding; one of the older kind says so, as both kinds may have a binding of a name. */
export function bindingHref(b: { namespace: string; name: string; group: string }): string {
  const path = `/bindings/${encodeURIComponent(b.namespace)}/${encodeURIComponent(b.name)}`;
  return b.group === refs.bindings.group ? `${path}?group=${encodeURIComponent(b.group)}` : path;
}

export type Frame = {
  title: string;
  user?: string;
  csrf?: string;
  refreshSeconds?: number;
  /** where the refresh goes; the page itself when not given */
  refreshUrl?: string;
  body: Html;
};

export function layout(frame: Frame): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${
  frame.refreshSeconds !== undefined
    ? html`<meta http-equiv="refresh" content="${frame.refreshSeconds}${frame.refreshUrl ? `;url=${frame.refreshUrl}` : ""}">`
    : ""
}
<title>${frame.title} · klutch-bind</title>
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header>
  <h1><a href="/" style="text-decoration:none;color:inherit">klutch-bind</a></h1>
  ${
    frame.user
      ? html`<div class="muted">signed in as <strong id="user">${frame.user}</strong>
      <form method="post" action="/logout"><input type="hidden" name="_csrf" value="${frame.csrf}"><button class="link" type="submit">sign out</button></form></div>`
      : ""
  }
</header>
<main>
${frame.body}
</main>
</body>
</html>
`.text;
}

export function status(condition: Condition | undefined): Html {
  const value = condition?.status ?? "Unknown";
  return html`<span class="status ${value}">${value}</span>`;
}

export type LoginOptions = {
  csrf: string;
  error?: string;
  notice?: string;
  /** the OpenID Connect issuer, when the page signs in with it */
  oidcIssuer?: string;
  /** the bearer token form (default shown) */
  tokenForm?: boolean;
};

export function loginPage(options: LoginOptions): string {
  const oidc = options.oidcIssuer
    ? html`<p><a class="button" id="oidc-sign-in" href="/oidc/login">Sign in with ${options.oidcIssuer}</a></p>
  <p class="muted">You sign in at your identity provider; the control plane checks the ID token it gives this page,
  and what you may bind is decided by your Kubernetes RBAC.</p>`
    : "";
  return layout({
    title: "Sign in",
    body: html`<section class="login">
  <h2>Sign in to the control plane</h2>
  ${options.notice ? html`<div class="notice" role="status">${options.notice}</div>` : ""}
  ${options.error ? html`<div class="error" role="alert">${options.error}</div>` : ""}
  ${oidc}
  ${options.tokenForm === false ? "" : tokenForm(options.csrf)}
</section>`,
  });
}

/** Where the OpenID Connect callback leaves the browser: the session cookie is SameSite=Strict, so
 * the browser goes on to the dashboard from this page of ours, not in the provider's redirect chain. */
export function signedInPage(user: string, next = "/"): string {
  return layout({
    title: "Signed in",
    refreshSeconds: 0,
    refreshUrl: next,
    body: html`<section><h2>Signed in as <span id="signed-in-user">${user}</span></h2><p><a href="${next}">continue</a></p></section>`,
  });
}

function tokenForm(csrf: string): Html {
  return html`<form method="post" action="/login">
    <input type="hidden" name="_csrf" value="${csrf}">
    <label for="token">Bearer token</label>
    <input type="password" id="token" name="token" autocomplete="off" required>
    <p class="muted">A token of the control plane, e.g. <code>kubectl create token NAME</code>. It is checked with a
    TokenReview, then again every few minutes, and kept only in the server's memory until your session ends (at
    the latest when the token expires); what you may bind is decided by your Kubernetes RBAC.</p>
    <button type="submit">Sign in</button>
  </form>`;
}

/** claims: the checked claim boxes, each EXPORT/KEY (see claimKey) */
export type BindForm = { name: string; namespace: string; exports: string[]; claims: string[]; error?: string };

/**
 * One checkbox per claim of every API, with what it means, unchecked unless the user checked it:
 * nothing is accepted by default. Each is named by its claim's digest, and every claim shown is
 * listed (shown-claim), so a post accepts only what was shown, exactly as it was.
 */
export function claimBoxes(apis: BindableApi[], checked: string[]): Html {
  const withClaims = apis.filter((a) => choicesOf([a]).length > 0);
  if (withClaims.length === 0) return html`<span class="muted">No claims to accept.</span>`;
  return html`<p class="muted">Check each claim you accept for the APIs you bind; the others are recorded as rejected and
  not synced (the API may then miss what it needs, e.g. its credentials).</p>
  ${withClaims.map(
    (a) => html`<div class="claim-group" data-export="${a.id}"><div class="claim-api">${a.id}</div>
  ${choicesOf([a]).map((c) => {
    const value = `${a.id}/${c.key}`;
    return html`<input type="hidden" name="shown-claim" value="${value}">
  <label class="claim"><input type="checkbox" name="claim" value="${value}" data-export="${a.id}" data-claim="${c.name}"${
    checked.includes(value) ? html` checked` : ""
  }> <code>${c.name}</code>: the provider ${c.words}</label>`;
  })}</div>`,
  )}`;
}

export function dashboardPage(view: {
  user: string;
  csrf: string;
  apis: BindableApi[];
  apisError?: string;
  bindings: BindingView[];
  bindingsError?: string;
  /** the namespace is a pull binding's cluster namespace, with a ClusterBinding the person may read */
  pullBinding?: boolean;
  form: BindForm;
}): string {
  const apis = view.apisError
    ? html`<div class="error">${view.apisError}</div>`
    : view.apis.length === 0
      ? html`<p class="muted">No APIs are exported yet.</p>`
      : html`<table id="apis"><thead><tr><th>API</th><th>Version</th><th>Template</th><th>Permission claims</th></tr></thead><tbody>
${view.apis.map(
  (a) =>
    html`<tr><td>${a.id}${a.conflict ? html`<div class="error" data-conflict="${a.id}">${a.conflict}</div>` : ""}${
      a.shadowed ? html`<div class="muted" data-shadowed="${a.id}">${a.shadowed}</div>` : ""
    }</td><td>${a.version}</td><td class="muted">${a.template}</td><td>${
      a.claims.length
        ? html`<ul class="claims">${a.claims.map((c) => html`<li>${c}</li>`)}</ul>`
        : html`<span class="muted">none</span>`
    }</td></tr>`,
)}</tbody></table>`;

  const bindings = view.bindingsError
    ? html`<div class="error">${view.bindingsError}</div>`
    : view.bindings.length === 0
      ? html`<p class="muted">No app cluster is bound in namespace ${view.form.namespace}.</p>`
      : html`<table id="bindings"><thead><tr><th>Name</th><th>Connected</th><th>Ready</th><th>Objects</th><th>Message</th></tr></thead><tbody>
${view.bindings.map(
  (b) =>
    html`<tr data-binding="${b.name}" data-group="${b.group}"><td><a href="${bindingHref(b)}">${b.name}</a>${
      b.group === refs.bindings.group ? html` <span class="muted">(${b.group})</span>` : ""
    }${b.deleting ? html` <span class="muted">(deleting)</span>` : ""}</td><td>${status(b.connected)}</td><td>${status(b.ready)}</td><td>${b.exports.map((e) => html`${e.id}: ${e.objects}<br>`)}</td><td class="muted">${
      b.ready?.status === "True" ? "" : b.ready?.message
    }</td></tr>`,
)}</tbody></table>`;

  const form = html`<form method="post" action="/bind" id="bind-form">
  <input type="hidden" name="_csrf" value="${view.csrf}">
  ${view.form.error ? html`<div class="error" role="alert" id="bind-error">${view.form.error}</div>` : ""}
  <label for="name">Binding name</label>
  <input type="text" id="name" name="name" value="${view.form.name}" required pattern="[a-z0-9]([-a-z0-9]*[a-z0-9])?" maxlength="52">
  <label for="namespace">Namespace on the control plane</label>
  <input type="text" id="namespace" name="namespace" value="${view.form.namespace}" required>
  <label for="kubeconfig">App cluster kubeconfig</label>
  <input type="file" id="kubeconfig-file" accept=".yaml,.yml,.kubeconfig,.conf,text/*">
  <textarea id="kubeconfig" name="kubeconfig" required placeholder="paste a self-contained kubeconfig (kubectl config view --minify --flatten --raw)"></textarea>
  <fieldset><legend>APIs to bind</legend>
  ${
    view.apis.length === 0
      ? html`<span class="muted">nothing to bind</span>`
      : view.apis
          .filter((a) => a.shadowed === undefined)
          .map(
            (a) =>
              html`<label><input type="checkbox" name="export" value="${a.id}"${view.form.exports.includes(a.id) ? html` checked` : ""}> ${a.id}</label>`,
          )
  }
  </fieldset>
  <fieldset id="claims"><legend>Permission claims to accept</legend>
  ${claimBoxes(
    view.apis.filter((a) => a.shadowed === undefined),
    view.form.claims,
  )}
  </fieldset>
  <button type="submit">Bind app cluster</button>
</form>`;

  return layout({
    title: "Bindings",
    user: view.user,
    csrf: view.csrf,
    body: html`<section><h2>Bindable APIs</h2>${apis}</section>
<section><h2>Bound app clusters</h2>${bindings}${
      view.pullBinding
        ? html`<p id="pull-binding">A pull binding's konnector binds from namespace ${view.form.namespace}: <a href="/clusters/${encodeURIComponent(view.form.namespace)}">its heartbeat and APIs</a></p>`
        : ""
    }</section>
<section><h2>Bind an app cluster</h2>${form}</section>`,
  });
}

export function errorPage(options: { title: string; message: string; user?: string; csrf?: string }): string {
  return layout({
    title: options.title,
    ...(options.user ? { user: options.user } : {}),
    ...(options.csrf ? { csrf: options.csrf } : {}),
    body: html`<section><h2>${options.title}</h2><div class="error" role="alert">${options.message}</div><p><a href="/">back</a></p></section>`,
  });
}
