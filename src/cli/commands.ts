// The subcommands of klutch-bind. Each command's code is loaded only when it runs (or shows its
// help): the function server stays free of the Kubernetes client, the sync and the web page, which
// keeps its heap, and so its GC pauses, small.
import type { CommandHelp } from "./help.ts";

export type CommandModule = { run: (args: string[]) => Promise<number>; help: CommandHelp };
export type Command = { summary: string; load: () => Promise<CommandModule> };

export const commands: Record<string, Command> = {
  exports: {
    summary: "list the APIs the control plane offers for binding, with their claims",
    load: async () => {
      const m = await import("./exports.ts");
      return { run: m.runExports, help: m.exportsHelp };
    },
  },
  bind: {
    summary: "bind exported APIs into an app cluster and wait until it is Ready",
    load: async () => {
      const m = await import("./bind.ts");
      return { run: (args) => m.runBind(args), help: m.bindHelp };
    },
  },
  "bind-url": {
    summary: "bind an API from the app cluster: klutch-bind bind URL signs in at the page and installs a konnector",
    load: async () => {
      const m = await import("./bind-url.ts");
      return { run: m.runBindUrl, help: m.bindUrlHelp };
    },
  },
  unbind: {
    summary: "stop binding an app cluster (--delete or --orphan its objects)",
    load: async () => {
      const m = await import("./unbind.ts");
      return { run: m.runUnbind, help: m.unbindHelp };
    },
  },
  "unbind-app": {
    summary: "undo bind URL for one API: klutch-bind unbind --app RESOURCE.GROUP, the konnector releasing it",
    load: async () => {
      const m = await import("./unbind-app.ts");
      return { run: m.runUnbindApp, help: m.unbindAppHelp };
    },
  },
  status: {
    summary: "show the health and counts of the bindings",
    load: async () => {
      const m = await import("./status.ts");
      return { run: m.runStatus, help: m.statusHelp };
    },
  },
  function: {
    summary: "serve the Crossplane composition function (gRPC, port 9443)",
    load: async () => {
      const m = await import("./function.ts");
      return { run: m.runFunction, help: m.functionHelp };
    },
  },
  sync: {
    summary: "mirror bound objects and claimed resources between control plane and app clusters",
    load: async () => {
      const m = await import("./sync.ts");
      return { run: m.runSync, help: m.syncHelp };
    },
  },
  konnector: {
    summary: "serve the app cluster's pull bindings: mirror their objects with the control plane (preview)",
    load: async () => {
      const m = await import("./konnector.ts");
      return { run: m.runKonnector, help: m.konnectorHelp };
    },
  },
  version: {
    summary: "print the version of klutch-bind and its runtime",
    load: async () => {
      const m = await import("./version.ts");
      return { run: m.runVersion, help: m.versionHelp };
    },
  },
};
