package thl

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSourceFile(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		file   string
		format Format
	}{
		{"JSON pages", "testdata/register.json", FormatAuto},
		{"XML export", "testdata/register.xml", FormatXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Source{Location: tt.file, Format: tt.format}.Load(ctx)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			wantEntries(t, got, sample)
		})
	}
	t.Run("a missing file names it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "register.json")
		_, err := Source{Location: missing}.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("Load: %v, want an error naming %s", err, missing)
		}
	})
	t.Run("a file over the size cap is refused", func(t *testing.T) {
		_, err := Source{Location: "testdata/register.xml", MaxBytes: 100}.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), "cap of 100 bytes") {
			t.Errorf("Load: %v, want the size cap", err)
		}
	})
}

// codeService serves the sample's JSON pages as the code service does: page 1
// without a page parameter, page N with page=N. It records the pages asked for.
type codeService struct {
	mu    sync.Mutex
	asked []string
	pages map[string][]byte
	xml   []byte
}

func newCodeService(t *testing.T) (*codeService, *httptest.Server) {
	cs := &codeService{pages: map[string][]byte{
		"":  readTestdata(t, "register-p1.json"),
		"1": readTestdata(t, "register-p1.json"),
		"2": readTestdata(t, "register-p2.json"),
	}, xml: readTestdata(t, "register.xml")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		p := r.URL.Query().Get("page")
		cs.asked = append(cs.asked, r.URL.Path+"?page="+p)
		switch r.URL.Path {
		case "/codeserver/csapi/v6/classifications/1.2.246.537.6.202.2008/conceptcodes":
			b, ok := cs.pages[p]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		case "/export.xml":
			w.Header().Set("Content-Type", "application/xml")
			w.Write(cs.xml)
		case "/down":
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return cs, srv
}

const conceptCodesPath = "/codeserver/csapi/v6/classifications/1.2.246.537.6.202.2008/conceptcodes"

func TestSourceURL(t *testing.T) {
	ctx := context.Background()
	t.Run("a paged JSON answer is read page by page", func(t *testing.T) {
		cs, srv := newCodeService(t)
		got, err := Source{Location: srv.URL + conceptCodesPath + "?pageSize=4", AllowHTTP: true}.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		wantEntries(t, got, sample)
		if want := []string{conceptCodesPath + "?page=", conceptCodesPath + "?page=2"}; strings.Join(cs.asked, " ") != strings.Join(want, " ") {
			t.Errorf("asked for %q, want %q", cs.asked, want)
		}
	})
	t.Run("an XML export", func(t *testing.T) {
		_, srv := newCodeService(t)
		got, err := Source{Location: srv.URL + "/export.xml", AllowHTTP: true}.Load(ctx)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		wantEntries(t, got, sample)
	})
	failures := []struct {
		name  string
		setup func(cs *codeService)
		path  string
		src   Source
		wants []string
	}{
		{"an error status", nil, "/down", Source{}, []string{"/down", "503 Service Unavailable"}},
		{"a later page that fails", func(cs *codeService) { delete(cs.pages, "2") }, conceptCodesPath, Source{}, []string{"page=2", "404"}},
		{"a later page that repeats the first", func(cs *codeService) { cs.pages["2"] = cs.pages["1"] }, conceptCodesPath, Source{}, []string{"page 1 appears twice"}},
		{"an answer over the size cap", nil, "/export.xml", Source{MaxBytes: 1000}, []string{"cap of 1000 bytes"}},
		{"pages together over the size cap", nil, conceptCodesPath, Source{MaxBytes: int64(len(readTestdata(t, "register-p1.json"))) + 10}, []string{"cap of"}},
		{"an HTML error page with status 200", func(cs *codeService) { cs.xml = []byte("<html><body>Login</body></html>") }, "/export.xml", Source{}, []string{"lists no organisations"}},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			cs, srv := newCodeService(t)
			if tt.setup != nil {
				tt.setup(cs)
			}
			src := tt.src
			src.Location, src.AllowHTTP = srv.URL+tt.path, true
			_, err := src.Load(ctx)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("a password in the URL is not shown", func(t *testing.T) {
		_, srv := newCodeService(t)
		loc := strings.Replace(srv.URL, "http://", "http://user:sekret@", 1) + "/down"
		_, err := Source{Location: loc, AllowHTTP: true}.Load(ctx)
		if err == nil || strings.Contains(err.Error(), "sekret") {
			t.Errorf("error %v shows the password or is missing", err)
		}
	})
}

func TestSourceValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "register.json")
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		src   Source
		wants string // "" valid
	}{
		{"a file path", Source{Location: file}, ""},
		{"an https URL", Source{Location: "https://koodistopalvelu.kanta.fi/codeserver/csapi/v6/classifications/1.2.246.537.6.202.2008/conceptcodes"}, ""},
		{"nothing", Source{}, "no register source"},
		{"an ftp URL", Source{Location: "ftp://example.fi/register.xml"}, "only http:// and https://"},
		{"plain http without saying so", Source{Location: "http://koodistopalvelu.example/register.json"}, "is plain http"},
		{"plain HTTP in capitals without saying so", Source{Location: "HTTP://koodistopalvelu.example/register.json"}, "is plain http"},
		{"a URL without a host", Source{Location: "https:///register.xml"}, "not a usable URL"},
		{"an unknown format", Source{Location: file, Format: "csv"}, `"csv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.src.Validate()
			if tt.wants == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("Validate: %v, want %q", err, tt.wants)
			}
		})
	}
}
