/** Keys of the exported objects in the desired resources, in both modes. */
export const composedKeys = {
  template: "apiserviceexporttemplate",
  clusterRole: "sync-clusterrole",
  clusterRoleBinding: "sync-clusterrolebinding",
  claimsRole: "sync-claims-clusterrole",
} as const;
