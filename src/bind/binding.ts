// Making an AppClusterBinding, shared by `klutch-bind bind` and the web page: the binding's
// service account in the app cluster (made with the given kubeconfig, which is never stored; see
// app-access.ts), that account's kubeconfig as a Secret, and klutch-bind's AppClusterBinding
// (klutch.anynines.com) that names it and the exports.
import type { LookupFunction } from "node:net";
import { specOf } from "../api/binding-spec.ts";
import type { RecordedClaim } from "../api/consent.ts";
import {
  kubeconfigForAnnotation,
  kubeconfigSecretLabels,
  kubeconfigSecretMarks,
  type MarkedBinding,
  markOf,
  remarked,
} from "../api/kubeconfig-secret.ts";
import { labels } from "../api/naming.ts";
import { apiVersionOf, refs } from "../api/resources.ts";
import { type AppAccount, appAccessAnnotation, appAccessServiceAccount } from "../app-access/account.ts";
import { isDnsLabel } from "../export/decode.ts";
import { KubeApiError, KubeClient, type KubeObject, type ResourceRef } from "../kube/client.ts";
import { refusedServerAddress, type ServerAddressPolicy } from "../kube/server-addresses.ts";
import { grantAppAccess } from "./app-access.ts";
import type { BindableApi } from "./bindable.ts";
import type { Decisions } from "./claim-choice.ts";
import { explain } from "./explain.ts";
import { findBindings, isOlderKind } from "./find-bindings.ts";

/** On the kubeconfig Secrets that bind makes (CLI or web page), so unbind and the sync know them. */
export const bindingSecretLabels = kubeconfigSecretLabels;

export function isBindingSecret(secret: KubeObject | undefined): secret is KubeObject {
  return secret?.metadata.labels?.[labels.managedBy] === bindingSecretLabels[labels.managedBy];
}

/** A binding name that works for the binding and for its Secret (NAME-kubeconfig). */
export function checkBindingName(name: string): void {
  if (!isDnsLabel(name) || name.length > 52) {
    throw new Error(
      `binding name "${name}" must be lower-case letters, digits and '-', start and end with a letter or digit, at most 52 characters`,
    );
  }
}

/**
 * Checks that the kubeconfig is usable by the sync (self-contained) and that its cluster answers.
 * Returns the server and its version. lookup: how its host name is looked up (a tenant's gate,
 * lookup.ts, where the process serves several); serverAddresses: where the server may be
 * (server-addresses.ts; anywhere when undefined, as for a person's own `klutch-bind bind`).
 */
export async function checkAppCluster(
  kubeconfig: string,
  lookup?: LookupFunction,
  serverAddresses?: ServerAddressPolicy,
): Promise<{ server: string; version: string }> {
  const app = KubeClient.fromUntrustedKubeconfig(kubeconfig, {
    timeoutMs: 10_000,
    ...(lookup ? { lookup } : {}),
    ...(serverAddresses ? { serverAddresses } : {}),
  });
  try {
    const { gitVersion } = await app.serverVersion();
    return { server: app.server, version: gitVersion };
  } catch (err) {
    const refused = refusedServerAddress(err);
    if (refused !== undefined) throw new Error(`app cluster ${app.server} refused: ${refused.message}`);
    throw new Error(`app cluster ${app.server} unreachable: ${(err as Error).message}`);
  } finally {
    app.close();
  }
}

export type NewBinding = {
  name: string;
  namespace: string;
  /** the app cluster's, used once to make the binding's account there; never stored */
  kubeconfig: string;
  exports: BindableApi[];
  /** the lifetime of the account's token (default 24 h; the sync renews it) */
  tokenSeconds?: number;
  /**
   * What the user decided for each claim (see claim-choice.ts): per export id, Accepted or
   * Rejected for each of its permissionClaims, in their order. A claim without a decision is
   * recorded as Rejected: nothing is accepted that the user was not asked about.
   */
  decisions?: Decisions;
  /** how the app cluster's host name is looked up (a tenant's gate, lookup.ts, in a shared process) */
  lookup?: LookupFunction;
  /** where the app cluster's server may be (server-addresses.ts; in a shared process) */
  serverAddresses?: ServerAddressPolicy;
};

