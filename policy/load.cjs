// The policy pack's entry for the Pulumi CLI (package.json "main").
// The CLI's policy runner compiles .ts files with its own old ts-node, which
// cannot follow this project's `./x.js` imports of TypeScript files; so the
// pack is loaded with tsx, the same loader the program (Pulumi.yaml) and the
// tests use. tsx is registered as a hook of Node's own require, not used
// through `tsx/cjs/api`'s require: that one loads the pack in a module cache of
// its own, with a second copy of @pulumi/pulumi's protobuf classes, and gRPC
// then refuses the pack's answers ("Error serializing response" under the
// real CLI).
require("tsx/cjs/api").register();
require("./index.ts");
