//go:build tools

// The Pulumi CLI, built from the Go module proxy: `go install` refuses
// github.com/pulumi/pulumi/pkg/v3 because its go.mod has `replace` directives
// (sdk/v3 => ../sdk, and a clipboard fork). This wrapper module requires pkg/v3
// and sdk/v3 at the same version and repeats the clipboard replace, so
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi` works from here.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
