// Package remote implements command:remote:Command: a command run over SSH when the resource
// is created, updated or deleted. The package name is part of the Pulumi token, so it must
// stay "remote".
package remote

import (
	"context"

	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Command is the command:remote:Command resource.
type Command struct{}

func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "A command run on a remote host over SSH: `create` when the resource is created, "+
		"`update` (or else `create`) when its inputs change, `delete` when it is deleted.")
}

// CommandInputs are the inputs of command:remote:Command.
//
// Struct tags drive pulumi-go-provider's schema, check and diff: `optional` fields are pointers,
// `provider:"secret"` makes the value a secret, `provider:"replaceOnChanges"` replaces the
// resource when the value changes.
type CommandInputs struct {
	Triggers *[]any  `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Create   *string `pulumi:"create,optional"`
	Update   *string `pulumi:"update,optional"`
	Delete   *string `pulumi:"delete,optional"`

	Stdin                  *string           `pulumi:"stdin,optional"`
	Logging                *Logging          `pulumi:"logging,optional"`
	Connection             *Connection       `pulumi:"connection" provider:"secret"`
	Environment            map[string]string `pulumi:"environment,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

func (c *CommandInputs) Annotate(a infer.Annotator) {
	a.Describe(&c.Triggers, "Values whose change replaces the resource (they can be of any type).")
	a.Describe(&c.Create, "The command run when the resource is created (and, without `update`, "+
		"when its inputs change).")
	a.Describe(&c.Update, "The command run when the resource's inputs change; `create` is run "+
		"instead when this is not set. PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR hold the "+
		"previous run's output.")
	a.Describe(&c.Delete, "The command run when the resource is deleted. PULUMI_COMMAND_STDOUT and "+
		"PULUMI_COMMAND_STDERR hold the previous run's output.")
	a.Describe(&c.Stdin, "Text given to the command on its standard input.")
	a.Describe(&c.Logging, "Which of the command's stdout and stderr are logged to the engine "+
		"(both by default). The outputs stdout and stderr are captured either way.")
	a.Describe(&c.Connection, "How to connect to the remote host.")
	a.Describe(&c.Environment, "Environment variables for the command, set over SSH "+
		"(the server must accept them with AcceptEnv).")
	a.Describe(&c.AddPreviousOutputInEnv, "Whether the previous run's stdout and stderr are given "+
		"to the next command as PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR. Defaults to true.")
}

// Outputs are what a run of the command produced.
type Outputs struct {
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

func (o *Outputs) Annotate(a infer.Annotator) {
	a.Describe(&o.Stdout, "The command's standard output (one trailing newline removed).")
	a.Describe(&o.Stderr, "The command's standard error (one trailing newline removed).")
}

// CommandOutputs is the state of command:remote:Command: its inputs and the last run's outputs.
type CommandOutputs struct {
	CommandInputs
	Outputs
}

var (
	_ infer.CustomResource[CommandInputs, CommandOutputs] = (*Command)(nil)
	_ infer.CustomUpdate[CommandInputs, CommandOutputs]   = (*Command)(nil)
	_ infer.CustomDelete[CommandOutputs]                  = (*Command)(nil)
)

// Create runs `create` (not during preview) and records its output.
func (*Command) Create(
	ctx context.Context, req infer.CreateRequest[CommandInputs],
) (infer.CreateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs}
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil {
		return infer.CreateResponse[CommandOutputs]{Output: state}, err
	}
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, nil
	}
	err = state.run(ctx, *req.Inputs.Create)
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
}

// Update runs `update`, or `create` when there is no `update`; with neither, the previous
// outputs are kept.
func (*Command) Update(
	ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs],
) (infer.UpdateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs, Outputs: req.State.Outputs}
	if req.DryRun {
		return infer.UpdateResponse[CommandOutputs]{Output: state}, nil
	}
	var err error
	switch {
	case req.Inputs.Update != nil:
		err = state.run(ctx, *req.Inputs.Update)
	case req.Inputs.Create != nil:
		err = state.run(ctx, *req.Inputs.Create)
	}
	return infer.UpdateResponse[CommandOutputs]{Output: state}, err
}

// Delete runs `delete` from the recorded state, if there is one.
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	state := req.State
	if state.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	return infer.DeleteResponse{}, state.run(ctx, *state.Delete)
}
