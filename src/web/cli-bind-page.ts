// The page a person sees after `kubectl bind URL` sent them here and they signed in: which app
// cluster asks (its cluster id), one API to bind (one per kubectl bind run: v0.3.0's dry run prints
// several requests as YAML it cannot separate), and its claims accepted one by one.
import type { BindableApi } from "../bind/bindable.ts";
import { html } from "./html.ts";
import { cliBindPath } from "./kubectl-bind.ts";
import { claimBoxes, layout } from "./pages.ts";

export function cliBindPage(view: {
  user: string;
  csrf: string;
  clusterId: string;
  client: string;
  namespace: string;
  apis: BindableApi[];
  error?: string;
}): string {
  const apis = view.apis.filter((a) => a.shadowed === undefined);
  return layout({
    title: "Bind with kubectl bind",
    user: view.user,
    csrf: view.csrf,
    body: html`<section><h2>Bind app cluster ${view.clusterId}</h2>
<p class="muted">Asked by <code>kubectl bind</code> (${view.client}) on the app cluster with id <code>${view.clusterId}</code>.
Binding hands that command a control-plane credential for this binding only.</p>
<form method="post" action="${cliBindPath}" id="cli-bind-form">
  <input type="hidden" name="_csrf" value="${view.csrf}">
  <input type="hidden" name="namespace" value="${view.namespace}">
  ${view.error ? html`<div class="error" role="alert" id="bind-error">${view.error}</div>` : ""}
  <fieldset><legend>API to bind</legend>
  ${
    apis.length === 0
      ? html`<span class="muted">nothing to bind</span>`
      : apis.map((a) => html`<label><input type="radio" name="export" value="${a.id}" required> ${a.id}</label>`)
  }
  </fieldset>
  <fieldset id="claims"><legend>Permission claims to accept</legend>${claimBoxes(apis, [])}</fieldset>
  <button type="submit">Bind and return to kubectl bind</button>
</form></section>`,
  });
}
