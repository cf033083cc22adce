// A binding's finalizer: put on before anything is synced for it, and taken off once a deleted
// binding was released in both clusters (release.ts), so nothing of it is left behind.
import type { BindingKind } from "../../api/binding-spec.ts";
import { finalizer } from "../../api/naming.ts";
import type { ClientOptions, KubeClient, KubeObject } from "../../kube/client.ts";
import type { EventRecorder } from "../events.ts";
import type { BindingControllerOptions } from "./options.ts";
import { releaseBinding } from "./release.ts";

export function holdsFinalizer(binding: KubeObject): boolean {
  return binding.metadata.finalizers?.includes(finalizer) === true;
}

/** Puts our finalizer on the binding (fenced: the binding's client as its writes must use it). */
export async function addFinalizer(fenced: KubeClient, kind: BindingKind, binding: KubeObject): Promise<void> {
  await fenced.update(kind.ref, {
    ...binding,
    metadata: { ...binding.metadata, finalizers: [...(binding.metadata.finalizers ?? []), finalizer] },
  });
}

/**
 * Releases a deleted binding in both clusters, then takes our finalizer off it. fence: a client as
 * the binding's writes must use it.
 */
export async function releaseDeleted(
  options: BindingControllerOptions,
  events: EventRecorder,
  appClientOptions: ClientOptions,
  fence: (client: KubeClient) => KubeClient,
  kind: BindingKind,
  binding: KubeObject,
): Promise<void> {
  await releaseBinding(
    {
      control: fence(options.control),
      appClientOptions,
      logger: options.logger,
      events,
      kubeconfigSecrets: options.kubeconfigSecrets ?? "marked",
      fence,
    },
    binding,
  );
  const finalizers = (binding.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  await fence(options.control).update(kind.ref, { ...binding, metadata: { ...binding.metadata, finalizers } });
}
