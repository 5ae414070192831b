// The policy pack's entry for the Pulumi CLI (package.json "main").
// The CLI's policy runner compiles .ts files with its own old ts-node, which
// cannot follow this project's `./x.js` imports of TypeScript files; so the
// pack is loaded with tsx, the same loader the program (Pulumi.yaml) and the
// tests use.
require("tsx/cjs/api").require("./index.ts", __filename);
