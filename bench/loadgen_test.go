package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// TestTightModeRewritesRetryAfter: a tight client asks again at once where the
// server said Retry-After; a stock client sees the server's value.
func TestTightModeRewritesRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pending":
			w.Header().Set("Retry-After", "3")
		case "/refused":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "{}")
	}))
	defer srv.Close()
	for _, tt := range []struct {
		name, path string
		stock      bool
		want       string // "past": a time already past
	}{
		{"tight, a waiting answer", "/pending", false, "past"},
		{"tight, an answer without Retry-After", "/done", false, ""},
		{"tight, a refusal keeps its Retry-After", "/refused", false, "3"},
		{"stock, a waiting answer", "/pending", true, "3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := newTransport(Config{Stock: tt.stock, Poll: time.Millisecond, Concurrency: 1})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tt.path, nil)
			res, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			got := res.Header.Get("Retry-After")
			if tt.want == "past" {
				at, err := http.ParseTime(got)
				if err != nil || !at.Before(time.Now()) {
					t.Fatalf("Retry-After %q, want a time already past", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("Retry-After %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		want []time.Duration // p50, p95, p99, p100
	}{
		{"empty", nil, ms(0, 0, 0, 0)},
		{"one", ms(7), ms(7, 7, 7, 7)},
		{"unsorted ten", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), ms(5, 10, 10, 10)},
		{"hundred", func() []time.Duration {
			var d []time.Duration
			for i := 100; i >= 1; i-- {
				d = append(d, time.Duration(i)*time.Millisecond)
			}
			return d
		}(), ms(50, 95, 99, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Percentiles(tt.in, 50, 95, 99, 100)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("percentiles %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestProblemType(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"server answer", fmt.Errorf("newOrder: %w", &acme.Error{StatusCode: 403, ProblemType: "urn:ietf:params:acme:error:unauthorized"}), "urn:ietf:params:acme:error:unauthorized"},
		{"answer without a type", &acme.Error{StatusCode: 502}, "HTTP 502"},
		{"invalid order", fmt.Errorf("finalize: %w", &acme.OrderError{Status: "invalid", Problem: &acme.Error{ProblemType: "urn:ietf:params:acme:error:badCSR"}}), "urn:ietf:params:acme:error:badCSR"},
		{"invalid order without a problem", &acme.OrderError{Status: "invalid"}, "order invalid"},
		{"failed challenge", &acme.AuthorizationError{Errors: []error{&acme.Error{ProblemType: "urn:ietf:params:acme:error:connection"}}}, "urn:ietf:params:acme:error:connection"},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), "timeout"},
		{"anything else", errors.New("connection refused"), "transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ProblemType(tt.err); got != tt.want {
				t.Errorf("ProblemType = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWatchdogStallsARunWithoutProgress: no order ending for the timeout cancels the
// run with ErrStalled; an order ending in time keeps it going.
func TestWatchdogStallsARunWithoutProgress(t *testing.T) {
	rec := newRecorder(2)
	ctx, stall := context.WithCancelCause(context.Background())
	defer stall(nil)
	stop := watchdog(rec, 1500*time.Millisecond, stall)
	defer stop()
	rec.add(map[string]time.Duration{StepOrder: time.Millisecond}, nil)
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), ErrStalled) {
		t.Fatalf("cause %v, want ErrStalled", context.Cause(ctx))
	}
	if got := ProblemType(fmt.Errorf("%w (%v)", ErrStalled, context.Canceled)); got != "stalled" {
		t.Errorf("ProblemType of a stalled order = %q", got)
	}
}
