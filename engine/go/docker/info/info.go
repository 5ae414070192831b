// Package info maps the Terraform Docker provider onto the Pulumi names of
// @pulumi/docker 5.2.0: resource and function tokens, property names and the
// MaxItems=1 flattening its Node SDK (node_modules/@pulumi/docker) was
// generated with. Shared by the plugin (../main.go) and the schema generator
// (../cmd/tfgen).
package info

import (
	"context"
	"runtime"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// Version is the version the plugin reports: the one of @pulumi/docker.
var Version = "5.2.0"

// Provider returns the bridge's description of the provider. metadata is the
// bridge-metadata.json written by cmd/tfgen ("{}" when generating it).
func Provider(metadata []byte) tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(shim.NewProvider()),
		Name:        "docker",
		Version:     Version,
		Description: "A Pulumi package for interacting with Docker in Pulumi programs",
		Keywords:    []string{"pulumi", "docker"},
		License:     "Apache-2.0",
		Homepage:    "https://pulumi.io",
		Repository:  "https://github.com/pulumi/pulumi-docker",
		Config: map[string]*tfbridge.SchemaInfo{
			// DOCKER_HOST, else the local socket (as upstream does).
			"host": {Default: &tfbridge.DefaultInfo{
				EnvVars: []string{"DOCKER_HOST"},
				ComputeDefault: func(context.Context, tfbridge.ComputeDefaultOptions) (interface{}, error) {
					if runtime.GOOS == "windows" {
						return "npipe:////./pipe/docker_engine", nil
					}
					return "unix:///var/run/docker.sock", nil
				},
			}},
			// A set of blocks, but named in the singular by @pulumi/docker.
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok: tfbridge.MakeResource("docker", "index", "Container"),
				// Containers usually have fixed names: the old one must go first.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			// The image's reference, not an auto-name.
			"docker_image":  {Tok: tfbridge.MakeResource("docker", "index", "RemoteImage"), Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}},
			"docker_config": {Tok: tfbridge.MakeResource("docker", "index", "ServiceConfig")},
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image": {Tok: tfbridge.MakeDataSource("docker", "index", "getRemoteImage")},
		},
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
	}
	// Everything else: docker_<name> -> docker:index/<name>:<Name> (Network,
	// Volume, Secret, Service, RegistryImage, Plugin, Tag, BuildxBuilder and
	// the getNetwork, getRegistryImage, getRegistryImageManifests, getPlugin,
	// getLogs functions), as in @pulumi/docker.
	prov.MustComputeTokens(tokens.SingleModule("docker_", "index", tokens.MakeStandard("docker")))
	prov.MustApplyAutoAliases()
	// Resources with a "name" get one from Pulumi when it is not given.
	prov.SetAutonaming(255, "-")
	return prov
}
