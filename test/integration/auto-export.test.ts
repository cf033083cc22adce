// Export by label: the sync keeps one ServiceExport per labelled XRD. Crossplane's own CRDs cannot
// be fetched here (the Go module proxy refuses the module), so a stand-in XRD CRD and the CRD
// Crossplane would generate from our ServiceExport XRD are installed instead.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { pino } from "pino";
import { parse } from "yaml";
import { refs } from "../../src/api/resources.ts";
import { claimsAnnotation, exportLabel } from "../../src/export/labelled.ts";
import { KubeClient, type KubeObject } from "../../src/kube/client.ts";
import { isEstablished } from "../../src/kube/conditions.ts";
import { autoExportLabel } from "../../src/sync/auto-export.ts";
import { startSync } from "../../src/sync/manager.ts";
import { xrd as xrdFixture } from "../fixtures/xrds.ts";
import { clientConfig, onFileDone, testClusters, uniqueSuffix } from "../support/clusters.ts";
import { crdFromXrd, crossplaneCrd, xrdCrdFile } from "../support/crossplane-standin.ts";
import { eventually } from "../support/eventually.ts";
import { readManifests } from "../support/manifests.ts";

describe("automatic export of labelled XRDs", () => {
  let client: KubeClient;
  const group = `auto${uniqueSuffix()}.klutch-bind.test`;
  const name = `widgets.${group}`;

  const serviceExport = () => client.get(refs.serviceExports, name);

  async function writeXrd(mutate: (xrd: KubeObject) => void): Promise<void> {
    const current = await client.get(refs.xrds, name);
    assert.ok(current);
    mutate(current);
    await client.update(refs.xrds, current);
  }

  before(async () => {
    const { control } = await testClusters();
    client = KubeClient.fromConfig(clientConfig(control));
    onFileDone(async () => client.close());
    for (const crd of [
      crossplaneCrd(xrdCrdFile),
      crdFromXrd(readManifests("deploy/control-plane/serviceexport-xrd.yaml")[0] as KubeObject),
    ]) {
      await client.apply(refs.crds, crd, "test", true);
      await eventually(`${crd.metadata.name} served`, async () => {
        assert.ok(isEstablished(await client.get(refs.crds, crd.metadata.name)));
        await client.list(refs.xrds);
      });
    }
    const sync = await startSync({
      control: client,
      // the test's app clusters listen on 127.0.0.1
      allowLoopbackAppServers: true,
      logger: pino({ level: "silent" }),
      workers: 2,
      namespace: "none",
      autoExport: true,
    });
    onFileDone(async () => {
      await sync.stop();
      await client.delete(refs.xrds, name);
      await client.delete(refs.serviceExports, name);
    });
  });

  it("creates a ServiceExport for an XRD labelled for export, with the claims of its annotation", async () => {
    const xrd = xrdFixture({ group, plural: "widgets", kind: "Widget" });
    xrd.metadata = {
      name,
      labels: { [exportLabel]: "true" },
      annotations: {
        [claimsAnnotation]: "- group: ''\n  resource: secrets\n  version: v1\n  selector:\n    owner: Provider\n",
      },
    };
    await client.create(refs.xrds, xrd as KubeObject);
    await eventually("ServiceExport created", async () => {
      const se = await serviceExport();
      assert.deepEqual(se?.spec, {
        xrd: name,
        permissionClaims: [{ group: "", resource: "secrets", version: "v1", selector: { owner: "Provider" } }],
      });
      assert.equal(se?.metadata.labels?.[autoExportLabel], "true");
    });
  });

  it("follows a change of the annotation (JSON too)", async () => {
    const claims = [
      { group: "", resource: "configmaps", version: "v1", selector: { owner: "Consumer", names: ["app-*"] } },
    ];
    await writeXrd((xrd) => {
      xrd.metadata.annotations = { [claimsAnnotation]: JSON.stringify(claims) };
    });
    await eventually("ServiceExport updated", async () => {
      assert.deepEqual((await serviceExport())?.spec, { xrd: name, permissionClaims: claims });
    });
  });

  it("reports a broken annotation as an event on the XRD and leaves the export as it was", async () => {
    const before = await serviceExport();
    await writeXrd((xrd) => {
      xrd.metadata.annotations = {
        [claimsAnnotation]: "- group: ''\n  resource: secrets\n  version: v1\n  selector: {owner: Somebody}\n",
      };
    });
    await eventually("a Warning event names the field", async () => {
      const events = await client.list(refs.events, {
        namespace: "default",
        fieldSelector: `involvedObject.name=${name}`,
      });
      const event = events.items.find((e) => e.reason === "InvalidPermissionClaims");
      assert.match(
        String(event?.message),
        /\[0\]\.selector\.owner: must be one of "Provider", "Consumer", got "Somebody"/,
      );
    });
    const after = await serviceExport();
    assert.deepEqual(after?.spec, before?.spec);
    assert.equal(after?.metadata.resourceVersion, before?.metadata.resourceVersion, "not written");
  });

  it("refuses a subresource claim, and warns of an escalation-prone one while the function decides", async () => {
    const messagesOf = async (reason: string) => {
      const events = await client.list(refs.events, {
        namespace: "default",
        fieldSelector: `involvedObject.name=${name}`,
      });
      return events.items.filter((e) => e.reason === reason).map((e) => String(e.message));
    };
    await writeXrd((xrd) => {
      xrd.metadata.annotations = {
        [claimsAnnotation]: "- {group: '', resource: pods/exec, version: v1, selector: {owner: Provider}}\n",
      };
    });
    await eventually("the subresource is an InvalidPermissionClaims event", async () => {
      const messages = await messagesOf("InvalidPermissionClaims");
      assert.ok(
        messages.some((m) => /\[0\]\.resource: must be a resource, not a subresource/.test(m)),
        messages.join("\n"),
      );
    });
    const pods = [{ group: "", resource: "pods", version: "v1", selector: { owner: "Provider" } }];
    await writeXrd((xrd) => {
      xrd.metadata.annotations = { [claimsAnnotation]: JSON.stringify(pods) };
    });
    await eventually("the export goes ahead, with a warning naming the claim", async () => {
      assert.deepEqual((await serviceExport())?.spec, { xrd: name, permissionClaims: pods });
      assert.match(
        (await messagesOf("EscalationProneClaims")).join("\n"),
        /\[0\] claims pods \(.*\): escalation-prone, so the function refuses the export unless its input lists each in allowedClaims/,
      );
    });
  });

  it("deletes the export when the label goes, and again when the XRD goes", async () => {
    await writeXrd((xrd) => {
      xrd.metadata.labels = {};
      xrd.metadata.annotations = {};
    });
    await eventually("deleted with the label", async () => assert.equal(await serviceExport(), undefined));
    await writeXrd((xrd) => {
      xrd.metadata.labels = { [exportLabel]: "true" };
    });
    await eventually("back with the label", async () => assert.deepEqual((await serviceExport())?.spec, { xrd: name }));
    await client.delete(refs.xrds, name);
    await eventually("deleted with the XRD", async () => assert.equal(await serviceExport(), undefined));
  });

  it("never takes over a ServiceExport it did not make, even for a labelled XRD of that name", async () => {
    const other = `gadgets.${group}`;
    const handMade = parse(
      `apiVersion: bind.klutch.dev/v1alpha1\nkind: ServiceExport\nmetadata: {name: ${other}, labels: {team: mine}}\nspec: {xrd: ${other}}\n`,
    ) as KubeObject;
    const made = await client.create(refs.serviceExports, handMade);
    const xrd = xrdFixture({ group, plural: "gadgets", kind: "Gadget" });
    xrd.metadata = { name: other, labels: { [exportLabel]: "true" } };
    await client.create(refs.xrds, xrd as KubeObject);
    onFileDone(async () => {
      await client.delete(refs.xrds, other);
      await client.delete(refs.serviceExports, other);
    });
    await eventually("the controller says why it leaves it alone", async () => {
      const events = await client.list(refs.events, {
        namespace: "default",
        fieldSelector: `involvedObject.name=${other}`,
      });
      assert.ok(events.items.some((e) => e.reason === "ServiceExportNotOurs"));
    });
    const after = await client.get(refs.serviceExports, other);
    assert.equal(after?.metadata.resourceVersion, made.metadata.resourceVersion, "not written");
    assert.deepEqual(after?.metadata.labels, { team: "mine" });
  });
});
