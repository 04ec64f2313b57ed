package syncdtest_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncd/syncd/syncdtest"
)

// The harness is the service package, not a copy of its wiring: what it
// exposes is the service's own.
func TestHarnessRunsTheService(t *testing.T) {
	t.Parallel()
	h := syncdtest.NewHarness(t)
	if h.Pool != h.Service.Pool() || h.NATS != h.Service.NATS() || h.Service.Ingest() == nil {
		t.Fatal("the harness's pool, JetStream or ingest is not the service's")
	}
	if h.Service.Consumer() != nil {
		t.Fatal("the consumer runs before StartConsumer")
	}
	h.StartConsumer()
	if h.Service.Consumer() == nil {
		t.Fatal("StartConsumer did not start the service's consumer")
	}
	resp, err := http.Get(h.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %s", resp.Status)
	}
	h.PostWorkOS(syncdtest.WorkOSEvent("event_h1", "user.created", map[string]any{"object": "user", "id": "user_h1", "email": "h1@x.test"}))
	h.WaitSettled()
	var n int
	if err := h.Pool.QueryRow(t.Context(), `SELECT count(*) FROM users WHERE workos_user_id = 'user_h1'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("user applied through the service: %d, %v", n, err)
	}
}

// syncdtest builds no component itself: the constructors are called in
// the service package only, so the tests cannot drift from what runs.
// (The template database's migrations are a fixture, not wiring.)
func TestHarnessBuildsNoComponent(t *testing.T) {
	forbidden := map[string]bool{
		"ingest.New": true, "consumers.New": true, "provision.New": true, "retention.New": true,
		"workosapi.New": true, "http.NewServeMux": true, "httptest.NewServer": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && forbidden[id.Name+"."+sel.Sel.Name] {
				t.Errorf("%s: syncdtest calls %s.%s; build it in the service package", fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no syncdtest source found")
	}
}
