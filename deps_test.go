package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointInward keeps the layout rule of style.md: app imports only the
// standard library; adapters never import each other; only main imports everything.
func TestDependenciesPointInward(t *testing.T) {
	forbidden := map[string][]string{
		"./app":      {"github.com/", "gorm.io/", "golang.org/x/", "net/http", "database/sql"},
		"./store":    {"github.com/slack-go/", "github.com/zitadel/", "github.com/gatehouse/gatehouse/handlers", "github.com/gatehouse/gatehouse/oidc", "net/http"},
		"./handlers": {"gorm.io/", "github.com/zitadel/", "github.com/gatehouse/gatehouse/store", "github.com/gatehouse/gatehouse/oidc"},
		"./oidc":     {"gorm.io/", "github.com/slack-go/", "github.com/gatehouse/gatehouse/store", "github.com/gatehouse/gatehouse/handlers"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if pkg == "./app" && dep == "github.com/gatehouse/gatehouse/app" {
				continue
			}
			for _, b := range bad {
				if strings.HasPrefix(dep, b) {
					t.Errorf("%s depends on %s, which the layout forbids", pkg, dep)
				}
			}
		}
	}
}
