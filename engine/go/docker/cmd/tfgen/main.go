// Command tfgen writes the plugin's Pulumi schema (schema.json) and the
// bridge's metadata (bridge-metadata.json) into the current directory, from
// the provider info in ../../info. Run it from engine/go/docker before
// building the plugin, which embeds both files:
//
//	go run -trimpath -tags no_compose ./cmd/tfgen
//
// Descriptions come from the upstream module's docs; examples are skipped.
package main

import (
	"encoding/json"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"bbaegok-infra/engine/docker/info"
)

func main() {
	prov := info.Provider([]byte("{}"))
	// The upstream's docs, from the module cache (the module this build uses).
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/terraform-providers/terraform-provider-docker").Output()
	if err != nil {
		log.Fatalf("locating the upstream module: %v", err)
	}
	prov.UpstreamRepoPath = strings.TrimSpace(string(dir))

	// tfgen also writes a Pulumi.yaml: generate in a scratch directory, keep two files.
	tmp, err := os.MkdirTemp("", "docker-tfgen-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	os.Args = []string{os.Args[0], "schema", "--out", tmp, "--skip-examples"}
	tfgen.Main("docker", info.Version, prov)

	// tfgen leaves the version out of the schema; the plugin serves it with
	// the version it reports.
	raw, err := os.ReadFile(filepath.Join(tmp, "schema.json"))
	if err != nil {
		log.Fatal(err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &spec); err != nil {
		log.Fatal(err)
	}
	spec["version"], _ = json.Marshal(info.Version)
	schema, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		log.Fatal(err)
	}
	metadata, err := os.ReadFile(filepath.Join(tmp, "bridge-metadata.json"))
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("schema.json", schema, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("bridge-metadata.json", metadata, 0o644); err != nil {
		log.Fatal(err)
	}
}
