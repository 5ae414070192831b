package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		engine string
	}{
		{[]string{"127.0.0.1:1234"}, "127.0.0.1:1234"},
		{[]string{"-tracing", "http://x", "-root=/p", "-v=9", "127.0.0.1:1"}, "127.0.0.1:1"},
		{[]string{"--logtostderr", "-unknown", "127.0.0.1:2"}, "127.0.0.1:2"},
		{nil, ""},
	} {
		if got, _, _, _ := parseArgs(tc.args); got != tc.engine {
			t.Errorf("parseArgs(%q) engine = %q, want %q", tc.args, got, tc.engine)
		}
	}
}

func TestParseOptions(t *testing.T) {
	s, _ := structpb.NewStruct(map[string]any{"typescript": false, "nodeargs": "--import tsx --no-warnings"})
	opts, err := parseOptions(s)
	if err != nil || opts.typescript || !slices.Equal(opts.nodeArgs, []string{"--import", "tsx", "--no-warnings"}) {
		t.Fatalf("parseOptions = %+v, %v", opts, err)
	}
	if opts, _ := parseOptions(nil); !opts.typescript || len(opts.env()) != 1 {
		t.Fatalf("default options = %+v", opts)
	}
}

func TestRunnerArgs(t *testing.T) {
	h := newHost("127.0.0.1:9")
	got := h.runnerArgs(&pulumirpc.RunRequest{
		MonitorAddress: "127.0.0.1:8", Project: "p", Stack: "s", DryRun: true, Parallel: 4,
		Info: &pulumirpc.ProgramInfo{ProgramDirectory: "/prog", RootDirectory: "/prog", EntryPoint: "."},
		Args: []string{"a"},
	})
	want := []string{"--monitor", "127.0.0.1:8", "--engine", "127.0.0.1:9", "--project", "p",
		"--root-directory", "/prog", "--stack", "s", "--pwd", "/prog", "--dry-run", "--parallel", "4", ".", "a"}
	if !slices.Equal(got, want) {
		t.Fatalf("runnerArgs = %q\nwant %q", got, want)
	}
}

func TestFindPackages(t *testing.T) {
	dir := t.TempDir()
	write := func(path, text string) {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("node_modules/@pulumi/random/package.json", `{"name":"@pulumi/random","version":"4.21.2","pulumi":{"resource":true,"name":"random","version":"4.21.2"}}`)
	write("node_modules/@pulumi/pulumi/package.json", `{"name":"@pulumi/pulumi","version":"3.270.0"}`)
	write("node_modules/other/package.json", `{"name":"other","version":"1.0.0","pulumi":{"resource":true,"name":"tls","server":"https://example"}}`)
	write("node_modules/other/node_modules/@pulumi/random/package.json", `{"name":"@pulumi/random","version":"4.21.2","pulumi":{"resource":true}}`)
	write("node_modules/other/node_modules/@pulumi/docker/package.json", `{"name":"@pulumi/docker","version":"5.2.0","pulumi":{"resource":true}}`)
	write("node_modules/pack/PulumiPolicy.yaml", "runtime: nodejs\n")
	write("node_modules/pack/package.json", `{"name":"pack","version":"1.0.0","pulumi":{"resource":true,"name":"aws"}}`)

	var got []string
	for _, p := range findPackages(dir) {
		got = append(got, p.GetName()+" "+p.GetVersion()+" "+p.GetServer())
	}
	slices.Sort(got)
	want := []string{"docker v5.2.0 ", "random v4.21.2 ", "tls v1.0.0 https://example"}
	if !slices.Equal(got, want) {
		t.Fatalf("findPackages = %q, want %q", got, want)
	}
}
