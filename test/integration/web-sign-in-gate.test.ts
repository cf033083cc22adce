// Anyone who reaches the web page can make it check a token (a sign-in form, a headless bind), and
// the page may share its process with the sync: the checks it runs at once are bounded, and one more
// is answered 503 at once, never queued. Shown with the control plane's API server frozen (SIGSTOP),
// so that the checks already begun hang where a slow or flooded control plane would hold them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { KubeClient } from "../../src/kube/client.ts";
import { startWebServer } from "../../src/web/server.ts";
import { launcherPid } from "../support/cluster.ts";
import { clientConfig, freshCluster, onFileDone } from "../support/clusters.ts";
import { eventually } from "../support/eventually.ts";

describe("the web page's sign-in checks, bounded", () => {
  it("answers a sign-in beyond those it checks at once with 503 at once, and checks again once they end", async () => {
    const control = await freshCluster("sign-in-gate");
    const client = KubeClient.fromConfig(clientConfig(control), { timeoutMs: 120_000 });
    onFileDone(async () => client.close());
    const web = await startWebServer({
      control: client,
      logger: pino({ level: "silent" }),
      address: "127.0.0.1:0",
      defaultNamespace: "default",
      maxSignInsAtOnce: 2,
    });
    onFileDone(() => web.stop());
    const headless = (token: string) =>
      fetch(`${web.url}/cli-bind/headless`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/x-www-form-urlencoded" },
        body: "cluster-id=abc&namespace=default&export=x.example.com",
      });
    const pid = launcherPid(control.dir);
    assert.ok(pid, "the API server's process");
    process.kill(pid, "SIGSTOP");
    let resumed = false;
    const resume = () => {
      if (!resumed) process.kill(pid, "SIGCONT");
      resumed = true;
    };
    onFileDone(async () => resume());
    try {
      // two checks begin and hang on the frozen API server; the third only once both are under way
      const hanging = [headless("first"), headless("second")];
      await eventually("both checks under way", () => assert.equal(web.signInsChecked(), 2));
      const third = await headless("third");
      assert.equal(third.status, 503);
      assert.match(await third.text(), /too many sign-ins are being checked at once/);
      assert.equal(third.headers.get("retry-after"), "5");
      resume();
      for (const answer of await Promise.all(hanging)) assert.equal(answer.status, 401, "checked, and refused");
    } finally {
      resume();
    }
    const after = await headless("fourth");
    assert.equal(after.status, 401, "checks run again once the others ended");
  });
});
