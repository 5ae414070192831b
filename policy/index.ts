// The bbaegok-infra policy pack, as `pulumi preview|up --policy-pack policy`
// runs it. Creating the PolicyPack starts the analyzer server the CLI talks to,
// so nothing but the CLI's policy runner (through ./load.cjs) imports this file;
// tests import ./policies.ts.
import { PolicyPack } from "@pulumi/policy";
import { POLICIES } from "./policies.js";

new PolicyPack("bbaegok-infra", {
  description: "Guardrails of the bbaegok home server: no port but the proxy's, pinned images, protected data, private encrypted versioned buckets, no secret in container environments.",
  enforcementLevel: "mandatory",
  policies: POLICIES,
});
