// Package shim exposes the Terraform Docker provider's SDKv2 provider, which
// upstream keeps in an internal package, to the Pulumi bridge.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the upstream's SDKv2 provider: the resources and data
// sources @pulumi/docker exposes. The upstream's plugin-framework half
// (docker_compose, the containers data source, actions) is not bridged.
func NewProvider() *schema.Provider {
	return provider.New("dev")()
}
