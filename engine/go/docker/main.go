// Command pulumi-resource-docker is the Pulumi resource plugin "docker",
// version 5.2.0, the plugin @pulumi/docker@5.2.0 asks for.
//
// Why it exists: the Go module proxy this project builds from does not serve
// Pulumi's own provider module (github.com/pulumi/pulumi-docker/provider/v5),
// so this is the Terraform upstream (kreuzwerker/terraform-provider-docker,
// through ./shim) bridged by us with pulumi-terraform-bridge, its resources,
// functions and properties named exactly as in @pulumi/docker (see ./info).
// Not included: the Pulumi-native docker.Image resource (a build-and-push
// resource pulumi-docker implements outside the bridge).
//
// Build, from this folder (the first step writes the git-ignored schema.json
// and bridge-metadata.json embedded below):
//
//	go run -trimpath -tags no_compose ./cmd/tfgen
//	go build -trimpath -tags no_compose -ldflags '-s -w' -o <dir>/pulumi-resource-docker .
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"bbaegok-infra/engine/docker/info"
)

//go:embed schema.json
var schema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	tfbridge.Main("docker", info.Version, info.Provider(metadata), schema)
}
