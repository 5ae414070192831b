package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"

	"github.com/google/shlex"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// host implements pulumirpc.LanguageRuntimeServer. The RPCs it does not
// implement answer "unimplemented" through the embedded type.
type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu               sync.Mutex
	engineAddress    string // from the command line, or from Handshake
	rootDirectory    string // from Handshake (only sent when the CLI attaches to a running host)
	programDirectory string // from Handshake

	// cancelled by the Cancel RPC; stops a running program.
	cancelCtx  context.Context
	cancelFunc context.CancelFunc
}

func newHost(engineAddress string) *host {
	ctx, cancel := context.WithCancel(context.Background())
	return &host{engineAddress: engineAddress, cancelCtx: ctx, cancelFunc: cancel}
}

func (h *host) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// Handshake is sent by a CLI that attaches to an already running host
// (PULUMI_DEBUG_LANGUAGES); a host the CLI starts gets the engine address on
// its command line instead.
func (h *host) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.engineAddress = req.GetEngineAddress()
	h.rootDirectory = req.GetRootDirectory()
	h.programDirectory = req.GetProgramDirectory()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancelFunc()
	return &emptypb.Empty{}, nil
}

// InstallDependencies installs nothing: this repository's node_modules come
// from `npm ci` (package-lock.json), run by the developer or CI, never by the CLI.
func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, _, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	fmt.Fprintf(stdout, "Not installing Node.js dependencies in %s: in this repository they are installed by `npm ci`.\n", dir)
	return closer.Close()
}

// options are the runtime options of Pulumi.yaml (or PulumiPolicy.yaml):
//
//	runtime:
//	  name: nodejs
//	  options: {typescript: false, nodeargs: "--import tsx", tsconfig: tsconfig.json}
type options struct {
	typescript bool     // let @pulumi/pulumi compile TypeScript with ts-node (default true)
	nodeArgs   []string // extra arguments for node, before the script
	tsconfig   string   // the tsconfig.json ts-node uses
}

func parseOptions(s *structpb.Struct) (options, error) {
	opts := options{typescript: true}
	for key, value := range s.AsMap() {
		switch key {
		case "typescript":
			b, ok := value.(bool)
			if !ok {
				return opts, errors.New("the typescript runtime option must be a boolean")
			}
			opts.typescript = b
		case "nodeargs":
			str, ok := value.(string)
			if !ok {
				return opts, errors.New("the nodeargs runtime option must be a string")
			}
			args, err := shlex.Split(str)
			if err != nil {
				return opts, fmt.Errorf("the nodeargs runtime option: %w", err)
			}
			opts.nodeArgs = args
		case "tsconfig":
			str, ok := value.(string)
			if !ok {
				return opts, errors.New("the tsconfig runtime option must be a string")
			}
			opts.tsconfig = str
		}
		// Other options (packagemanager, production, ...) only concern installing dependencies.
	}
	return opts, nil
}

// env returns the variables through which @pulumi/pulumi's runners learn the
// TypeScript options.
func (o options) env() []string {
	var env []string
	if o.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if o.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+o.tsconfig)
	}
	return env
}

// locateModule resolves a module request (such as "@pulumi/pulumi/cmd/run")
// to a file the way the program itself would: with node's require.resolve,
// run from the program's folder.
func locateModule(ctx context.Context, node, dir, module string) (string, error) {
	script := fmt.Sprintf("console.log(require.resolve(%q))", module)
	cmd := exec.CommandContext(ctx, node, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "", fmt.Errorf("could not find %s from %s (are the dependencies installed? run `npm ci`): %s",
				module, dir, errorLine(string(exitErr.Stderr)))
		}
		return "", fmt.Errorf("could not run node to find %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// errorLine is the most telling line of a Node.js error (the "Error: ..." line).
func errorLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Error:") {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(s)
}
