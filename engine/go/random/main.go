// Command pulumi-resource-random is the Pulumi "random" resource plugin, version 4.21.2.
//
// Why this exists: the Go module proxy this project builds from does not serve
// github.com/pulumi/pulumi-random/provider/v4, so the official plugin cannot be built here.
// Instead this is the Terraform upstream (github.com/terraform-providers/terraform-provider-random,
// the same commit pulumi-random 4.21.x bridges), exposed through ./shim and bridged by
// pulumi-terraform-bridge with the ProviderInfo below, written by us. Every resource token and
// property name matches the npm package @pulumi/random@4.21.2 used by the programs in this repo;
// sensitive upstream attributes (result, bcrypt_hash, b64_std, base64, ...) stay Pulumi secrets.
//
// No generated files: the Pulumi package schema is produced in-process from the ProviderInfo
// the first time the engine asks for it (GetSchema).
package main

import (
	"context"
	"errors"
	"io"
	"sync"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// version is the plugin version reported to the engine; the build passes it again with
// -ldflags "-X main.version=4.21.2".
var version = "4.21.2"

// resourceTokens maps each upstream Terraform resource to the token used by @pulumi/random@4.21.2.
// (The upstream's ephemeral resources have no Pulumi counterpart and are not mapped.)
var resourceTokens = map[string]tokens.Type{
	"random_bytes":    "random:index/randomBytes:RandomBytes",
	"random_id":       "random:index/randomId:RandomId",
	"random_integer":  "random:index/randomInteger:RandomInteger",
	"random_password": "random:index/randomPassword:RandomPassword",
	"random_pet":      "random:index/randomPet:RandomPet",
	"random_shuffle":  "random:index/randomShuffle:RandomShuffle",
	"random_string":   "random:index/randomString:RandomString",
	"random_uuid":     "random:index/randomUuid:RandomUuid",
	"random_uuid4":    "random:index/randomUuid4:RandomUuid4",
	"random_uuid7":    "random:index/randomUuid7:RandomUuid7",
}

func providerInfo() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pftfbridge.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Version:      version,
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		Keywords:     []string{"pulumi", "random"},
		License:      "Apache-2.0",
		Homepage:     "https://pulumi.io",
		Repository:   "https://github.com/pulumi/pulumi-random",
		MetadataInfo: tfbridge.NewProviderMetadata(nil), // no alias history to carry
		Resources:    map[string]*tfbridge.ResourceInfo{},
	}
	for tf, tok := range resourceTokens {
		info.Resources[tf] = &tfbridge.ResourceInfo{Tok: tok}
	}
	// random_bytes has no "id" attribute; like the official provider, its ID is the base64 value.
	info.Resources["random_bytes"].ComputeID = func(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
		b := state["base64"]
		if b.IsSecret() {
			b = b.SecretValue().Element
		}
		if !b.IsString() {
			return "", errors.New("random_bytes: state has no string base64 property")
		}
		return resource.ID(b.StringValue()), nil
	}
	// Old RandomString states may lack the schema version marker (pulumi-random#258); treat them
	// as V1, as the official provider does (the V1->V3 upgrades are idempotent).
	info.Resources["random_string"].PreStateUpgradeHook = func(a tfbridge.PreStateUpgradeHookArgs) (int64, resource.PropertyMap, error) {
		if a.PriorStateSchemaVersion == 0 {
			return 1, a.PriorState, nil
		}
		return a.PriorStateSchemaVersion, a.PriorState, nil
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
