// Command pulumi-language-nodejs is the Pulumi language host ("language plugin")
// for Node.js programs, written for this repository's engine build.
//
// Why it exists: the Pulumi CLI this project builds (v3.276.0) needs a
// language host, but the Go module proxy this project builds from refuses
// Pulumi's own host module
// (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) at every
// version, and the last host shipped inside sdk/v3 (v3.68.0) no longer fits
// today's CLI: it reads the runtime options (typescript, nodeargs) from
// command-line flags the CLI stopped passing, so it runs ts-node instead of
// Pulumi.yaml's `nodeargs: "--import tsx"`, and its RunPlugin is
// unimplemented, so policy packs (`pulumi preview --policy-pack policy`)
// cannot start. This is a small host against github.com/pulumi/pulumi/sdk/v3
// v3.276.0 that follows the current host's gRPC contract (the
// pulumirpc.LanguageRuntime service), written from that contract, not copied.
//
// What it implements:
//
//   - Handshake, GetPluginInfo (version set at build time with
//     -ldflags "-X main.version=..."), Cancel.
//   - GetRequiredPackages / GetRequiredPlugins: the resource plugins named by
//     the `pulumi` field ({resource: true, name, version, server}) of the
//     package.json files under the program's node_modules (nested node_modules
//     and @scope folders included).
//   - Run: runs the program with `node <nodeargs> @pulumi/pulumi/cmd/run ...`
//     (the module resolved from the program folder), with the runtime options
//     of Pulumi.yaml (typescript, nodeargs, tsconfig) taken from the request,
//     the stack config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS, and exit
//     code 32 ("the error was already shown") reported as a bail.
//   - RunPlugin: runs Node.js plugins; policy packs (kind "analyzer") through
//     @pulumi/pulumi/cmd/run-policy-pack behind the SDK's PolicyProxy, which
//     hands the stack configuration to the pack as environment variables,
//     other plugins through @pulumi/pulumi/cmd/run-plugin. nodeargs follow
//     the runner script, as in Pulumi's host (where they reach the script,
//     not node).
//   - InstallDependencies: installs nothing; it says dependencies come from
//     `npm ci` in this repository.
//
// What it leaves out (compared with Pulumi's host): the resource-monitor proxy
// and the synchronous-invoke pipes (@pulumi/pulumi's cmd/run treats --sync as
// optional, 3.270 never reads the pipes, and the program talks to the engine's
// monitor directly), running npm/yarn/pnpm
// (InstallDependencies), bun as a runtime, attaching debuggers, OpenTelemetry
// tracing, the out-of-memory hint, the warning about mixed @pulumi/pulumi
// versions, and the code-generation / packaging RPCs (GenerateProject,
// GenerateProgram, GeneratePackage, Pack, Link, Template, RuntimeOptionsPrompts,
// About, GetProgramDependencies), which answer "unimplemented".
//
// Build, from this folder:
//
//	go build -trimpath -ldflags "-X main.version=3.276.0" -o <dir>/pulumi-language-nodejs .
//
// The CLI starts it with the engine's address as the last argument and reads
// the port it serves on from the first line of its stdout.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is reported by GetPluginInfo; set it at build time with
// -ldflags "-X main.version=3.276.0" (the CLI version this host is installed with).
var version = "0.0.0-dev"

// flagsWithValue are the flags (of Pulumi's hosts, old and new) that take their
// value as the next argument; any other flag is taken to stand alone.
var flagsWithValue = map[string]bool{"tracing": true, "root": true, "runtime": true}

func main() {
	engineAddress, verbose, logToStderr, showVersion := parseArgs(os.Args[1:])
	if showVersion {
		fmt.Println(version)
		return
	}
	logging.InitLogging(logToStderr, verbose, false)

	// Stop serving on Ctrl-C, or when the engine that started us goes away.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the engine health check: %w", err))
		}
	}
	cancel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancel)
	}()

	host := newHost(engineAddress)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host's gRPC server: %w", err))
	}

	// The CLI reads the port from the first line of our stdout.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("the language host's gRPC server stopped: %w", err))
	}
}

// parseArgs takes the engine address as the last positional argument and
// ignores the flags it does not know (-tracing, -root, -runtime, ...), in
// either the "-flag=value" or the "-flag value" form. It understands
// -v=N / -logtostderr (Pulumi's plugin logging flags) and -version.
func parseArgs(args []string) (engineAddress string, verbose int, logToStderr, showVersion bool) {
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			positional = append(positional, arg)
			continue
		}
		if arg == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !hasValue && flagsWithValue[name] && i+1 < len(args) {
			i++
			value, hasValue = args[i], true
		}
		switch name {
		case "version":
			showVersion = true
		case "logtostderr":
			logToStderr = !hasValue || value == "true"
		case "v":
			if n, err := strconv.Atoi(value); err == nil {
				verbose = n
			}
		}
	}
	if len(positional) > 0 {
		engineAddress = positional[len(positional)-1]
	}
	return engineAddress, verbose, logToStderr, showVersion
}
