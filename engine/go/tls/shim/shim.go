// Package shim exposes the constructor of the upstream Terraform tls
// provider, which lives in an internal package of its module.
package shim

import (
	tfprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns the upstream terraform-plugin-framework provider.
func NewProvider() tfprovider.Provider { return upstream.New() }
