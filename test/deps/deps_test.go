// Package deps holds the import rules of DESIGN.md as one table, checked against the
// module's import graph on every `make test`: which package may depend on which. A
// broken rule fails with the import chain that breaks it. It has no code of its own.
package deps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the import path of this module.
const module = "github.com/varmenne/varmenne"

// rules is the table: a row per rule.
var rules = []rule{
	{
		name: "no package of the CA imports a test or tooling package",
		// Test helpers, the end-to-end harness and the load generator pull test
		// servers, fixed keys and clients into whatever links them.
		from:   everything,
		except: []matcher{testOrTooling, pkgs("cmd/varmenne-bench")}, // the load generator's command is tooling too
		forbid: []matcher{testOrTooling},
	},
	{
		name:   "policy never imports signer",
		from:   []matcher{pkgs("policy/...")},
		forbid: []matcher{pkgs("signer/...")},
	},
	{
		name: "only the allow-listed packages import net/http",
		from: everything,
		except: []matcher{
			testOrTooling,               // tests, the harness, the browser driver and the load generator speak HTTP
			pkgs("acme"),                // the HTTP status of each error kind (constants only; no HTTP types)
			pkgs("acme/server"),         // the ACME front end
			pkgs("acme/validate"),       // http-01 validation: an outbound client with its own dialer
			pkgs("crl"),                 // serves CRLs, OCSP and issuer certificates on the public listener
			pkgs("policy"),              // the type of the outbound client plugins are given (Env.HTTPClient)
			pkgs("policy/thl"),          // fetches the THL register from the code service
			pkgs("policy/webhook"),      // asks the external policy service
			pkgs("internal/signedpost"), // the signed, address-checked outbound client of both webhooks
			pkgs("alert"),               // POSTs alerts to the operator's webhook
			pkgs("internal/metrics"),    // the Prometheus handler the ops listener serves on /metrics
			pkgs("admin/api"),           // the operators' JSON API (a front end of admin)
			pkgs("admin/console"),       // the operators' web console (a front end of admin)
			pkgs("admin/web"),           // puts both front ends on the admin listener
			pkgs("admin"),               // judged by its own row below: admin does not import net/http
			pkgs("cmd/..."),             // the commands wire the listeners
		},
		forbid: []matcher{std("net/http/...")},
		// Direct imports: the rule is about who uses HTTP. Linking it is unavoidable,
		// since every importer of policy links net/http through Env.HTTPClient.
		direct: true,
	},
	{
		name:   "admin does not import crl",
		from:   []matcher{pkgs("admin")},
		forbid: []matcher{pkgs("crl/...")},
	},
	{
		name:   "admin does not import signer",
		from:   []matcher{pkgs("admin")},
		forbid: []matcher{pkgs("signer/...")},
	},
	{
		name:   "admin does not import net/http",
		from:   []matcher{pkgs("admin")},
		forbid: []matcher{std("net/http/...")},
		direct: true,
	},
}

// TestImportRules checks every rule against the module's packages (not their
// tests: a test may import what it needs).
func TestImportRules(t *testing.T) {
	g, err := loadGraph()
	if err != nil {
		t.Fatal(err)
	}
	if len(g.pkgs) == 0 || g.pkgs[module+"/cmd/varmenne"] == nil {
		t.Fatalf("go list found no cmd/varmenne among %d packages: the graph is not this module's", len(g.pkgs))
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			judged, broken := r.check(g)
			if judged == 0 {
				t.Errorf("the rule judges no package: its from patterns match nothing")
			}
			for _, chain := range broken {
				msg := fmt.Sprintf("%s breaks the rule: %s", short(chain[0]), showChain(chain))
				t.Error(msg)
			}
		})
	}
}

// rule is one row: no package matched by from (and not by except) may import a
// package matched by forbid, directly or (unless direct) through any chain.
type rule struct {
	name   string
	from   []matcher
	except []matcher
	forbid []matcher
	direct bool
}

// pkg is one package as go list reports it.
type pkg struct {
	ImportPath string
	Name       string
	Standard   bool
	Imports    []string
}

// graph is the import graph: the module's packages and everything they depend on.
type graph struct {
	pkgs map[string]*pkg
}

// loadGraph asks go list, once, for every package of the module and its
// dependencies, with their direct imports (test files left out).
func loadGraph() (*graph, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Name,Standard,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, stderr.String())
	}
	g := &graph{pkgs: map[string]*pkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		g.pkgs[p.ImportPath] = &p
	}
	return g, nil
}

