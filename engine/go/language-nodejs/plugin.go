package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// RunPlugin runs a plugin written for Node.js: a policy pack (kind
// "analyzer", the folder of a PulumiPolicy.yaml) or a resource provider (the
// folder of a PulumiPlugin.yaml). Its output goes back to the CLI on the
// stream; the CLI reads the plugin's port from the first line of stdout.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	info := req.GetInfo()
	if info == nil {
		return errors.New("the run-plugin request has no program info")
	}
	dir := info.GetProgramDirectory()
	policyPack := req.GetKind() == string(apitype.AnalyzerPlugin)

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	opts, err := parseOptions(info.GetOptions())
	if err != nil {
		return err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("could not find node on the $PATH: %w", err)
	}
	module := "@pulumi/pulumi/cmd/run-plugin"
	if policyPack {
		module = "@pulumi/pulumi/cmd/run-policy-pack"
	}
	runner, err := locateModule(ctx, node, dir, module)
	if err != nil {
		return err
	}

	// The CLI sends the environment the plugin should see; it is only empty
	// when it means "ours" (as exec.Cmd treats a nil Env).
	env := append([]string{}, req.GetEnv()...)
	if len(env) == 0 {
		env = os.Environ()
	}
	env = append(env, opts.env()...)

	// As Pulumi's host does, nodeargs follow the runner script here (where node
	// hands them to the script rather than using them): a plugin must not run
	// here when it would not run under the real host. The runners take
	// <engine address> <folder> for policy packs and <folder> <args> otherwise.
	args := append([]string{runner}, opts.nodeArgs...)
	if policyPack {
		args = append(append(args, req.GetArgs()...), dir)
	} else {
		args = append(append(args, dir), req.GetArgs()...)
	}

	// @pulumi/policy's PolicyPack reads the stack (name, project, config, dry
	// run) from environment variables when it starts, whereas today's CLI sends
	// them in the analyzer's ConfigureStack RPC once the plugin serves. The
	// SDK's PolicyProxy bridges the two: it serves the analyzer API first (its
	// port goes to the CLI), waits for ConfigureStack, then we start the pack
	// with that configuration in its environment and the proxy forwards the
	// CLI's calls to it.
	var proxy *sdk.PolicyProxy
	if policyPack {
		proxy, stdout, err = sdk.NewPolicyProxy(ctx, stdout)
		if err != nil {
			return fmt.Errorf("could not start the policy pack proxy: %w", err)
		}
		stack, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			return fmt.Errorf("could not get the stack configuration: %w", err)
		}
		if stack != nil {
			env, err = appendStackEnv(env, stack)
			if err != nil {
				return err
			}
		}
	}

	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Policy packs have always run from their own folder; other plugins from
	// the folder the CLI runs in.
	cmd.Dir = req.GetPwd()
	if policyPack {
		cmd.Dir = dir
	}
	logging.V(5).Infof("running the plugin: %s (in %s)", cmd, cmd.Dir)

	if err := cmd.Start(); err != nil {
		if proxy != nil {
			proxy.Abort(err)
		}
		return fmt.Errorf("could not run node for the plugin in %s: %w", dir, err)
	}
	if proxy != nil {
		err = proxy.Attach(ctx, cmd) // returns once the pack exits
	} else {
		err = cmd.Wait()
	}
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
			return fmt.Errorf("Program exited with non-zero exit code: %d", exitErr.ExitCode())
		}
		return fmt.Errorf("Program exited unexpectedly: %w", err)
	}
	return closer.Close()
}

// appendStackEnv adds what @pulumi/policy reads at start-up (through
// @pulumi/pulumi's runtime settings) about the stack being previewed or updated.
func appendStackEnv(env []string, stack *pulumirpc.AnalyzerStackConfigureRequest) ([]string, error) {
	add := func(name, value string) {
		if value != "" {
			env = append(env, name+"="+value)
		}
	}
	add("PULUMI_NODEJS_ORGANIZATION", stack.GetOrganization())
	add("PULUMI_NODEJS_PROJECT", stack.GetProject())
	add("PULUMI_NODEJS_STACK", stack.GetStack())
	add("PULUMI_NODEJS_DRY_RUN", strconv.FormatBool(stack.GetDryRun()))
	if stack.GetConfig() != nil {
		cfg, err := json.Marshal(stack.GetConfig())
		if err != nil {
			return nil, fmt.Errorf("could not serialize the stack configuration: %w", err)
		}
		add("PULUMI_CONFIG", string(cfg))
	}
	return env, nil
}
