// What a binding holds on the control plane, read as whoever asks (the web page reads as the
// signed-in person, so their RBAC decides): per export, the provider copies of the bound objects
// with their Ready (or Synced) condition; and the claimed objects the sync copied there. Each part
// is one list page at most, read on its own: a part the person may not read says so, the others
// still show. Claimed copies are listed as metadata only, so no Secret's data ever reaches us.
import { distinctExports } from "../api/binding-spec.ts";
import { annotations, labels } from "../api/naming.ts";
import { KubeApiError, type KubeClient, type ResourceRef, resourcePath } from "../kube/client.ts";
import { isRecord } from "../kube/errors.ts";

/** objects shown per part at most; the rest are counted ("and N more") when the API server says how many */
export const maxShown = 500;
const maxMessage = 300;
const maxReason = 100;

/** One part of the page: what was read, or why it was not. more: the objects left out, "some" when uncounted. */
export type Part<T> =
  | { state: "shown"; items: T[]; more: number | "some" }
  | { state: "refused"; what: string }
  | { state: "failed"; message: string };

export type BoundCopy = {
  /** the copy on the control plane (its namespace: a provider namespace of the binding) */
  namespace: string;
  name: string;
  /** the app object it mirrors */
  appNamespace: string;
  appName: string;
  /** Ready, else Synced; reason and message cut to a bounded length */
  condition?: { type: string; status: string; reason: string; message: string };
  deleting: boolean;
};

export type ClaimedCopy = {
  kind: "Secret" | "ConfigMap";
  namespace: string;
  name: string;
  /** the side that owns the original: the app cluster ("consumer") or the provider */
  from: "consumer" | "provider";
  /** when the copy was made */
  created: string;
};

export type BindingContents = {
  exports: Array<{ id: string; copies: Part<BoundCopy> }>;
  claimed: Part<ClaimedCopy>;
};

type Page = { items: Array<Record<string, unknown>>; more: number | "some" };

function cut(text: unknown, max: number): string {
  const s = typeof text === "string" ? text : "";
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** One page of a list in all namespaces; accept asks for metadata only. */
async function onePage(client: KubeClient, ref: ResourceRef, labelSelector: string, accept?: string): Promise<Page> {
  const path = resourcePath({ ...ref, namespaced: false });
  const answer = await client.request<Record<string, unknown>>("GET", path, {
    query: { labelSelector, limit: String(maxShown) },
    ...(accept ? { accept } : {}),
  });
  const items = Array.isArray(answer.items) ? answer.items.filter(isRecord).slice(0, maxShown) : [];
  const meta = isRecord(answer.metadata) ? answer.metadata : {};
  const remaining = typeof meta.remainingItemCount === "number" ? meta.remainingItemCount : undefined;
  const more = typeof meta.continue === "string" && meta.continue !== "" ? (remaining ?? "some") : 0;
  return { items, more };
}

async function part<T>(what: string, read: () => Promise<{ items: T[]; more: number | "some" }>): Promise<Part<T>> {
  try {
    return { state: "shown", ...(await read()) };
  } catch (err) {
    if (err instanceof KubeApiError && (err.code === 403 || err.code === 401)) return { state: "refused", what };
    return { state: "failed", message: `${what}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The version the API server prefers for group, from discovery (which every signed-in person may read). */
async function preferredVersion(client: KubeClient, group: string): Promise<string> {
  if (group === "") return "v1";
  const answer = await client.request<Record<string, unknown>>("GET", `/apis/${encodeURIComponent(group)}`);
  const version = isRecord(answer.preferredVersion) ? str(answer.preferredVersion.version) : "";
  if (version === "") throw new Error(`the API server names no preferred version of ${group}`);
  return version;
}

/** A provider copy as the page shows it: Ready, else Synced; reason and message cut to a bounded length. */
export function boundCopy(item: Record<string, unknown>): BoundCopy {
  const meta = isRecord(item.metadata) ? item.metadata : {};
  const notes = isRecord(meta.annotations) ? meta.annotations : {};
  const status = isRecord(item.status) ? item.status : {};
  const conditions = Array.isArray(status.conditions) ? status.conditions.filter(isRecord) : [];
  const condition = conditions.find((c) => c.type === "Ready") ?? conditions.find((c) => c.type === "Synced");
  const name = str(meta.name);
  return {
    namespace: str(meta.namespace),
    name,
    appNamespace: str(notes[annotations.consumerNamespace]),
    appName: str(notes[annotations.consumerName]) || name,
    ...(condition
      ? {
          condition: {
            type: str(condition.type),
            status: str(condition.status) || "Unknown",
            reason: cut(condition.reason, maxReason),
            message: cut(condition.message, maxMessage),
          },
        }
      : {}),
    deleting: meta.deletionTimestamp !== undefined,
  };
}

const claimKinds = [
  { kind: "Secret", ref: { group: "", version: "v1", resource: "secrets", namespaced: true } },
  { kind: "ConfigMap", ref: { group: "", version: "v1", resource: "configmaps", namespaced: true } },
] as const;

const metadataOnly = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/** The binding's contents on the control plane, as client may read them. */
export async function readBindingContents(
  client: KubeClient,
  binding: { metadata: { uid?: string } } & Parameters<typeof distinctExports>[0],
): Promise<BindingContents> {
  const uid = binding.metadata.uid ?? "";
  const exports = await Promise.all(
    distinctExports(binding).exports.map(async (e) => {
      const id = `${e.resource}.${e.group}`;
      const copies = await part(`the provider copies of ${id}`, async () => {
        const ref = { group: e.group, version: await preferredVersion(client, e.group), resource: e.resource };
        const page = await onePage(client, { ...ref, namespaced: false }, `${labels.binding}=${uid},!${labels.copyOf}`);
        return { items: page.items.map(boundCopy), more: page.more };
      });
      return { id, copies };
    }),
  );
  const claimed = await part("the claimed objects", async () => {
    const pages = await Promise.all(
      claimKinds.map(async (k) => ({
        kind: k.kind,
        page: await onePage(client, k.ref, `${labels.binding}=${uid},${labels.copyOf}`, metadataOnly),
      })),
    );
    const items: ClaimedCopy[] = [];
    let more: number | "some" = 0;
    for (const { kind, page } of pages) {
      for (const item of page.items) {
        const meta = isRecord(item.metadata) ? item.metadata : {};
        const marks = isRecord(meta.labels) ? meta.labels : {};
        items.push({
          kind,
          namespace: str(meta.namespace),
          name: str(meta.name),
          from: marks[labels.copyOf] === "provider" ? "provider" : "consumer",
          created: str(meta.creationTimestamp),
        });
      }
      more = more === "some" || page.more === "some" ? "some" : more + page.more;
    }
    const shown = items.slice(0, maxShown);
    const cutOff = items.length - shown.length;
    return { items: shown, more: more === "some" ? "some" : more + cutOff };
  });
  return { exports, claimed };
}
