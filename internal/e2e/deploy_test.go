package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/config"
	program "github.com/gatehouse/gatehouse/internal/gatehouse"
)

// The example deployment under deploy/ is checked against what Gatehouse reads: its config,
// the environment, the port and the health checks.

const deployDir = "../../deploy"

// kubeObject is the part of a Kubernetes manifest the checks read.
type kubeObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []kubeContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type kubeContainer struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe kubeProbe `yaml:"readinessProbe"`
	LivenessProbe  kubeProbe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type kubeProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// readManifests reads every object in deploy/kubernetes, by kind.
func readManifests(t *testing.T) map[string]kubeObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	objects := map[string]kubeObject{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o kubeObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if _, dup := objects[o.Kind]; dup {
				t.Fatalf("%s: a second %s", f, o.Kind)
			}
			objects[o.Kind] = o
		}
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "Service"} {
		if _, ok := objects[kind]; !ok {
			t.Fatalf("no %s in %s", kind, deployDir)
		}
	}
	return objects
}

// envRead runs `gatehouse serve` on the config with an empty environment and returns the
// variables it read, and which of them it refused to start without.
func envRead(t *testing.T, configFile string) (read, required []string) {
	t.Helper()
	m := &program.Main{
		Getenv: func(k string) string {
			if !slices.Contains(read, k) {
				read = append(read, k)
			}
			return ""
		},
		Stdout: io.Discard, Stderr: io.Discard,
	}
	err := m.Run(context.Background(), []string{"serve", "--config", configFile})
	if err == nil || !strings.Contains(err.Error(), "cannot start") {
		t.Fatalf("serve without its environment: %v, want it to refuse to start", err)
	}
	for _, name := range read {
		if strings.Contains(err.Error(), name+" must be set") {
			required = append(required, name)
		}
	}
	return read, required
}

// readOutsideGetenv are variables a deployment sets that Gatehouse reads by other means.
var readOutsideGetenv = map[string]string{
	"PGPASSWORD": "the PostgreSQL driver reads libpq's environment",
}

func TestKubernetesManifestsMatchTheConfigContract(t *testing.T) {
	objects := readManifests(t)
	deployment := objects["Deployment"]
	if deployment.Spec.Replicas < 2 {
		t.Errorf("replicas = %d, want at least 2", deployment.Spec.Replicas)
	}
	pod := deployment.Spec.Template.Spec
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("pod security context %+v: want a non-root user", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want one", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The config: the ConfigMap's file, where the container reads it, valid, on PostgreSQL.
	configMap := objects["ConfigMap"]
	configFile := argAfter(c.Args, "--config")
	var mountPath string
	for _, v := range pod.Volumes {
		if v.ConfigMap.Name == configMap.Metadata.Name {
			for _, vm := range c.VolumeMounts {
				if vm.Name == v.Name {
					mountPath = vm.MountPath
				}
			}
		}
	}
	yamlText, ok := configMap.Data[strings.TrimPrefix(configFile, mountPath+"/")]
	if mountPath == "" || !strings.HasPrefix(configFile, mountPath+"/") || !ok {
		t.Fatalf("the container reads %q, but the ConfigMap %q is mounted at %q with keys %v", configFile, configMap.Metadata.Name, mountPath, slices.Sorted(maps.Keys(configMap.Data)))
	}
	cfg, err := config.Parse([]byte(yamlText))
	if err != nil {
		t.Fatalf("the ConfigMap's config: %v", err)
	}
	if !strings.HasPrefix(cfg.Database, "postgres://") {
		t.Errorf("database %q: replicas need PostgreSQL", cfg.Database)
	}

	// The port: the one the config listens on, named by the probes and the Service.
	_, listenPort, _ := net.SplitHostPort(cfg.Listen)
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	if ports["http"] != listenPort {
		t.Errorf("container port http = %q, but the config listens on %s", ports["http"], cfg.Listen)
	}
	for _, probe := range []struct{ name, path, gotPath, gotPort string }{
		{"readiness", "/readyz", c.ReadinessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Port},
		{"liveness", "/healthz", c.LivenessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Port},
	} {
		if probe.gotPath != probe.path || resolvePort(ports, probe.gotPort) != listenPort {
			t.Errorf("%s probe gets %s on port %s, want %s on %s", probe.name, probe.gotPath, probe.gotPort, probe.path, listenPort)
		}
	}
	if svc := objects["Service"]; len(svc.Spec.Ports) != 1 || resolvePort(ports, svc.Spec.Ports[0].TargetPort) != listenPort {
		t.Errorf("Service targets %+v, want the port the config listens on (%s)", svc.Spec.Ports, listenPort)
	}

	// The environment: every variable set is one Gatehouse reads, each comes from a
	// Secret, and every one Gatehouse cannot start without is set.
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	read, required := envRead(t, path)
	set := map[string]bool{}
	for _, e := range c.Env {
		set[e.Name] = true
		if _, other := readOutsideGetenv[e.Name]; !slices.Contains(read, e.Name) && !other {
			t.Errorf("the Deployment sets %s, which Gatehouse does not read (it reads %v)", e.Name, read)
		}
		if e.Value != "" || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "" {
			t.Errorf("%s is not taken from a Secret", e.Name)
		}
	}
	if !slices.Contains(required, "GATEHOUSE_KEY_ENCRYPTION_KEY") {
		t.Errorf("on PostgreSQL serve started without GATEHOUSE_KEY_ENCRYPTION_KEY (it requires %v)", required)
	}
	for _, name := range append(required, "PGPASSWORD") {
		if !set[name] {
			t.Errorf("the Deployment does not set %s", name)
		}
	}
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// resolvePort resolves a port given by name or number to its number.
func resolvePort(named map[string]string, port string) string {
	if n, ok := named[port]; ok {
		return n
	}
	return port
}

// The Dockerfile builds a static binary and runs it as a non-root user on the port the
// example deployment listens on.
func TestDockerfileIsStaticAndNonRoot(t *testing.T) {
	f, err := os.Open(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	last := func(prefix string) string {
		found := ""
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				found = strings.TrimSpace(strings.TrimPrefix(l, prefix))
			}
		}
		return found
	}
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, `-extldflags "-static"`) || !strings.Contains(text, "CGO_ENABLED=1") {
		t.Error("the binary is not built static (with cgo, for SQLite)")
	}
	if from := last("FROM "); from != "scratch" {
		t.Errorf("the final image is FROM %s, want scratch: a static binary needs nothing else", from)
	}
	if user := last("USER "); user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER %q: want a non-root user", user)
	}
	deployment := readManifests(t)["Deployment"]
	c := deployment.Spec.Template.Spec.Containers[0]
	if uid := strconv.Itoa(deployment.Spec.Template.Spec.SecurityContext.RunAsUser); !strings.HasPrefix(last("USER "), uid+":") {
		t.Errorf("USER %s, but the Deployment runs as %s", last("USER "), uid)
	}
	if expose := last("EXPOSE "); expose != strconv.Itoa(c.Ports[0].ContainerPort) {
		t.Errorf("EXPOSE %s, but the container port is %d", expose, c.Ports[0].ContainerPort)
	}
}
