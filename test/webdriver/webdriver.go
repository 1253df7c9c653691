// Package webdriver drives a headless Chromium through chromedriver over the W3C
// WebDriver HTTP protocol, with net/http only. It is for the web console's browser
// test; it starts chromedriver on a free loopback port and Chromium with a fresh
// profile and no network features of its own (sync, updates, QUIC).
package webdriver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Browser is one WebDriver session in its own chromedriver.
type Browser struct {
	base    string // http://127.0.0.1:PORT/session/ID
	driver  *exec.Cmd
	done    chan error
	client  *http.Client
	profile string
}

// Paths of the Debian chromium and chromium-driver packages.
const (
	ChromiumPath     = "/usr/bin/chromium"
	ChromedriverPath = "/usr/bin/chromedriver"
)

// Start runs chromedriver and opens a headless Chromium session whose profile
// lives in profileDir. It trusts any TLS certificate (the test server's root is
// not in Chromium's store); everything else is Chromium's defaults.
func Start(ctx context.Context, profileDir string) (*Browser, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := &Browser{client: &http.Client{Timeout: 60 * time.Second}, done: make(chan error, 1), profile: profileDir}
	b.driver = exec.Command(ChromedriverPath, fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	var logs bytes.Buffer
	b.driver.Stdout, b.driver.Stderr = &logs, &logs
	if err := b.driver.Start(); err != nil {
		return nil, fmt.Errorf("webdriver: starting %s: %w", ChromedriverPath, err)
	}
	go func() { b.done <- b.driver.Wait() }()
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(ctx, b.client, root, b.done); err != nil {
		b.kill()
		return nil, fmt.Errorf("webdriver: chromedriver: %w: %s", err, logs.String())
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":         "chrome",
		"acceptInsecureCerts": true,
		"goog:chromeOptions": map[string]any{
			"binary": ChromiumPath,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
				"--user-data-dir=" + profileDir, "--window-size=1280,1600"},
		},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "POST", root+"/session", caps, &sess); err != nil {
		b.kill()
		return nil, err
	}
	b.base = root + "/session/" + sess.SessionID
	return b, nil
}

func waitReady(ctx context.Context, c *http.Client, root string, done chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		var st struct {
			Ready bool `json:"ready"`
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", root+"/status", nil)
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if json.Unmarshal(v.Value, &st) == nil && st.Ready {
			return nil
		}
	}
	return errors.New("not ready within 30 s")
}

// Close ends the session and chromedriver.
func (b *Browser) Close() {
	if b.base != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = b.call(ctx, "DELETE", b.base, nil, nil)
		cancel()
	}
	b.kill()
}

func (b *Browser) kill() {
	if b.driver.ProcessState == nil {
		_ = b.driver.Process.Kill()
		<-b.done
	}
}

// Error is a WebDriver error answer.
type Error struct {
	Code, Message string
}

func (e *Error) Error() string { return "webdriver: " + e.Code + ": " + e.Message }

// call sends one command and decodes the answer's value into out.
func (b *Browser) call(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("webdriver: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return fmt.Errorf("webdriver: %s %s: answer %d: %w", method, url, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error, Message string }
		json.Unmarshal(v.Value, &e)
		return &Error{Code: e.Error, Message: firstLine(e.Message)}
	}
	if out != nil {
		return json.Unmarshal(v.Value, out)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Go opens url.
func (b *Browser) Go(ctx context.Context, url string) error {
	return b.call(ctx, "POST", b.base+"/url", map[string]string{"url": url}, nil)
}

// URL is the current page's URL.
func (b *Browser) URL(ctx context.Context) (string, error) {
	var u string
	err := b.call(ctx, "GET", b.base+"/url", nil, &u)
	return u, err
}

// Source is the current page's HTML.
func (b *Browser) Source(ctx context.Context) (string, error) {
	var s string
	err := b.call(ctx, "GET", b.base+"/source", nil, &s)
	return s, err
}

// Screenshot writes a PNG of the page to path.
func (b *Browser) Screenshot(ctx context.Context, path string) error {
	var s string
	if err := b.call(ctx, "GET", b.base+"/screenshot", nil, &s); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// elementKey is the W3C name of an element reference.
const elementKey = "element-6066-11e4-a6e7-4a6e7a6e7a6e"

// elementID reads an element reference; it has one member, elementKey.
func elementID(ref map[string]string) string {
	if id, ok := ref[elementKey]; ok {
		return id
	}
	for _, id := range ref {
		return id
	}
	return ""
}

// Element is an element of the current page.
type Element struct {
	b  *Browser
	id string
}

// Find returns the first element matching the CSS selector.
func (b *Browser) Find(ctx context.Context, css string) (*Element, error) {
	var ref map[string]string
	if err := b.call(ctx, "POST", b.base+"/element", map[string]string{"using": "css selector", "value": css}, &ref); err != nil {
		return nil, fmt.Errorf("%s: %w", css, err)
	}
	return &Element{b: b, id: elementID(ref)}, nil
}

// FindAll returns every element matching the CSS selector.
func (b *Browser) FindAll(ctx context.Context, css string) ([]*Element, error) {
	var refs []map[string]string
	if err := b.call(ctx, "POST", b.base+"/elements", map[string]string{"using": "css selector", "value": css}, &refs); err != nil {
		return nil, fmt.Errorf("%s: %w", css, err)
	}
	out := make([]*Element, len(refs))
	for i, r := range refs {
		out[i] = &Element{b: b, id: elementID(r)}
	}
	return out, nil
}

// Type types text into the element.
func (e *Element) Type(ctx context.Context, text string) error {
	return e.b.call(ctx, "POST", e.b.base+"/element/"+e.id+"/value", map[string]string{"text": text}, nil)
}

// Click clicks the element.
func (e *Element) Click(ctx context.Context) error {
	return e.b.call(ctx, "POST", e.b.base+"/element/"+e.id+"/click", map[string]string{}, nil)
}

// Text is the element's rendered text.
func (e *Element) Text(ctx context.Context) (string, error) {
	var s string
	err := e.b.call(ctx, "GET", e.b.base+"/element/"+e.id+"/text", nil, &s)
	return s, err
}

// Script runs JavaScript in the page and returns its result (as WebDriver's
// execute/sync, which the page's Content-Security-Policy does not govern).
func (b *Browser) Script(ctx context.Context, script string, out any) error {
	return b.call(ctx, "POST", b.base+"/execute/sync", map[string]any{"script": script, "args": []any{}}, out)
}

// ClickAndWait clicks an element that leads to another page (a link, a form's
// button) and waits until that page has loaded: the old document is gone and the
// new one is complete.
func (e *Element) ClickAndWait(ctx context.Context) error {
	b := e.b
	old, err := b.Find(ctx, "html")
	if err != nil {
		return err
	}
	if err := e.Click(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var name string
		err := b.call(ctx, "GET", b.base+"/element/"+old.id+"/name", nil, &name)
		var we *Error
		if errors.As(err, &we) && we.Code == "stale element reference" {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("webdriver: the click led to no new page within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		var state string
		if err := b.Script(ctx, "return document.readyState", &state); err == nil && state == "complete" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("webdriver: the new page did not load within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
