// The bind a `kubectl bind URL` run asked for, finished once the signed-in person chose: checked
// as the person, then provisioned with the page's own rights. The person must be allowed to create
// klutch-bind's AppClusterBindings in the namespace they bind from (a SelfSubjectAccessReview made
// as the person, impersonated): that is the right that lets them bind an app cluster on the page
// today, so kubectl bind gives no one more. Only then does the page, as itself, make the cluster
// namespace, its account and ClusterBinding (provisionPullBinding) and the APIServiceExportRequest
// the sync answers. The kubeconfig minted goes only into the callback location.
import { fieldManager } from "../api/naming.ts";
import { pullApiVersion, pullRefs } from "../api/pull-binding.ts";
import { refs } from "../api/resources.ts";
import { type BindableApi, listVisibleBindable, pickExports } from "../bind/bindable.ts";
import { ClaimSelectionError, choicesOf, type Decisions, decide, selectClaims } from "../bind/claim-choice.ts";
import { namespaceName } from "../export/decode.ts";
import type { KubeClient } from "../kube/client.ts";
import { provisionPullBinding } from "../provider/provision.ts";
import { type BindAnswer, exportRequest, type PendingBind, type RequestedApi } from "./kubectl-bind.ts";

export class CliBindRefused extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

export type CliBindOptions = {
  /** the page's own client: provisions */
  control: KubeClient;
  /** the person's client (impersonating them): reads the bindable APIs, asks the access review */
  person: KubeClient;
  identity: string;
  pending: Pick<PendingBind, "clusterId" | "dryRun">;
  choice: BindChoice;
  /** the control plane's address and CA for the binding's kubeconfig (default the page client's server) */
  server?: string;
  certificateAuthorityData?: string;
};

/** namespace: the binding's cluster namespace on the control plane ("" on a dry run, which makes none) */
export type CliBindDone = { answer: BindAnswer; namespace: string; api: string; accepted: string[] };

async function mayBind(person: KubeClient, namespace: string): Promise<boolean> {
  const review = await person.request<{ status?: { allowed?: boolean } }>(
    "POST",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    {
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: {
          resourceAttributes: {
            group: refs.klutchBindings.group,
            resource: refs.klutchBindings.resource,
            verb: "create",
            namespace,
          },
        },
      },
    },
  );
  return review.status?.allowed === true;
}

/** What the person chose: where they bind from, the one API, and each of its claims accepted or not. */
export type BindChoice = {
  namespace: string;
  wanted: string[];
  /** the claims decided for the exports as they are now; throws CliBindRefused when it cannot */
  decide: (exports: readonly BindableApi[]) => Decisions;
};

/** The choice posted by the page's form: every claim it showed, those checked accepted. */
export function formChoice(form: URLSearchParams): BindChoice {
  const shown = new Set(form.getAll("shown-claim"));
  const checked = new Set(form.getAll("claim"));
  return {
    namespace: (form.get("namespace") ?? "").trim(),
    wanted: form.getAll("export"),
    decide: (exports) => {
      const unseen = choicesOf(exports).filter((c) => !shown.has(`${c.api.id}/${c.key}`));
      if (unseen.length > 0) {
        throw new CliBindRefused(
          `the permission claims changed since the page was shown (${unseen.map((c) => c.name).join(", ")}): review them and bind again`,
        );
      }
      return decide(exports, (c) => checked.has(`${c.api.id}/${c.key}`));
    },
  };
}

/** The choice of a headless bind: its claims as --accept-claims names them (all, none, entries). */
export function acceptedChoice(namespace: string, wanted: string[], acceptClaims: string[]): BindChoice {
  return {
    namespace,
    wanted,
    decide: (exports) => {
      // an API without claims needs no answer about them, as klutch-bind bind has it
      if (acceptClaims.length === 0 && choicesOf(exports).length === 0) return decide(exports, () => false);
      try {
        return selectClaims(exports, acceptClaims);
      } catch (err) {
        if (err instanceof ClaimSelectionError)
          throw new CliBindRefused(err.message.replace(/^--accept-claims/, "accept-claims"));
        throw err;
      }
    },
  };
}

export async function finishCliBind(options: CliBindOptions): Promise<CliBindDone> {
  const { choice, person } = options;
  const { namespace, wanted } = choice;
  namespaceName(namespace, "namespace");
  if (wanted.length !== 1) throw new CliBindRefused("choose one API to bind");
  if (!(await mayBind(person, namespace))) {
    throw new CliBindRefused(
      `you may not bind app clusters from namespace ${namespace} (create appclusterbindings.${refs.klutchBindings.group} there)`,
      403,
    );
  }
  const exports = pickExports(await listVisibleBindable(person, namespace), wanted);
  const decisions = choice.decide(exports);
  const [api] = exports;
  if (api === undefined) throw new CliBindRefused("choose one API to bind");
  const states = decisions.get(api.id) ?? [];
  const requested: RequestedApi = {
    group: api.group,
    resource: api.resource,
    version: api.version,
    claims: (api.permissionClaims ?? []).filter((_, i) => states[i] === "Accepted"),
  };
  const requestName = api.id;
  const accepted = choicesOf(exports)
    .filter((c) => states[c.index] === "Accepted")
    .map((c) => c.name);
  if (options.pending.dryRun === true) {
    return {
      answer: { identity: options.identity, kubeconfig: "", api: requested, requestName },
      namespace: "",
      api: api.id,
      accepted,
    };
  }
  const provisioned = await provisionPullBinding(options.control, {
    identity: options.identity,
    clusterId: options.pending.clusterId,
    apis: [{ id: api.id, claims: requested.claims }],
    ...(options.server ? { server: options.server } : {}),
    ...(options.certificateAuthorityData ? { certificateAuthorityData: options.certificateAuthorityData } : {}),
  });
  await options.control.apply(
    pullRefs.exportRequests,
    exportRequest(pullApiVersion, requestName, requested, provisioned.namespace),
    fieldManager,
    true,
  );
  return {
    answer: { identity: options.identity, kubeconfig: provisioned.kubeconfig, api: requested, requestName },
    namespace: provisioned.namespace,
    api: api.id,
    accepted,
  };
}