/** The binding's record of an export's claims, as the user decided them. */
export function recordedClaims(api: BindableApi, decisions: Decisions | undefined): RecordedClaim[] {
  const claims = api.permissionClaims ?? [];
  const states = decisions?.get(api.id);
  if (states !== undefined && states.length !== claims.length) {
    throw new Error(`${states.length} decision(s) for the ${claims.length} claim(s) of ${api.id}`);
  }
  return claims.map((claim, i) => ({ ...claim, state: states?.[i] ?? "Rejected" }));
}

/**
 * Stores the kubeconfig and creates (or updates) the binding: klutch-bind's AppClusterBinding
 * (klutch.anynines.com), or ours where a binding of that name was made with it. Returns the
 * Secret's name, the binding's kind, and whether the kubeconfig was kept as it was: an app team
 * may create Secrets but not change or read them (`klutch-bind:binder`: a patch answers with the
 * whole Secret, so patch would mean read), so an existing Secret is replaced only by whoever may
 * read it.
 */
export async function createBinding(
  client: KubeClient,
  binding: NewBinding,
  fieldManager: string,
): Promise<{
  secretName: string;
  kept: boolean;
  ref: ResourceRef;
  older: boolean;
  account: AppAccount;
  expires: Date;
}> {
  // checked before anything is written
  const recorded = binding.exports.map((e) => recordedClaims(e, binding.decisions));
  const secretName = `${binding.name}-kubeconfig`;
  const target = await bindingTarget(client, binding, secretName);
  // the given kubeconfig's one use: the account and its roles for the accepted claims, a token
  const access = await grantAppAccess(binding.kubeconfig, {
    bindingNamespace: binding.namespace,
    bindingName: binding.name,
    exports: binding.exports.map((e, i) => ({
      group: e.group,
      resource: e.resource,
      claims: (recorded[i] ?? []).filter((c) => c.state === "Accepted"),
    })),
    ...(binding.tokenSeconds ? { tokenSeconds: binding.tokenSeconds } : {}),
    ...(binding.lookup ? { lookup: binding.lookup } : {}),
    ...(binding.serverAddresses ? { serverAddresses: binding.serverAddresses } : {}),
  });
  const marked = { group: target.ref.group, namespace: binding.namespace, name: binding.name };
  const marks = kubeconfigSecretMarks(marked);
  const secret: KubeObject = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: secretName,
      namespace: binding.namespace,
      labels: marks.labels,
      // the sync renews the account's token in this Secret
      annotations: { ...marks.annotations, [appAccessAnnotation]: appAccessServiceAccount },
    },
    type: "Opaque",
    data: { kubeconfig: Buffer.from(access.kubeconfig).toString("base64") },
  };
  const failed = (err: unknown) =>
    explain(err, `store the app kubeconfig as Secret ${secretName}`, client.server, binding.namespace);
  let created = false;
  let kept = false;
  try {
    await client.create(refs.secrets, secret);
    created = true;
  } catch (err) {
    if (!(err instanceof KubeApiError) || err.code !== 409) throw failed(err);
    const existing = await client.get(refs.secrets, secretName, binding.namespace).catch((readErr: unknown) => {
      if (readErr instanceof KubeApiError && readErr.code === 403) return undefined;
      throw failed(readErr);
    });
    if (existing !== undefined && isOurs(existing, marked)) {
      await client
        .update(refs.secrets, {
          ...secret,
          // other bindings the Secret serves keep their marks; an old mark of this one is renewed
          metadata: {
            ...secret.metadata,
            labels: { ...existing.metadata.labels, ...secret.metadata.labels },
            annotations: {
              ...secret.metadata.annotations,
              ...existing.metadata.annotations,
              [kubeconfigForAnnotation]: remarked(existing, marked),
            },
            resourceVersion: existing.metadata.resourceVersion,
          },
        })
        .catch((updateErr: unknown) => {
          throw failed(updateErr);
        });
    } else if (existing !== undefined) {
      throw new Error(
        `Secret ${binding.namespace}/${secretName} exists and is not this binding's kubeconfig: choose another binding name`,
      );
    } else {
      kept = true; // not ours to read: the binding uses it only if it is marked for this binding
    }
  }
  const ref = target.ref;
  const spec = target.older
    ? {
        kubeconfigSecretRef: { name: secretName, key: "kubeconfig" },
        exports: exportEntries(binding, recorded),
      }
    : {
        kubeconfigSecretRef: { name: secretName, namespace: binding.namespace, key: "kubeconfig" },
        apiExports: exportEntries(binding, recorded),
      };
  await client
    .apply(
      ref,
      {
        apiVersion: apiVersionOf(ref),
        kind: "AppClusterBinding",
        metadata: { name: binding.name, namespace: binding.namespace },
        spec,
      },
      fieldManager,
      true,
    )
    .catch(async (err: unknown) => {
      // a Secret we just made for a binding that could not be made: take it back where we may
      if (created) await client.delete(refs.secrets, secretName, binding.namespace).catch(() => undefined);
      throw explain(err, `create AppClusterBinding ${binding.name}`, client.server, binding.namespace);
    });
  return { secretName, kept, ref, older: target.older, account: access.account, expires: access.expires };
}

