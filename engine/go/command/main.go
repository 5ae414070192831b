// Command pulumi-resource-command is a stand-in for the Pulumi "command" resource plugin,
// version 1.2.1 (the version of the npm package @pulumi/command@1.2.1 used by this repo).
//
// Why this exists: the Go module proxy this project builds from refuses
// github.com/pulumi/pulumi-command/provider (403/404), so the official plugin cannot be built
// here. The libraries it is made of are served, though: github.com/pulumi/pulumi-go-provider
// (v1.4.0 here: pulumi-command v1.2.1 is built on v1.3.0, which does not compile against the
// pulumi pkg/sdk v3.256.0 the other plugins share; v1.4.0 differs from it in omitting an empty
// provider block from the schema and naming enum values), github.com/pulumi/pulumi/sdk/v3 and
// golang.org/x/crypto/ssh. This program is our own re-implementation, on those libraries, of
// the one resource this repo uses, command:remote:Command, written against the contract of
// pulumi-command v1.2.1 (read, not copied): the same token, property names, types, defaults,
// secret and replaceOnChanges markings (so the same schema, check and diff behaviour, which
// pulumi-go-provider's infer derives from them), the same SSH dialling and retry, the same
// environment, stdin, logging and error text, and the same outputs. See ./remote.
//
// Left out (not used by this repo; the engine gets "unknown resource" for them):
//   - command:local:Command
//   - command:remote:CopyToRemote
//   - command:remote:CopyFile (deprecated in the real provider)
//   - the command:local:run invoke
//
// Known differences from the real plugin:
//   - resource and property descriptions in the schema are short ones of our own;
//   - the schema has no per-language code generation settings (not needed at run time);
//   - after a command has run, its SSH connection (and the SSH agent connection) is closed;
//     the real provider leaves them open until the plugin exits;
//   - a logged line longer than 64 KiB fails the run, saying why; the real provider stops
//     reading the output there and the update hangs.
//
// Build (see engine/go/command):
//
//	go build -trimpath -ldflags "-s -w -X main.version=1.2.1" -o <out>/pulumi-resource-command .
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi-go-provider/middleware/schema"

	"bbaegok-infra/engine/command/remote"
)

// version is the plugin version reported to the engine by GetPluginInfo (the engine requires
// exactly the version the SDK asks for, 1.2.1); the build passes it again with
// -ldflags "-X main.version=1.2.1".
var version = "1.2.1"

// name is the Pulumi package name: tokens are "command:<module>:<Type>".
const name = "command"

func newProvider() p.Provider {
	return infer.Provider(infer.Options{
		Metadata: schema.Metadata{
			DisplayName: "Command",
			Description: "Runs commands on remote hosts over SSH as part of the Pulumi resource model " +
				"(stand-in for pulumi-command 1.2.1; only command:remote:Command).",
			Keywords:   []string{"pulumi", "command", "category/utility", "kind/native"},
			Homepage:   "https://pulumi.com",
			License:    "Apache-2.0",
			Repository: "https://github.com/pulumi/pulumi-command",
			Publisher:  "Pulumi",
		},
		Resources: []infer.InferredResource{
			// Its Go package is named "remote", which gives the token command:remote:Command
			// (and command:remote:Connection, ProxyConnection and Logging for its types).
			infer.Resource(&remote.Command{}),
		},
	})
}

func main() {
	v := strings.TrimPrefix(version, "v")
	if err := newProvider().Run(context.Background(), name, v); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s", err.Error())
		os.Exit(1)
	}
}
