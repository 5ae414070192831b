// Command pulumi-resource-tls is the Pulumi "tls" resource plugin, version 5.6.1.
//
// Why this exists: the Go module proxy this project builds from does not serve
// github.com/pulumi/pulumi-tls/provider/v5, so the official plugin cannot be built here.
// Instead this is the Terraform upstream (github.com/hashicorp/terraform-provider-tls, the
// commit whose schema matches 5.6.1, including the private_key_pem_wo attributes), exposed
// through ./shim and bridged by pulumi-terraform-bridge with the ProviderInfo below, written by
// us. Every resource/function token and property name matches the npm package @pulumi/tls@5.6.1
// used by the programs in this repo; sensitive upstream attributes (private_key_pem,
// private_key_openssh, ...) stay Pulumi secrets.
//
// No generated files: the Pulumi package schema is produced in-process from the ProviderInfo
// the first time the engine asks for it (GetSchema).
package main

import (
	"context"
	"io"
	"sync"

	"github.com/hashicorp/terraform-provider-tls/shim"
	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

// version is the plugin version reported to the engine; the build passes it again with
// -ldflags "-X main.version=5.6.1".
var version = "5.6.1"

// resourceTokens and dataSourceTokens map each upstream Terraform resource / data source to the
// token used by @pulumi/tls@5.6.1. (Upstream's ephemeral resources have no Pulumi counterpart.)
var resourceTokens = map[string]tokens.Type{
	"tls_cert_request":        "tls:index/certRequest:CertRequest",
	"tls_locally_signed_cert": "tls:index/locallySignedCert:LocallySignedCert",
	"tls_private_key":         "tls:index/privateKey:PrivateKey",
	"tls_self_signed_cert":    "tls:index/selfSignedCert:SelfSignedCert",
}

var dataSourceTokens = map[string]tokens.ModuleMember{
	"tls_certificate": "tls:index/getCertificate:getCertificate",
	"tls_public_key":  "tls:index/getPublicKey:getPublicKey",
}

func providerInfo() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pftfbridge.ShimProvider(shim.NewProvider()),
		Name:         "tls",
		Version:      version,
		Description:  "A Pulumi package to create TLS resources in Pulumi programs.",
		Keywords:     []string{"pulumi", "tls"},
		License:      "Apache-2.0",
		Homepage:     "https://pulumi.io",
		Repository:   "https://github.com/pulumi/pulumi-tls",
		GitHubOrg:    "hashicorp",
		MetadataInfo: tfbridge.NewProviderMetadata(nil), // no alias history to carry
		Resources:    map[string]*tfbridge.ResourceInfo{},
		DataSources:  map[string]*tfbridge.DataSourceInfo{},
	}
	for tf, tok := range resourceTokens {
		info.Resources[tf] = &tfbridge.ResourceInfo{Tok: tok}
	}
	for tf, tok := range dataSourceTokens {
		info.DataSources[tf] = &tfbridge.DataSourceInfo{Tok: tok}
	}
	return info
}

func main() {
	ctx := context.Background()
	info := providerInfo()
	pftfbridge.Main(ctx, info.Name, info, pftfbridge.ProviderMetadata{XGetSchema: lazySchema(info)})
}

// lazySchema generates the Pulumi package schema from info once, on first request.
func lazySchema(info tfbridge.ProviderInfo) func(context.Context, plugin.GetSchemaRequest) ([]byte, error) {
	var once sync.Once
	var schema []byte
	var err error
	return func(ctx context.Context, _ plugin.GetSchemaRequest) ([]byte, error) {
		once.Do(func() {
			sink := diag.DefaultSink(io.Discard, io.Discard, diag.FormatOptions{Color: colors.Never})
			var res *pftfgen.GenerateSchemaResult
			res, err = pftfgen.GenerateSchema(ctx, pftfgen.GenerateSchemaOptions{
				ProviderInfo: info, DiagnosticsSink: sink, XInMemoryDocs: true,
			})
			if err == nil {
				schema = res.ProviderMetadata.PackageSchema
			}
		})
		return schema, err
	}
}