/**
 * An existing Secret bind may write for binding: marked for it, or carrying the old mark (NAME or
 * NAMESPACE/NAME, before marks named the kind), which binding again renews.
 */
function isOurs(secret: KubeObject, binding: MarkedBinding): boolean {
  if (secret.metadata.labels?.[labels.managedBy] !== kubeconfigSecretLabels[labels.managedBy]) return false;
  const listed = (secret.metadata.annotations?.[kubeconfigForAnnotation] ?? "").split(",").map((n) => n.trim());
  const named = [markOf(binding), `${binding.namespace}/${binding.name}`];
  if (secret.metadata.namespace === binding.namespace) named.push(binding.name);
  return listed.some((n) => named.includes(n));
}

/** The binding's exports with the claims the user was shown, each accepted or rejected: the sync syncs only the accepted. */
function exportEntries(binding: NewBinding, recorded: RecordedClaim[][]) {
  return binding.exports.map((e, i) => ({
    group: e.group,
    resource: e.resource,
    ...(e.permissionClaims ? { permissionClaims: recorded[i] } : {}),
  }));
}

/**
 * Which kind to write: klutch-bind's AppClusterBinding, or ours when a binding of that name was
 * made with it before (binding again records the new answers there; the sync serves both kinds).
 * Refuses a klutch-bind binding of that name whose kubeconfigSecretRef (immutable) names another
 * Secret than bind's.
 */
async function bindingTarget(
  client: KubeClient,
  binding: NewBinding,
  secretName: string,
): Promise<{ ref: ResourceRef; older: boolean }> {
  const existing = await findBindings(client, binding.name, binding.namespace).catch((err: unknown) => {
    // who may not read bindings learns what they may not do from the writes that follow
    if (err instanceof KubeApiError && err.code === 403) return [];
    throw explain(err, `read AppClusterBinding ${binding.name}`, client.server, binding.namespace);
  });
  const klutch = existing.find((b) => !isOlderKind(b));
  const older = existing.find(isOlderKind);
  if (klutch !== undefined) {
    const ref = specOf(klutch).kubeconfigSecretRef;
    if (ref?.name !== secretName || (ref.namespace ?? binding.namespace) !== binding.namespace) {
      throw new Error(
        `AppClusterBinding ${binding.namespace}/${binding.name} exists and reads its kubeconfig from Secret ${ref?.namespace ?? binding.namespace}/${ref?.name ?? "?"} (immutable): choose another binding name, or unbind it first`,
      );
    }
  }
  if (klutch === undefined && older !== undefined) return { ref: refs.bindings, older: true };
  return { ref: refs.klutchBindings, older: false };
}
