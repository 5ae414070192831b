package remote

import (
	"io"
	"strings"
	"testing"
)

func logged(t *testing.T, output string) ([]string, error) {
	t.Helper()
	var lines []string
	done := make(chan error, 1)
	r, w := io.Pipe()
	go logLines(r, func(line string) { lines = append(lines, line) }, done)
	// The whole output is written, as the command's would be: the reader never stops reading.
	if _, err := io.WriteString(w, output); err != nil {
		t.Fatalf("the output was not read to its end: %v", err)
	}
	w.Close()
	return lines, <-done
}

func TestLogLinesLogsEachLine(t *testing.T) {
	lines, err := logged(t, "one\ntwo\n"+strings.Repeat("x", maxLoggedLine-1)+"\n")
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if len(lines) != 3 || lines[0] != "one" || lines[1] != "two" || len(lines[2]) != maxLoggedLine-1 {
		t.Fatalf("logged %d lines: %q…", len(lines), lines[:min(len(lines), 2)])
	}
}

func TestLogLinesFailsTheRunOnALineThePluginWouldHangOn(t *testing.T) {
	lines, err := logged(t, "before\n"+strings.Repeat("x", maxLoggedLine+1)+"\nafter\n")
	if err == nil || !strings.Contains(err.Error(), "longer than 64 KiB") || !strings.Contains(err.Error(), "hangs") {
		t.Fatalf("expected the long line to fail the run, got %v", err)
	}
	if len(lines) != 1 || lines[0] != "before" {
		t.Fatalf("logged %q", lines)
	}
}
