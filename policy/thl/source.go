package thl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Source defaults.
const (
	// DefaultMaxBytes caps what one load reads, over every page: the whole register
	// with every attribute is some tens of megabytes.
	DefaultMaxBytes = 256 << 20
	// DefaultTimeout bounds one HTTP request.
	DefaultTimeout = time.Minute
	// maxPages bounds how many pages a paged JSON answer may have.
	maxPages = 10_000
)

// Source is where the register is loaded from: a file path, or an http(s) URL of the
// code service's conceptcodes answer (e.g.
// https://koodistopalvelu.kanta.fi/codeserver/csapi/v6/classifications/1.2.246.537.6.202.2008/conceptcodes?pageSize=500)
// or of an XML export. A paged JSON answer is followed page by page (the page query
// parameter) up to its totalPages.
type Source struct {
	Location string
	Format   Format       // FormatAuto: told apart by the first character
	Client   *http.Client // nil: a client with DefaultTimeout
	MaxBytes int64        // 0: DefaultMaxBytes
	// AllowHTTP accepts a plain http:// URL. The register decides who may get
	// certificates, so by default it must come over https or from a file; a
	// test's or an internal mirror's plain http needs this said explicitly.
	AllowHTTP bool
}

// IsURL reports whether the location is an http(s) URL rather than a file path.
func (s Source) IsURL() bool {
	l := strings.ToLower(s.Location)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// Validate checks the location and format without loading anything.
func (s Source) Validate() error {
	if strings.TrimSpace(s.Location) == "" {
		return errors.New("no register source: give a file path or an http(s) URL")
	}
	if _, err := ParseFormat(string(s.Format)); err != nil {
		return err
	}
	if s.IsURL() {
		u, err := url.Parse(s.Location)
		if err != nil || u.Host == "" {
			return fmt.Errorf("register source %q is not a usable URL", s.Location)
		}
		if strings.EqualFold(u.Scheme, "http") && !s.AllowHTTP {
			return fmt.Errorf("register source %s is plain http: the register decides who may get certificates, so fetch it over https or from a file (or allow plain http explicitly with --register-allow-http / --allow-http)", u.Redacted())
		}
	} else if strings.Contains(s.Location, "://") {
		return fmt.Errorf("register source %q: only http:// and https:// URLs, or file paths, are supported", s.Location)
	}
	return nil
}

// String names the source for messages, without any password in a URL.
func (s Source) String() string {
	if s.IsURL() {
		if u, err := url.Parse(s.Location); err == nil {
			return u.Redacted()
		}
	}
	return s.Location
}

func (s Source) maxBytes() int64 {
	if s.MaxBytes > 0 {
		return s.MaxBytes
	}
	return DefaultMaxBytes
}

// Load reads and parses the whole register.
func (s Source) Load(ctx context.Context) ([]Entry, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("thl: %w", err)
	}
	if !s.IsURL() {
		f, err := os.Open(s.Location)
		if err != nil {
			return nil, fmt.Errorf("thl: %w", err)
		}
		defer f.Close()
		b, err := readCapped(f, s.maxBytes(), s.maxBytes(), s.Location)
		if err != nil {
			return nil, err
		}
		return Parse(bytes.NewReader(b), s.Format)
	}
	return s.loadURL(ctx)
}

// loadURL fetches the URL and, for a paged JSON answer, its other pages.
func (s Source) loadURL(ctx context.Context) ([]Entry, error) {
	budget := s.maxBytes()
	first, err := s.fetch(ctx, s.Location, &budget)
	if err != nil {
		return nil, err
	}
	f := s.Format
	if f == FormatAuto {
		if f, err = sniff(bufio.NewReader(bytes.NewReader(first))); err != nil {
			return nil, err
		}
	}
	if f == FormatXML {
		return Parse(bytes.NewReader(first), FormatXML)
	}
	pages, err := decodeJSONPages(bytes.NewReader(first))
	if err != nil {
		return nil, err
	}
	if len(pages) == 1 && pages[0].Page != nil && pages[0].TotalPages != nil && *pages[0].TotalPages > 1 {
		p0, total := *pages[0].Page, *pages[0].TotalPages
		if total > maxPages {
			return nil, fmt.Errorf("thl: %s answers with %d pages; at most %d are read (ask for larger pages with pageSize)", s, total, maxPages)
		}
		for n := p0 + 1; n < p0+total; n++ {
			b, err := s.fetch(ctx, withPage(s.Location, n), &budget)
			if err != nil {
				return nil, err
			}
			more, err := decodeJSONPages(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%w (page %d)", err, n)
			}
			pages = append(pages, more...)
		}
	}
	return mergePages(pages)
}

// withPage sets the page query parameter of a URL.
func withPage(location string, page int) string {
	u, err := url.Parse(location)
	if err != nil {
		return location
	}
	q := u.Query()
	q.Set("page", strconv.Itoa(page))
	u.RawQuery = q.Encode()
	return u.String()
}

// fetch GETs one URL, reading at most *budget bytes and taking what it read off it.
func (s Source) fetch(ctx context.Context, location string, budget *int64) ([]byte, error) {
	shown := Source{Location: location}.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, fmt.Errorf("thl: GET %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/json, application/xml;q=0.9, text/xml;q=0.8")
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("thl: GET %s: %w", shown, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("thl: GET %s: the server answered %s", shown, resp.Status)
	}
	if resp.ContentLength > *budget {
		return nil, fmt.Errorf("thl: GET %s: the answer is %d bytes: the register export is larger than its cap of %d bytes", shown, resp.ContentLength, s.maxBytes())
	}
	b, err := readCapped(resp.Body, *budget, s.maxBytes(), shown)
	if err != nil {
		return nil, err
	}
	*budget -= int64(len(b))
	return b, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readCapped reads r whole, refusing more than limit bytes; capped is the whole
// export's cap, for the message.
func readCapped(r io.Reader, limit, capped int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("thl: reading %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("thl: %s: the register export is larger than its cap of %d bytes", what, capped)
	}
	return b, nil
}
