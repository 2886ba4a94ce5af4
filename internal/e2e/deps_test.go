package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gatehouse/gatehouse"

// TestDependenciesPointInward keeps the layout rule of style.md: app imports only the
// standard library; adapters never import each other; config, metrics and the token
// command import no adapter; only the composition root (internal/gatehouse) imports every
// adapter, and only main imports it.
func TestDependenciesPointInward(t *testing.T) {
	adapters := []string{module + "/store", module + "/handlers", module + "/oidc"}
	root := module + "/internal/gatehouse"
	forbidden := map[string][]string{
		module + "/app":               {"github.com/", "gorm.io/", "golang.org/x/", "gopkg.in/", "net/http", "database/sql"},
		module + "/store":             {"github.com/slack-go/", "github.com/zitadel/", module + "/handlers", module + "/oidc", module + "/internal/", "net/http"},
		module + "/handlers":          {"gorm.io/", "github.com/zitadel/", module + "/store", module + "/oidc", module + "/internal/"},
		module + "/oidc":              {"gorm.io/", "github.com/slack-go/", module + "/store", module + "/handlers", module + "/internal/"},
		module + "/internal/config":   append([]string{"gorm.io/", "github.com/slack-go/", "github.com/zitadel/", module + "/internal/"}, adapters...),
		module + "/internal/metrics":  append([]string{"gorm.io/", "github.com/slack-go/", "github.com/zitadel/", module + "/internal/"}, adapters...),
		module + "/internal/tokencmd": append([]string{"gorm.io/", "github.com/slack-go/", "github.com/zitadel/", module + "/internal/"}, adapters...),
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		checked[pkg] = true
		for _, dep := range deps {
			for _, bad := range forbidden[pkg] {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s, which the layout forbids", pkg, dep)
				}
			}
		}
		if pkg != module && pkg != root && slices.Contains(deps, root) {
			t.Errorf("%s imports the composition root %s; only main may", pkg, root)
		}
		if pkg != module && pkg != root && !slices.ContainsFunc(adapters, func(a string) bool { return a == pkg }) {
			var imported []string
			for _, a := range adapters {
				if slices.Contains(deps, a) {
					imported = append(imported, a)
				}
			}
			if len(imported) > 1 {
				t.Errorf("%s imports the adapters %v; only the composition root %s wires adapters together", pkg, imported, root)
			}
		}
	}
	for pkg := range forbidden {
		if !checked[pkg] {
			t.Errorf("package %s is gone: update this test", pkg)
		}
	}
}
