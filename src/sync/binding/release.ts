// Letting go of a binding, or of one export of it: what `klutch-bind unbind` does, done by the sync
// itself when the binding is deleted (kubectl, GitOps) or an export leaves its spec. App objects
// lose our finalizer; provider copies stay (deletionPolicy Orphan, the default: nothing is lost) or
// are deleted (Delete); the sync's own access to the provider namespaces goes either way.
import type { Logger } from "pino";
import { bindingKey, type DeletionPolicy, distinctExports, markedBinding, specOf } from "../../api/binding-spec.ts";
import { type KubeconfigSecretPolicy, markedForOnly } from "../../api/kubeconfig-secret.ts";
import { labels } from "../../api/naming.ts";
import { refs } from "../../api/resources.ts";
import { removeAppAccount } from "../../app-access/namespace-access.ts";
import { appAccessOf } from "../../app-access/token-renewal.ts";
import type { ClientOptions, KubeClient, KubeObject, ResourceRef } from "../../kube/client.ts";
import { bindingObject, type EventRecorder } from "../events.ts";
import { deleteProviderCopies, releaseAppObjects } from "../mirror/release.ts";
import { appClient, readKubeconfig } from "./app-kubeconfig.ts";

export type ReleaseTarget = {
  control: KubeClient;
  /** undefined when the binding has no usable kubeconfig: app objects cannot be released then */
  app: KubeClient | undefined;
  bindingUid: string;
  policy: DeletionPolicy;
  log: Logger;
};

/** Counts of what a release did, for the log and the tests. */
export type Released = { appObjects: number; providerCopies: number; accessRemoved: number };

/** Releases one export of a binding: ref is the exported resource, exportId its "resource.group". */
export async function releaseExport(target: ReleaseTarget, ref: ResourceRef, exportId: string): Promise<Released> {
  const done: Released = { appObjects: 0, providerCopies: 0, accessRemoved: 0 };
  const { control, app, bindingUid, policy } = target;
  if (app !== undefined) done.appObjects = await releaseAppObjects(app, ref, exportId, bindingUid);
  if (policy === "Delete") done.providerCopies = await deleteProviderCopies(control, ref, bindingUid);
  const ours = { labelSelector: `${labels.binding}=${bindingUid}` };
  const access = await control.list(refs.roleBindings, ours);
  for (const rb of access.items) {
    if (rb.metadata.name !== claimsAccessName(exportId)) continue;
    await control.delete(refs.roleBindings, rb.metadata.name, rb.metadata.namespace);
    done.accessRemoved++;
  }
  target.log.info({ export: exportId, policy, ...done }, "released export");
  return done;
}

/** After every export is released: with Delete, the binding's provider namespaces go too. */
export async function releaseNamespaces(target: ReleaseTarget): Promise<number> {
  if (target.policy !== "Delete") return 0;
  const namespaces = await target.control.list(refs.namespaces, {
    labelSelector: `${labels.binding}=${target.bindingUid}`,
  });
  for (const ns of namespaces.items) {
    if (ns.metadata.deletionTimestamp === undefined) await target.control.delete(refs.namespaces, ns.metadata.name);
  }
  return namespaces.items.length;
}

/** The RoleBinding that gives the sync an export's claimed resources in one provider namespace. */
export function claimsAccessName(exportId: string): string {
  return `klutch-bind:claims:${exportId}`.slice(0, 253);
}

/** How a binding lets go: its deletionPolicy (Orphan unless it says Delete), with the given app client. */
export function releaseTarget(
  control: KubeClient,
  logger: Logger,
  binding: KubeObject,
  app: KubeClient | undefined,
): ReleaseTarget {
  return {
    control,
    app,
    bindingUid: binding.metadata.uid ?? "",
    policy: specOf(binding).deletionPolicy === "Delete" ? "Delete" : "Orphan",
    log: logger.child({ binding: bindingKey(binding) }),
  };
}

export type ReleaseDeps = {
  control: KubeClient;
  appClientOptions: ClientOptions | undefined;
  logger: Logger;
  events: EventRecorder;
  kubeconfigSecrets?: KubeconfigSecretPolicy;
  /** makes the app client's view every write goes through (controller.ts: fenced with --shards) */
  fence?: (client: KubeClient) => KubeClient;
};

/**
 * A deleted binding: release every export (app objects lose our finalizer, provider copies go or
 * stay as spec.deletionPolicy says), then, with Delete, the provider namespaces, and the binding's
 * own kubeconfig Secret. An app cluster that does not answer holds the binding (the error retries
 * with backoff); one whose kubeconfig is gone cannot be released, which a Warning says.
 */
export async function releaseBinding(deps: ReleaseDeps, binding: KubeObject): Promise<void> {
  const kubeconfig = await readKubeconfig(deps.control, binding, deps.kubeconfigSecrets);
  let owner: KubeClient | undefined;
  try {
    owner = kubeconfig.ok ? appClient(kubeconfig, deps.appClientOptions) : undefined;
  } catch {
    owner = undefined;
  }
  const app = owner && deps.fence ? deps.fence(owner) : owner;
  if (app === undefined) {
    await deps.events.warn(
      bindingObject({
        uid: binding.metadata.uid ?? "",
        name: binding.metadata.name,
        namespace: binding.metadata.namespace ?? "",
      }),
      "AppObjectsNotReleased",
      "the binding's kubeconfig Secret is gone or unusable: the app cluster's objects keep the finalizer bind.klutch.dev/sync; remove it there by hand",
      deps.control,
    );
  }
  const target = releaseTarget(deps.control, deps.logger, binding, app);
  try {
    for (const e of distinctExports(binding).exports) {
      const id = `${e.resource}.${e.group}`;
      const crd = (await deps.control.get(refs.crds, id)) ?? (await app?.get(refs.crds, id).catch(() => undefined));
      if (crd === undefined) continue;
      const crdSpec = crd.spec as { scope?: string; versions?: Array<{ name: string; storage?: boolean }> };
      const version = crdSpec.versions?.find((v) => v.storage)?.name ?? crdSpec.versions?.[0]?.name ?? "";
      const ref = {
        group: e.group,
        version,
        resource: e.resource,
        namespaced: crdSpec.scope === "Namespaced",
      };
      await releaseExport(target, ref, id);
    }
    await releaseNamespaces(target);
    // the binding's service account in the app cluster, if bind made one, and the kubeconfig Secret
    // go with the binding only when the Secret was made for this binding alone: its mark names it
    // exactly (kind, namespace, name) and no other binding
    const own = kubeconfig.ok && markedForOnly(kubeconfig.secret, markedBinding(binding));
    const access = own ? appAccessOf(kubeconfig.secret, kubeconfig.text) : undefined;
    if (app !== undefined && access !== undefined) {
      const removed = await removeAppAccount(app, access.account);
      target.log.info(
        { account: `${access.account.namespace}/${access.account.name}`, removed },
        "removed the binding's app cluster account",
      );
    }
    const secret = kubeconfig.secret;
    if (own && secret !== undefined) {
      await deps.control
        .delete(refs.secrets, secret.metadata.name, secret.metadata.namespace, { uid: secret.metadata.uid })
        .catch((err: unknown) =>
          target.log.warn(
            { err: err instanceof Error ? err.message : String(err) },
            "could not delete the binding's kubeconfig Secret (grant the sync delete on secrets there)",
          ),
        );
    }
  } finally {
    owner?.close();
  }
}
