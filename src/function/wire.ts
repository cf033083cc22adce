// RunFunctionRequest/Response as @grpc/proto-loader hands them over (keepCase, enums as strings,
// oneofs, no defaults): every field may be absent.
import type { RawEntries, rawDesiredEntries } from "./passthrough.ts";
import type { WireStruct } from "./struct.ts";

export type Ready = "READY_UNSPECIFIED" | "READY_TRUE" | "READY_FALSE";
export type Severity = "SEVERITY_UNSPECIFIED" | "SEVERITY_FATAL" | "SEVERITY_WARNING" | "SEVERITY_NORMAL";
export type Target = "TARGET_UNSPECIFIED" | "TARGET_COMPOSITE" | "TARGET_COMPOSITE_AND_CLAIM";
export type ConditionStatus =
  | "STATUS_CONDITION_UNSPECIFIED"
  | "STATUS_CONDITION_UNKNOWN"
  | "STATUS_CONDITION_TRUE"
  | "STATUS_CONDITION_FALSE";

export type WireResource = {
  resource?: WireStruct | null;
  connection_details?: Record<string, Uint8Array>;
  ready?: Ready;
};

export type WireState = {
  composite?: WireResource | null;
  resources?: Record<string, WireResource>;
  /** earlier steps' desired resources, still encoded (see passthrough.ts) */
  [rawDesiredEntries]?: RawEntries;
};

export type WireResources = { items?: WireResource[] };

export type WireResourceSelector = {
  api_version: string;
  kind: string;
  match_name?: string;
  match_labels?: { labels?: Record<string, string> };
  namespace?: string;
};

export type RunFunctionRequest = {
  meta?: { tag?: string; capabilities?: string[] } | null;
  observed?: WireState | null;
  desired?: WireState | null;
  input?: WireStruct | null;
  context?: WireStruct | null;
  extra_resources?: Record<string, WireResources>;
  credentials?: Record<string, unknown>;
  required_resources?: Record<string, WireResources>;
  required_schemas?: Record<string, unknown>;
};

export type WireResult = { severity: Severity; message: string; reason?: string; target?: Target };

export type WireCondition = {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
  target?: Target;
};

export type RunFunctionResponse = {
  meta: { tag: string; ttl?: { seconds: number; nanos: number } };
  desired: WireState;
  results: WireResult[];
  context?: WireStruct;
  requirements?: {
    resources?: Record<string, WireResourceSelector>;
    extra_resources?: Record<string, WireResourceSelector>;
  };
  conditions: WireCondition[];
  output?: WireStruct;
};
