// The shim: a one-function module that exposes the upstream's SDKv2 provider.
// Its path lies under the upstream's module path
// (github.com/terraform-providers/terraform-provider-docker, the path the
// kreuzwerker repository declares in its go.mod), so Go's internal-package
// rule lets it import .../internal/provider. The wrapper module replaces this
// path with this folder.
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.25.8

require (
	github.com/hashicorp/terraform-plugin-sdk/v2 v2.40.1
	github.com/terraform-providers/terraform-provider-docker v0.0.0-20260916201441-96d331c98ff4
)
