package deploy

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]struct {
		Image       string                                `yaml:"image"`
		Build       *struct{ Context, Dockerfile string } `yaml:"build"`
		Command     []string                              `yaml:"command"`
		Environment map[string]string                     `yaml:"environment"`
		Volumes     []string                              `yaml:"volumes"`
		Ports       []string                              `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// TestComposeReferencesResolve checks what `docker compose config` would:
// every dependency, volume, mounted file and build context exists, and the
// syncd replicas point at the cluster they are meant to use.
func TestComposeReferencesResolve(t *testing.T) {
	c := loadCompose(t)
	var nats, syncd []string
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s: neither image nor build", name)
		}
		for dep, d := range s.DependsOn {
			dep := c.Services[dep]
			if dep.Image == "" && dep.Build == nil {
				t.Errorf("service %s depends on undefined service", name)
			}
			if d.Condition == "service_healthy" && dep.Healthcheck == nil {
				t.Errorf("service %s waits for a healthy dependency that has no healthcheck", name)
			}
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s uses undeclared volume %s", name, src)
			}
		}
		if s.Build != nil {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s builds %s: %v", name, df, err)
			}
			syncd = append(syncd, name)
		}
		if strings.HasPrefix(s.Image, "nats:") {
			nats = append(nats, name)
		}
	}
	if len(nats) != 3 || len(syncd) != 2 {
		t.Fatalf("want 3 NATS nodes and 2 syncd replicas, got %v and %v", nats, syncd)
	}
	for _, name := range syncd {
		env := c.Services[name].Environment
		if env["SYNCD_STREAM_REPLICAS"] != "3" {
			t.Errorf("%s: SYNCD_STREAM_REPLICAS %q, want 3", name, env["SYNCD_STREAM_REPLICAS"])
		}
		for _, u := range strings.Split(env["NATS_URL"], ",") {
			pu, err := url.Parse(u)
			if err != nil || c.Services[pu.Hostname()].Image == "" {
				t.Errorf("%s: NATS_URL names %q, not a NATS service", name, u)
			}
		}
		db, err := url.Parse(env["DATABASE_URL"])
		if err != nil || c.Services[db.Hostname()].Image == "" {
			t.Errorf("%s: DATABASE_URL host is not a service", name)
		}
	}
}

// TestComposeVariablesAreSyncds keeps the example from setting a variable
// syncd does not read: each one must be in the README's configuration.
func TestComposeVariablesAreSyncds(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		for k := range s.Environment {
			if !strings.Contains(string(readme), "`"+k+"`") {
				t.Errorf("service %s sets %s, which the README does not document", name, k)
			}
		}
	}
}

// TestNATSConfigIsDurableAndRoutesResolve: the cluster fsyncs before it
// acknowledges, and every route names a node of the compose file.
func TestNATSConfigIsDurableAndRoutesResolve(t *testing.T) {
	b, err := os.ReadFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !regexp.MustCompile(`(?m)^\s*sync_interval:\s*always\s*$`).MatchString(conf) {
		t.Error("nats.conf: jetstream sync_interval is not always")
	}
	c := loadCompose(t)
	routes := regexp.MustCompile(`nats-route://([a-z0-9-]+):6222`).FindAllStringSubmatch(conf, -1)
	if len(routes) != 3 {
		t.Fatalf("nats.conf: %d routes, want 3", len(routes))
	}
	for _, r := range routes {
		if !strings.HasPrefix(c.Services[r[1]].Image, "nats:") {
			t.Errorf("route to %s: not a NATS service", r[1])
		}
	}
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "nats:") && s.Environment["NATS_SERVER_NAME"] != name {
			t.Errorf("%s: NATS_SERVER_NAME %q", name, s.Environment["NATS_SERVER_NAME"])
		}
	}
}

// TestDockerfile parses the Dockerfile: stages referenced exist, exec-form
// instructions are valid JSON, and the health check runs syncd itself (the
// distroless image has no shell).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	var health, entry []string
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			if len(f) >= 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		case "COPY":
			for _, a := range f[1:] {
				if from, ok := strings.CutPrefix(a, "--from="); ok && !stages[from] {
					t.Errorf("line %d: COPY --from=%s names no earlier stage", i+1, from)
				}
			}
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(line[len(f[0]):])), &v); err != nil {
				t.Errorf("line %d: %s is not exec form: %v", i+1, f[0], err)
			}
			if strings.EqualFold(f[0], "ENTRYPOINT") {
				entry = v
			}
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(line, " CMD ")
			if !ok || json.Unmarshal([]byte(cmd), &health) != nil {
				t.Errorf("line %d: HEALTHCHECK wants exec-form CMD", i+1)
			}
		}
	}
	if len(entry) != 1 || len(health) != 2 || health[0] != entry[0] || health[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %q should run %q healthcheck", health, entry)
	}
}

// TestComposeConfig runs Docker's own check where Docker exists (CI
// machines without it rely on the tests above).
func TestComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err == nil {
		err = exec.Command(docker, "compose", "version").Run()
	}
	if err != nil {
		t.Log("no docker compose on this machine: compose.yaml checked by the parsing tests only")
		return
	}
	out, err := exec.Command(docker, "compose", "-f", "compose.yaml", "config", "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}
