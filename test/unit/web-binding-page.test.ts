// A binding's page as a pure function of what was read: parts left out counted, parts refused
// said so, long condition messages cut, links to the unbind step keeping the binding's kind.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { annotations } from "../../src/api/naming.ts";
import { type BindingContents, boundCopy } from "../../src/bind/binding-contents.ts";
import { bindingPage, bindingSubHref } from "../../src/web/binding-page.ts";
import type { BindingView } from "../../src/web/pages.ts";

const binding: BindingView = {
  name: "orders",
  namespace: "team-a",
  connected: undefined,
  ready: { type: "Ready", status: "True" },
  exports: [{ id: "pgs.example.com", objects: 3 }],
  deleting: false,
  deletionPolicy: "Orphan",
  group: "klutch.anynines.com",
};

function render(contents: BindingContents): string {
  return bindingPage({ user: "u", csrf: "t", binding, conditions: [], contents });
}

describe("the binding page", () => {
  it("counts what it left out, and says what the person may not see", () => {
    const copy = boundCopy({
      metadata: {
        name: "db",
        namespace: "klb-1-apps",
        annotations: { [annotations.consumerName]: "db", [annotations.consumerNamespace]: "apps" },
      },
      status: { conditions: [{ type: "Synced", status: "True", reason: "ReconcileSuccess", message: "" }] },
    });
    const page = render({
      exports: [{ id: "pgs.example.com", copies: { state: "shown", items: [copy], more: 2 } }],
      claimed: { state: "refused", what: "the claimed objects" },
    });
    assert.match(page, /<tr data-copy="klb-1-apps\/db"><td>apps\/db<\/td>/);
    assert.match(page, /Synced: <span class="status True">True<\/span>/, "Synced when there is no Ready");
    assert.match(page, /and 2 more objects of pgs\.example\.com not shown/);
    assert.match(page, /not allowed to see the claimed objects/);
    const uncounted = render({
      exports: [{ id: "pgs.example.com", copies: { state: "shown", items: [copy], more: "some" } }],
      claimed: { state: "shown", items: [], more: 0 },
    });
    assert.match(uncounted, /and more objects of pgs\.example\.com not shown/);
    assert.match(uncounted, /data-part="claimed">none</);
  });

  it("cuts a long condition message and reason", () => {
    const copy = boundCopy({
      metadata: { name: "db", namespace: "p" },
      status: { conditions: [{ type: "Ready", status: "False", reason: "r".repeat(500), message: "m".repeat(5000) }] },
    });
    assert.equal(copy.condition?.message.length, 301);
    assert.equal(copy.condition?.reason.length, 101);
    assert.equal(copy.appName, "db", "the copy's own name when it does not say the app object's");
  });

  it("links to the unbind step with the binding's kind", () => {
    assert.equal(bindingSubHref(binding, "/unbind"), "/bindings/team-a/orders/unbind");
    assert.equal(
      bindingSubHref({ ...binding, group: "bind.klutch.dev" }, "/unbind"),
      "/bindings/team-a/orders/unbind?group=bind.klutch.dev",
    );
    assert.equal(bindingSubHref(binding, "", "unbinding=1"), "/bindings/team-a/orders?unbinding=1");
  });
});
