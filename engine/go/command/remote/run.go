package remote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
)

const (
	envPreviousStdout = "PULUMI_COMMAND_STDOUT"
	envPreviousStderr = "PULUMI_COMMAND_STDERR"
)

// run runs cmd on the remote host over a new SSH connection and, when it succeeds, records its
// stdout and stderr (one trailing newline removed) in s.Outputs. On failure the outputs are
// left as they were and the error carries the command's combined output.
func (s *CommandOutputs) run(ctx context.Context, cmd string) error {
	if s.Connection == nil {
		return fmt.Errorf("connection is required")
	}
	client, err := s.Connection.dial(ctx)
	if err != nil {
		return err
	}
	defer client.Close()

	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer session.Close()

	for k, v := range s.Environment {
		if err := session.Setenv(k, v); err != nil {
			p.GetLogger(ctx).Error(setenvHint(k))
			return fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	if s.AddPreviousOutputInEnv == nil || *s.AddPreviousOutputInEnv {
		// Best effort: a server that refuses these only gets a warning.
		for _, kv := range [][2]string{{envPreviousStdout, s.Stdout}, {envPreviousStderr, s.Stderr}} {
			if kv[1] == "" {
				continue
			}
			if err := session.Setenv(kv[0], kv[1]); err != nil {
				p.GetLogger(ctx).Warning(setenvHint(kv[0]))
			}
		}
	}

	if s.Stdin != nil && *s.Stdin != "" {
		session.Stdin = strings.NewReader(*s.Stdin)
	}

	// stdout and stderr are each captured, both go (in arrival order) into combined for the
	// error text, and the streams chosen by `logging` go line by line to the engine.
	var stdout, stderr bytes.Buffer
	combined := &lockedWriter{w: &bytes.Buffer{}}
	logR, logW := io.Pipe()
	log := &lockedWriter{w: logW}

	outWriters := []io.Writer{&stdout, combined}
	if s.Logging.logsStdout() {
		outWriters = append(outWriters, log)
	}
	errWriters := []io.Writer{&stderr, combined}
	if s.Logging.logsStderr() {
		errWriters = append(errWriters, log)
	}
	session.Stdout = io.MultiWriter(outWriters...)
	session.Stderr = io.MultiWriter(errWriters...)

	logged := make(chan error, 1)
	go logLines(logR, func(line string) { p.GetLogger(ctx).InfoStatus(line) }, logged)

	err = session.Run(cmd)
	logW.Close()
	if tooLong := <-logged; tooLong != nil && err == nil {
		err = tooLong
	}

	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, cmd, combined.w.(*bytes.Buffer).String())
	}
	s.Outputs = Outputs{
		Stdout: strings.TrimSuffix(stdout.String(), "\n"),
		Stderr: strings.TrimSuffix(stderr.String(), "\n"),
	}
	return nil
}

// maxLoggedLine is the real plugin's limit: bufio.Scanner's default token size.
const maxLoggedLine = bufio.MaxScanTokenSize

// logLines gives each line read from r to log (the engine's info status
// messages), then the error that ends the run, if any, on done. A logged line
// longer than 64 KiB stops pulumi-command 1.2.1's scanner (util.LogOutput),
// which then reads the pipe no more: the command's output blocks and
// `pulumi up` hangs with no error. This build fails the run instead, saying so,
// and reads the rest so the command itself is not blocked.
func logLines(r io.Reader, log func(string), done chan<- error) {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 0, maxLoggedLine), maxLoggedLine)
	for lines.Scan() {
		log(lines.Text())
	}
	var err error
	if lines.Err() == bufio.ErrTooLong {
		err = fmt.Errorf("the command logged a line longer than %d KiB: pulumi-command 1.2.1 stops reading the command's output there and the update hangs; log less (shorter lines, or logging: none)", maxLoggedLine/1024)
	}
	_, _ = io.Copy(io.Discard, r)
	done <- err
}

func setenvHint(key string) string {
	return fmt.Sprintf("Unable to set '%s'. This only works if your SSH server is configured to accept "+
		"these variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the "+
		"remote host, you could prefix the command itself with the variables in the form "+
		"'VAR=value command'", key)
}

// lockedWriter serialises writes: the SSH session copies stdout and stderr concurrently.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
