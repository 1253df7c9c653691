package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/varmenne/varmenne/internal/signedpost"
)

// WebhookTimeout bounds one POST of an alert.
const WebhookTimeout = 5 * time.Second

// webhook POSTs each alert as JSON, signed as the policy webhook's requests are
// (internal/signedpost: X-Varmenne-Signature, HMAC-SHA256 of the body).
type webhook struct {
	url    string
	secret []byte
	client *http.Client
}

// Webhook is the sink that POSTs to rawURL, signing with the secret in
// secretFile. Like the policy webhook it reaches public addresses over https,
// and the networks of allow (the --alert-allow-network flag) over http or https.
func Webhook(rawURL, secretFile string, allow []netip.Prefix) (Sink, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("--alert-webhook %q must be an http or https URL without user info or fragment", rawURL)
	}
	const allowList = "--alert-allow-network"
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !signedpost.Reachable(ip, u.Scheme, allow) {
		return nil, fmt.Errorf("--alert-webhook %q targets %s, which is %s", rawURL, ip, signedpost.RefusedWhy(u.Scheme, allowList))
	}
	if secretFile == "" {
		return nil, fmt.Errorf("--alert-webhook needs --alert-webhook-secret-file: the alerts are signed with its key")
	}
	secret, err := signedpost.ReadSecret(secretFile)
	if err != nil {
		return nil, fmt.Errorf("--alert-webhook-secret-file: %w", err)
	}
	return &webhook{url: rawURL, secret: secret, client: signedpost.Client(u.Scheme, allow, allowList, WebhookTimeout)}, nil
}

func (w *webhook) Name() string { return "webhook" }

func (w *webhook) Send(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "varmenne-alert")
	req.Header.Set(signedpost.SignatureHeader, signedpost.Sign(w.secret, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}