// check returns how many packages the rule judged and, for each that breaks it, the
// shortest import chain from it to a forbidden package.
func (r rule) check(g *graph) (judged int, broken [][]string) {
	paths := make([]string, 0, len(g.pkgs))
	for path := range g.pkgs {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	for _, path := range paths {
		p := g.pkgs[path]
		if !inModule(path) || !matchAny(r.from, p) || matchAny(r.except, p) {
			continue
		}
		judged++
		if chain := r.firstForbidden(g, path); chain != nil {
			broken = append(broken, chain)
		}
	}
	return judged, broken
}

// firstForbidden searches breadth first from start and returns the shortest chain
// start → … → forbidden package, or nil.
func (r rule) firstForbidden(g *graph, start string) []string {
	prev := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g.pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			target := g.pkgs[imp]
			if target == nil { // go list -deps lists every import; "C" is the exception
				target = &pkg{ImportPath: imp}
			}
			if matchAny(r.forbid, target) {
				var chain []string
				for at := imp; at != ""; at = prev[at] {
					chain = append(chain, at)
				}
				slices.Reverse(chain)
				return chain
			}
			if !r.direct {
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// matcher selects packages.
type matcher func(p *pkg) bool

// everything is every package of the module.
var everything = []matcher{func(p *pkg) bool { return inModule(p.ImportPath) }}

// pkgs matches a package of the module by its path inside the module; "x/..." is x
// and every package below it, as for the go command.
func pkgs(pattern string) matcher {
	return func(p *pkg) bool { return inModule(p.ImportPath) && matchPattern(pattern, short(p.ImportPath)) }
}

// std matches a standard library package; "x/..." as for pkgs.
func std(pattern string) matcher {
	return func(p *pkg) bool { return p.Standard && matchPattern(pattern, p.ImportPath) }
}

// testOrTooling matches the module's test and tooling packages: everything under
// test/, every package whose name ends in "test" (jwstest, acmetest, signertest,
// softhsmtest, pgtest), the load generator bench with what is under it, and the
// Debian packaging (packaging/..., which links nfpm and go-git).
func testOrTooling(p *pkg) bool {
	if !inModule(p.ImportPath) {
		return false
	}
	s := short(p.ImportPath)
	return matchPattern("test/...", s) || matchPattern("bench/...", s) || matchPattern("packaging/...", s) || strings.HasSuffix(p.Name, "test")
}

func matchPattern(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchAny(ms []matcher, p *pkg) bool {
	return slices.ContainsFunc(ms, func(m matcher) bool { return m(p) })
}

func inModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// short is a module package's path inside the module; other paths as they are.
func short(path string) string {
	if s, ok := strings.CutPrefix(path, module+"/"); ok {
		return s
	}
	return path
}

func showChain(chain []string) string {
	out := make([]string, len(chain))
	for i, c := range chain {
		out[i] = short(c)
	}
	return strings.Join(out, " → ")
}

// fakeGraph is a graph of the module's packages (paths inside the module) and the
// standard library packages stdPkgs; names are the last path element.
func fakeGraph(imports map[string][]string, stdPkgs ...string) *graph {
	g := &graph{pkgs: map[string]*pkg{}}
	name := func(path string) string { return path[strings.LastIndex(path, "/")+1:] }
	for _, s := range stdPkgs {
		g.pkgs[s] = &pkg{ImportPath: s, Name: name(s), Standard: true}
	}
	full := func(path string) string {
		if slices.Contains(stdPkgs, path) {
			return path
		}
		return module + "/" + path
	}
	for from, imps := range imports {
		p := &pkg{ImportPath: full(from), Name: name(from)}
		for _, imp := range imps {
			p.Imports = append(p.Imports, full(imp))
			if g.pkgs[full(imp)] == nil {
				g.pkgs[full(imp)] = &pkg{ImportPath: full(imp), Name: name(imp)}
			}
		}
		g.pkgs[p.ImportPath] = p
	}
	return g
}

// TestRuleCheck proves the checker finds what breaks a rule, through any chain, and
// nothing else, so that TestImportRules cannot pass by finding nothing.
func TestRuleCheck(t *testing.T) {
	row := func(name string) rule {
		for _, r := range rules {
			if r.name == name {
				return r
			}
		}
		t.Fatalf("no rule %q", name)
		return rule{}
	}
	noTest := row("no package of the CA imports a test or tooling package")
	noSigner := row("policy never imports signer")
	http := row("only the allow-listed packages import net/http")
	tests := []struct {
		name   string
		rule   rule
		graph  *graph
		judged int
		want   []string // the chains found, shown as showChain shows them
	}{
		{"a clean graph breaks nothing", noTest,
			fakeGraph(map[string][]string{"cmd/varmenne": {"acme/server", "store"}, "acme/server": {"store"}, "store": nil}),
			3, nil},
		{"a direct import of a test package", noTest,
			fakeGraph(map[string][]string{"cmd/varmenne": {"acme/jws/jwstest"}, "acme/jws/jwstest": nil}),
			1, []string{"cmd/varmenne → acme/jws/jwstest"}},
		{"a tooling package is where the chain stops", noTest,
			fakeGraph(map[string][]string{"cmd/varmenne": {"bench"}, "bench": {"test/dnsserver"}, "test/dnsserver": nil}),
			1, []string{"cmd/varmenne → bench"}},
		{"a chain through a package of the CA", noTest,
			fakeGraph(map[string][]string{"cmd/varmenne": {"acme/server"}, "acme/server": {"acme/authority"}, "acme/authority": {"store/pgtest"}}),
			3, []string{"acme/authority → store/pgtest", "acme/server → acme/authority → store/pgtest", "cmd/varmenne → acme/server → acme/authority → store/pgtest"}},
		{"the shortest chain is named", noTest,
			fakeGraph(map[string][]string{"cmd/varmenne": {"a", "test/harness"}, "a": {"b"}, "b": {"test/harness"}}),
			3, []string{"a → b → test/harness", "b → test/harness", "cmd/varmenne → test/harness"}},
		{"test and tooling packages may import each other, and the load generator's command bench", noTest,
			fakeGraph(map[string][]string{"test/e2e": {"test/harness"}, "bench/suite": {"bench", "signer/pkcs11/softhsmtest"}, "cmd/varmenne-bench": {"bench"}, "acme/acmetest": {"acme/jws/jwstest"}}),
			0, nil},
		{"policy reaching signer through the store", noSigner,
			fakeGraph(map[string][]string{"policy/keys": {"policy"}, "policy": {"store"}, "store": {"signer/filekey"}}),
			2, []string{"policy → store → signer/filekey", "policy/keys → policy → store → signer/filekey"}},
		{"policy beside signer breaks nothing", noSigner,
			fakeGraph(map[string][]string{"policy/keys": {"policy"}, "profile": {"policy", "signer"}}),
			2, nil},
		{"net/http imported by a package off the list", http,
			fakeGraph(map[string][]string{"store": {"net/http"}, "acme/server": {"net/http"}}, "net/http"),
			1, []string{"store → net/http"}},
		{"a subpackage of net/http counts", http,
			fakeGraph(map[string][]string{"audit": {"net/http/httputil"}}, "net/http/httputil"),
			1, []string{"audit → net/http/httputil"}},
		{"net/http linked through an allowed package is not an import", http,
			fakeGraph(map[string][]string{"policy/keys": {"policy"}, "policy": {"net/http"}}, "net/http"),
			1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			judged, broken := tt.rule.check(tt.graph)
			var got []string
			for _, c := range broken {
				got = append(got, showChain(c))
			}
			if judged != tt.judged || !slices.Equal(got, tt.want) {
				t.Errorf("check judged %d and found %q; want %d and %q", judged, got, tt.judged, tt.want)
			}
		})
	}
}

// TestAdminRows: the rows about admin find, on a graph of admin as it was before
// the split (issue 15), what they are for.
func TestAdminRows(t *testing.T) {
	g := fakeGraph(map[string][]string{"admin": {"crl", "signer/filekey", "store", "net/http"}, "crl": {"store"}, "signer/filekey": {"signer"}}, "net/http")
	var rows int
	for _, r := range rules {
		if !strings.HasPrefix(r.name, "admin does not import") {
			continue
		}
		rows++
		if _, broken := r.check(g); len(broken) != 1 {
			t.Errorf("%s: found %d chains on admin before the split, want 1", r.name, len(broken))
		}
	}
	if rows != 3 {
		t.Errorf("%d rows judge admin alone, want 3 (crl, signer, net/http)", rows)
	}
}
