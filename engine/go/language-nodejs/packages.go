package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// GetRequiredPackages lists the resource plugins the program's npm packages
// ask for (see findPackages).
func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{
		Packages: findPackages(req.GetInfo().GetProgramDirectory()),
	}, nil
}

// GetRequiredPlugins is the older form of GetRequiredPackages (no parameterization).
func (h *host) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetPwd()
	}
	var plugins []*pulumirpc.PluginDependency
	for _, pkg := range findPackages(dir) {
		if pkg.GetParameterization() != nil {
			continue // a parameterized package needs GetRequiredPackages
		}
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: pkg.GetName(), Kind: pkg.GetKind(), Version: pkg.GetVersion(), Server: pkg.GetServer(),
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

// packageJSON is the part of a package.json we read.
type packageJSON struct {
	Name    string                  `json:"name"`
	Version string                  `json:"version"`
	Pulumi  plugin.PulumiPluginJSON `json:"pulumi"`
}

// findPackages walks <dir>/node_modules, the @scope folders in it and every
// package's own nested node_modules, and returns one entry per resource
// plugin (name and version) that a package.json asks for with
//
//	"pulumi": {"resource": true, "name": ..., "version": ..., "server": ...}
//
// Unreadable packages are logged and skipped, as Pulumi's host does.
func findPackages(dir string) []*pulumirpc.PackageDependency {
	w := walker{visited: map[string]bool{}, seen: map[string]bool{}}
	w.nodeModules(filepath.Join(dir, "node_modules"))
	return w.packages
}

type walker struct {
	visited  map[string]bool // folders walked, by real path (node_modules holds symlinks)
	seen     map[string]bool // plugins found, by "name@version" (and parameterization)
	packages []*pulumirpc.PackageDependency
}

// nodeModules walks one node_modules folder.
func (w *walker) nodeModules(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logging.V(3).Infof("reading %s: %v", dir, err)
		}
		return
	}
	for _, entry := range entries {
		name := entry.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, "."): // .bin, .package-lock.json, .cache
		case strings.HasPrefix(name, "@"): // a scope: @pulumi/aws, ...
			scoped, err := os.ReadDir(path)
			if err != nil {
				logging.V(3).Infof("reading %s: %v", path, err)
				continue
			}
			for _, pkg := range scoped {
				w.pkg(filepath.Join(path, pkg.Name()))
			}
		default:
			w.pkg(path)
		}
	}
}

// pkg reads one package (a folder, or a symlink to one) and walks its own node_modules.
func (w *walker) pkg(path string) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		logging.V(3).Infof("resolving %s: %v", path, err)
		return
	}
	if w.visited[real] {
		return
	}
	w.visited[real] = true
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return
	}
	// A policy pack's plugins are not the program's.
	for _, policyFile := range []string{"PulumiPolicy.yaml", "PulumiPolicy.yml", "PulumiPolicy.json"} {
		if _, err := os.Stat(filepath.Join(real, policyFile)); err == nil {
			return
		}
	}

	if dep, err := readPackage(filepath.Join(real, "package.json")); err != nil {
		logging.V(3).Infof("%v", err)
	} else if dep != nil {
		key := dep.GetName() + "@" + dep.GetVersion()
		if p := dep.GetParameterization(); p != nil {
			key += " as " + p.GetName() + "@" + p.GetVersion()
		}
		if !w.seen[key] {
			w.seen[key] = true
			w.packages = append(w.packages, dep)
		}
	}
	w.nodeModules(filepath.Join(real, "node_modules"))
}

// readPackage returns the plugin a package.json asks for, or nil if none.
func readPackage(path string) (*pulumirpc.PackageDependency, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var pkg packageJSON
	if err := json.Unmarshal(b, &pkg); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	if !pkg.Pulumi.Resource {
		return nil, nil
	}

	// The plugin's name: "pulumi.name", else the package name without "@pulumi/"
	// (other scopes must say pulumi.name).
	name := pkg.Pulumi.Name
	if name == "" {
		var ok bool
		if name, ok = strings.CutPrefix(pkg.Name, "@pulumi/"); !ok || name == "" {
			return nil, fmt.Errorf("%s: a third-party package must name its plugin in \"pulumi\": {\"name\": ...}", path)
		}
	}
	// Its version: "pulumi.version", else the package's, with a leading "v".
	version := pkg.Pulumi.Version
	if version == "" {
		version = pkg.Version
	}
	if version == "" {
		return nil, fmt.Errorf("%s: no version for plugin %s", path, name)
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}

	dep := &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: version, Server: pkg.Pulumi.Server}
	if p := pkg.Pulumi.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	if p := pkg.Pulumi.ExtensionParameterization; p != nil {
		dep.Extension = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}
