package remote

import "github.com/pulumi/pulumi-go-provider/infer"

// Logging is the enum command:remote:Logging: which of the command's streams are logged to the
// engine while it runs.
type Logging string

const (
	LogStdout          Logging = "stdout"
	LogStderr          Logging = "stderr"
	LogStdoutAndStderr Logging = "stdoutAndStderr"
	NoLogging          Logging = "none"
)

func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: string(LogStdout), Value: LogStdout, Description: "Log stdout only"},
		{Name: string(LogStderr), Value: LogStderr, Description: "Log stderr only"},
		{Name: string(LogStdoutAndStderr), Value: LogStdoutAndStderr, Description: "Log stdout and stderr"},
		{Name: string(NoLogging), Value: NoLogging, Description: "Log neither"},
	}
}

// logsStdout tells whether stdout is logged; unset means both streams are.
func (l *Logging) logsStdout() bool {
	return l == nil || *l == LogStdout || *l == LogStdoutAndStderr
}

// logsStderr tells whether stderr is logged; unset means both streams are.
func (l *Logging) logsStderr() bool {
	return l == nil || *l == LogStderr || *l == LogStdoutAndStderr
}
