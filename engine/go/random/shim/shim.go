// Package shim exposes the constructor of the upstream Terraform random
// provider, which lives in an internal package of its module.
package shim

import (
	tfprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream terraform-plugin-framework provider.
func NewProvider() tfprovider.Provider { return upstream.New() }
