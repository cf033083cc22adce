// Per-claim consent when binding: the --accept-claims selection, the question asked claim by claim
// (fed by a stream, as a terminal would), and how bind chooses between them.
import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import type { BindableApi } from "../../src/bind/bindable.ts";
import { recordedClaims } from "../../src/bind/binding.ts";
import {
  askClaims,
  ClaimSelectionError,
  choicesOf,
  claimKey,
  claimName,
  type Decisions,
  selectClaims,
  summary,
} from "../../src/bind/claim-choice.ts";
import { decideClaims } from "../../src/cli/bind.ts";
import { UsageError } from "../../src/cli/usage.ts";
import { describeClaim } from "../../src/export/describe.ts";
import type { PermissionClaim } from "../../src/export/types.ts";

const secrets: PermissionClaim = {
  group: "",
  resource: "secrets",
  version: "v1",
  selector: { owner: "Provider", names: ["*-credentials"] },
};
const configMaps: PermissionClaim = {
  group: "",
  resource: "configmaps",
  version: "v1",
  selector: { owner: "Consumer" },
};
const backups: PermissionClaim = {
  group: "backups.example.com",
  resource: "schedules",
  version: "v1",
  selector: { owner: "Provider" },
};

function api(id: string, claims: PermissionClaim[]): BindableApi {
  const [resource = "", ...group] = id.split(".");
  return {
    id,
    group: group.join("."),
    resource,
    version: "v1",
    template: `ns/${resource}`,
    claims: claims.map(describeClaim),
    permissionClaims: claims,
  };
}

const postgres = api("postgresqlinstances.anynines.com", [secrets, configMaps]);
const redis = api("redisinstances.anynines.com", [secrets, backups]);

const states = (decisions: Decisions) => Object.fromEntries(decisions);

/** A stand-in for stdin: the lines typed, and whether it is a terminal. */
function stdin(lines: string[], isTTY: boolean): NodeJS.ReadableStream & { isTTY?: boolean } {
  const stream = Readable.from(lines.map((l) => `${l}\n`)) as Readable & { isTTY?: boolean };
  stream.isTTY = isTTY;
  return stream;
}

function output(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString("utf8") };
}

describe("claim names and keys", () => {
  it("names a claim RESOURCE.GROUP/OWNER, the core group as core", () => {
    assert.equal(claimName(secrets), "secrets.core/Provider");
    assert.equal(claimName(backups), "schedules.backups.example.com/Provider");
  });

  it("keys a claim by its whole content, whatever the order of its fields", () => {
    const reordered: PermissionClaim = {
      selector: { names: ["*-credentials"], owner: "Provider" },
      version: "v1",
      resource: "secrets",
      group: "",
    };
    assert.equal(claimKey(reordered), claimKey(secrets));
    assert.notEqual(
      claimKey({ ...secrets, selector: { owner: "Provider" } }),
      claimKey(secrets),
      "a wider claim differs",
    );
    assert.match(claimKey(secrets), /^[0-9a-f]{16}$/);
  });
});

describe("--accept-claims", () => {
  it("accepts all or none", () => {
    assert.deepEqual(states(selectClaims([postgres, redis], ["all"])), {
      [postgres.id]: ["Accepted", "Accepted"],
      [redis.id]: ["Accepted", "Accepted"],
    });
    assert.deepEqual(states(selectClaims([postgres], ["none"])), { [postgres.id]: ["Rejected", "Rejected"] });
  });

  it("accepts the claims an entry matches and rejects the others", () => {
    assert.deepEqual(states(selectClaims([postgres], ["secrets.core/Provider"])), {
      [postgres.id]: ["Accepted", "Rejected"],
    });
    // the core group may be left out, the owner too, the owner in any case; commas and repeats add up
    assert.deepEqual(states(selectClaims([postgres], ["configmaps/consumer"])), {
      [postgres.id]: ["Rejected", "Accepted"],
    });
    assert.deepEqual(states(selectClaims([postgres, redis], ["secrets", "schedules.backups.example.com"])), {
      [postgres.id]: ["Accepted", "Rejected"],
      [redis.id]: ["Accepted", "Accepted"],
    });
    assert.deepEqual(states(selectClaims([postgres, redis], ["secrets.core/Provider,configmaps.core/Consumer"])), {
      [postgres.id]: ["Accepted", "Accepted"],
      [redis.id]: ["Accepted", "Rejected"],
    });
  });

  it("narrows an entry to one export with EXPORT:", () => {
    assert.deepEqual(states(selectClaims([postgres, redis], [`${redis.id}:secrets.core/Provider`])), {
      [postgres.id]: ["Rejected", "Rejected"],
      [redis.id]: ["Accepted", "Rejected"],
    });
  });

  it("refuses entries that match nothing, are malformed, or mix all and none", () => {
    assert.throws(
      () => selectClaims([postgres], ["secret.core/Provider"]),
      (err: Error) =>
        err instanceof ClaimSelectionError &&
        /"secret\.core\/Provider" matches no claim; the claims are: secrets\.core\/Provider, configmaps\.core\/Consumer/.test(
          err.message,
        ),
    );
    assert.throws(() => selectClaims([postgres], ["secrets.core/Provider/x"]), /is not \[EXPORT:\]RESOURCE/);
    assert.throws(() => selectClaims([postgres], ["secrets/Owner"]), /is not \[EXPORT:\]RESOURCE/);
    assert.throws(() => selectClaims([postgres], ["configmaps.core/Provider"]), /matches no claim/);
    assert.throws(
      () => selectClaims([postgres], [`${redis.id}:secrets`]),
      /names export redisinstances.* not bound here/,
    );
    assert.throws(() => selectClaims([postgres], ["all,secrets"]), /all and none stand alone/);
    assert.throws(() => selectClaims([postgres], [","]), /name the claims to accept/);
  });
});

