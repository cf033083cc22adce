// What a binding holds on the control plane, read as whoever asks (the web page reads as the
// signed-in person, so their RBAC decides): per export, the provider copies of the bound objects
// with their Ready (or Synced) condition; and the claimed objects the sync copied there. Each part
// is one list page at most, read on its own: a part the person may not read says so, the others
// still show. Claimed copies are listed as metadata only, so no Secret's data ever reaches us.
import { distinctExports } from "../api/binding-spec.ts";
import { annotations, labels } from "../api/naming.ts";
import type { KubeClient } from "../kube/client.ts";
import { isRecord } from "../kube/errors.ts";
import { maxShown, onePage, type Part, part } from "./list-part.ts";

const maxMessage = 300;
const maxReason = 100;

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

function cut(text: unknown, max: number): string {
  const s = typeof text === "string" ? text : "";
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/** The version the API server prefers for group, from discovery (which every signed-in person may read). */
export async function preferredVersion(client: KubeClient, group: string): Promise<string> {
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

/** An API group's preferred version; the web page's remembers discovery's answers a while (preferred-versions.ts). */
export type VersionOf = (group: string) => Promise<string>;

/** The binding's contents on the control plane, as client may read them; versionOf asks discovery unless given. */
export async function readBindingContents(
  client: KubeClient,
  binding: { metadata: { uid?: string } } & Parameters<typeof distinctExports>[0],
  versionOf: VersionOf = (group) => preferredVersion(client, group),
): Promise<BindingContents> {
  const uid = binding.metadata.uid ?? "";
  const exports = await Promise.all(
    distinctExports(binding).exports.map(async (e) => {
      const id = `${e.resource}.${e.group}`;
      const copies = await part(`the provider copies of ${id}`, async () => {
        const ref = { group: e.group, version: await versionOf(e.group), resource: e.resource, namespaced: false };
        const page = await onePage(client, ref, { labelSelector: `${labels.binding}=${uid},!${labels.copyOf}` });
        return { items: page.items.map(boundCopy), more: page.more };
      });
      return { id, copies };
    }),
  );
  const claimed = await part("the claimed objects", async () => {
    // both lists ended before the part is: no read of the page outlives its answer
    const read = await Promise.allSettled(
      claimKinds.map(async (k) => ({
        kind: k.kind,
        page: await onePage(client, k.ref, {
          labelSelector: `${labels.binding}=${uid},${labels.copyOf}`,
          accept: metadataOnly,
        }),
      })),
    );
    const pages = read.map((r) => {
      if (r.status === "rejected") throw r.reason;
      return r.value;
    });
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
