// What the sync does with a binding's app cluster service account besides renewing its token: it
// binds the account's claims role in each app namespace it serves (the only place the account
// reaches claimed resources), and removes the account when the binding goes.

import { fieldManager } from "../api/naming.ts";
import { refs } from "../api/resources.ts";
import { KubeApiError, type KubeClient } from "../kube/client.ts";
import { type AppAccount, accountObjects } from "./account.ts";
import { claimsRoleBinding } from "./rbac.ts";

export class AppNamespaceAccess {
  readonly #app: KubeClient;
  readonly account: AppAccount;
  readonly #done = new Set<string>();
  #ownerUid: Promise<string> | undefined;

  constructor(app: KubeClient, account: AppAccount) {
    this.#app = app;
    this.account = account;
  }

  /** Binds the claims role in namespace (once per namespace while this runs). */
  async ensure(namespace: string): Promise<void> {
    if (this.#done.has(namespace)) return;
    const uid = await this.#mainRoleUid();
    await this.#app.apply(refs.roleBindings, claimsRoleBinding(this.account, namespace, uid), fieldManager, true);
    this.#done.add(namespace);
  }

  #mainRoleUid(): Promise<string> {
    const name = accountObjects(this.account).mainRole;
    this.#ownerUid ??= this.#app.get(refs.clusterRoles, name).then((role) => {
      if (role?.metadata.uid === undefined) {
        throw new Error(`the app cluster has no ClusterRole ${name} (the binding's account): bind again`);
      }
      return role.metadata.uid;
    });
    this.#ownerUid.catch(() => {
      this.#ownerUid = undefined;
    });
    return this.#ownerUid;
  }
}

/**
 * Removes the account from the app cluster: its main ClusterRole, which every other object of the
 * account names as owner, so the garbage collector removes the rest (the account may delete that
 * role only). True when it was there.
 */
export async function removeAppAccount(app: KubeClient, account: AppAccount): Promise<boolean> {
  try {
    await app.delete(refs.clusterRoles, accountObjects(account).mainRole, undefined, {
      propagationPolicy: "Background",
    });
    return true;
  } catch (err) {
    if (err instanceof KubeApiError && err.isNotFound) return false;
    throw err;
  }
}