describe("asking claim by claim", () => {
  it("asks for each claim in words; y accepts, n or an empty line rejects, anything else asks again", async () => {
    const out = output();
    const decisions = await askClaims([postgres, redis], stdin(["y", "", "maybe", "YES", "no"], true), out.stream);
    assert.deepEqual(states(decisions), {
      [postgres.id]: ["Accepted", "Rejected"],
      [redis.id]: ["Accepted", "Rejected"],
    });
    const text = out.text();
    assert.match(
      text,
      /postgresqlinstances\.anynines\.com, claim 1 of 4 \(secrets\.core\/Provider\):\n {2}it writes secrets named \*-credentials into your namespaces/,
    );
    assert.match(text, /claim 2 of 4 \(configmaps\.core\/Consumer\):\n {2}it reads configmaps from your namespaces/);
    assert.match(text, /answer y \(accept\) or n \(reject\)/);
    assert.equal(text.match(/accept\? \[y\/N\] /g)?.length, 5, "asked again once");
  });

  it("binds nothing when input ends before every claim is answered", async () => {
    await assert.rejects(
      askClaims([postgres], stdin(["y"], true), output().stream),
      /no answer for claim configmaps\.core\/Consumer of postgresqlinstances\.anynines\.com: nothing was bound/,
    );
  });

  it("says per claim what was decided", () => {
    const lines = summary([postgres], selectClaims([postgres], ["secrets"]));
    assert.deepEqual(lines, [
      `✓ accepted claim secrets.core/Provider of ${postgres.id}: it writes secrets named *-credentials into your namespaces (the provider's copies; your edits are reverted)`,
      `✗ rejected claim configmaps.core/Consumer of ${postgres.id}: it will not read configmaps from your namespaces`,
    ]);
  });
});

describe("how bind decides", () => {
  it("asks on a terminal, takes --accept-claims over it, and refuses with neither", async () => {
    const asked = await decideClaims([postgres], undefined, {
      stdin: stdin(["n", "y"], true),
      stdout: output().stream,
    });
    assert.deepEqual(states(asked), { [postgres.id]: ["Rejected", "Accepted"] });

    const flagged = await decideClaims([postgres], ["all"], { stdin: stdin([], true), stdout: output().stream });
    assert.deepEqual(states(flagged), { [postgres.id]: ["Accepted", "Accepted"] });

    await assert.rejects(
      decideClaims([postgres], undefined, { stdin: stdin(["y", "y"], false), stdout: output().stream }),
      (err: Error) =>
        err instanceof UsageError &&
        /accept or reject the 2 permission claim\(s\) \(stdin is not a terminal to ask on\)/.test(err.message) &&
        /--accept-claims RESOURCE\.GROUP\/OWNER/.test(err.message),
    );
    await assert.rejects(
      decideClaims([postgres], ["nothing"], { stdin: stdin([], false), stdout: output().stream }),
      (err: Error) => err instanceof UsageError && /"nothing" matches no claim/.test(err.message),
    );
  });

  it("needs neither without claims", async () => {
    const none = api("buckets.example.com", []);
    const decided = await decideClaims([none], undefined, { stdin: stdin([], false), stdout: output().stream });
    assert.deepEqual(states(decided), { [none.id]: [] });
  });
});

describe("required claims", () => {
  it("says that the API is not synced without them", () => {
    const [choice] = choicesOf([api("widgets.example.org", [{ ...secrets, required: true }])]);
    assert.match(
      choice?.words ?? "",
      /your edits are reverted\); required: the API is not synced while this claim is rejected$/,
    );
    assert.doesNotMatch(choicesOf([postgres])[0]?.words ?? "", /required/);
  });
});

describe("the binding's record", () => {
  it("records each claim with its decision, and a claim without one as Rejected", () => {
    const decisions = selectClaims([postgres], ["secrets"]);
    assert.deepEqual(recordedClaims(postgres, decisions), [
      { ...secrets, state: "Accepted" },
      { ...configMaps, state: "Rejected" },
    ]);
    assert.deepEqual(
      recordedClaims(postgres, undefined).map((c) => c.state),
      ["Rejected", "Rejected"],
    );
    assert.throws(
      () => recordedClaims(postgres, new Map([[postgres.id, ["Accepted"]]])),
      /1 decision\(s\) for the 2 claim/,
    );
    assert.equal(choicesOf([postgres]).length, 2);
  });
});
