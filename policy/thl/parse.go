package thl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/strictjson"
)

// Format is the shape of a register export.
type Format string

// Export formats. FormatAuto tells them apart by the first character: '<' is XML,
// '{' or '[' JSON.
const (
	FormatAuto Format = ""
	FormatJSON Format = "json"
	FormatXML  Format = "xml"
)

// ParseFormat reads a --format value: json, xml, or empty (auto).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatAuto, FormatJSON, FormatXML:
		return f, nil
	}
	return "", fmt.Errorf("format %q is not json or xml", s)
}

// maxEntries bounds one export; the real register has some 100 000 records.
const maxEntries = 2_000_000

var oidPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+$`)

// IsOID says whether s looks like an organisation's code in THL's register: dotted
// decimal arcs, at least two of them.
func IsOID(s string) bool { return oidPattern.MatchString(s) }

const maxOIDLength = 128

// Parse reads a register export: the code service's JSON answer (one or more pages of
// concept codes, as separate documents or one array; page numbers, when given, must
// cover every page once) or its XML export. It refuses an export that is malformed,
// incomplete, holds the same OID twice or lists nobody: a partial register would
// look as if organisations had left it. Entries come back sorted by OID.
func Parse(r io.Reader, f Format) ([]Entry, error) {
	br := bufio.NewReader(r)
	if f == FormatAuto {
		var err error
		if f, err = sniff(br); err != nil {
			return nil, err
		}
	}
	switch f {
	case FormatJSON:
		pages, err := decodeJSONPages(br)
		if err != nil {
			return nil, err
		}
		return mergePages(pages)
	case FormatXML:
		return parseXML(br)
	}
	return nil, fmt.Errorf("thl: format %q is not json or xml", f)
}

// sniff looks at the first character that is not white space or a byte order mark.
func sniff(br *bufio.Reader) (Format, error) {
	for {
		r, _, err := br.ReadRune()
		if err == io.EOF {
			return "", errors.New("thl: the register export is empty")
		}
		if err != nil {
			return "", fmt.Errorf("thl: reading the register export: %w", err)
		}
		switch r {
		case ' ', '\t', '\r', '\n', '\uFEFF':
			continue
		case '<':
			return FormatXML, br.UnreadRune()
		case '{', '[':
			return FormatJSON, br.UnreadRune()
		}
		return "", fmt.Errorf("thl: the register export starts with %q: it is neither JSON nor XML", r)
	}
}

// The code service's JSON answer: GET …/classifications/{id}/conceptcodes?page=N.
type jsonPage struct {
	ConceptCodes *[]jsonConcept `json:"conceptCodes"`
	Page         *int           `json:"page"`
	TotalPages   *int           `json:"totalPages"`
	TotalItems   *int           `json:"totalItems"`
}

type jsonConcept struct {
	ConceptCodeID  string          `json:"conceptCodeId"`
	Status         string          `json:"status"`
	BeginDate      json.RawMessage `json:"beginDate"`
	ExpirationDate json.RawMessage `json:"expirationDate"`
	Attributes     []jsonAttribute `json:"attributes"`
}

type jsonAttribute struct {
	Name  string     `json:"attributeName"`
	Value jsonValues `json:"attributeValue"`
}

// jsonValues is an attribute's values: a list of strings, as the API sends, or one.
type jsonValues []string

func (v *jsonValues) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*v = jsonValues{one}
		return nil
	}
	var many []*string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("attributeValue is neither a string nor a list of strings")
	}
	*v = (*v)[:0]
	for _, s := range many {
		if s != nil {
			*v = append(*v, *s)
		}
	}
	return nil
}

// decodeJSONPages reads every top-level JSON value: a page object, or an array of them.
func decodeJSONPages(r io.Reader) ([]jsonPage, error) {
	dec := json.NewDecoder(r)
	var pages []jsonPage
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("thl: JSON document %d of the export: %w", doc, err)
		}
		raw = bytes.TrimSpace(raw)
		if err := strictjson.Check(raw); err != nil {
			return nil, fmt.Errorf("thl: JSON document %d of the export %w", doc, err)
		}
		var objs []json.RawMessage
		switch {
		case len(raw) > 0 && raw[0] == '[':
			if err := json.Unmarshal(raw, &objs); err != nil {
				return nil, fmt.Errorf("thl: JSON document %d of the export: %w", doc, err)
			}
		case len(raw) > 0 && raw[0] == '{':
			objs = []json.RawMessage{raw}
		default:
			return nil, fmt.Errorf("thl: JSON document %d of the export is not a page object or a list of them", doc)
		}
		for _, obj := range objs {
			var p jsonPage
			if err := json.Unmarshal(obj, &p); err != nil {
				return nil, fmt.Errorf("thl: JSON page %d of the export: %w", len(pages)+1, err)
			}
			if p.ConceptCodes == nil {
				return nil, fmt.Errorf("thl: JSON page %d of the export has no conceptCodes list; is it the code service's conceptcodes answer?", len(pages)+1)
			}
			pages = append(pages, p)
		}
	}
	if len(pages) == 0 {
		return nil, errors.New("thl: the register export holds no JSON page")
	}
	return pages, nil
}

// checkPages refuses a set of numbered pages that is not exactly one complete answer.
func checkPages(pages []jsonPage) error {
	numbered := 0
	for _, p := range pages {
		if p.Page != nil && p.TotalPages != nil {
			numbered++
		}
	}
	if numbered == 0 {
		return nil
	}
	if numbered != len(pages) {
		return errors.New("thl: some JSON pages of the export carry page and totalPages and some do not")
	}
	total := *pages[0].TotalPages
	first := *pages[0].Page
	seen := map[int]bool{}
	for _, p := range pages {
		if *p.TotalPages != total {
			return fmt.Errorf("thl: the JSON pages disagree on totalPages (%d and %d): they are not one answer", total, *p.TotalPages)
		}
		if seen[*p.Page] {
			return fmt.Errorf("thl: JSON page %d appears twice in the export", *p.Page)
		}
		seen[*p.Page] = true
		first = min(first, *p.Page)
	}
	if first != 0 && first != 1 {
		first = 1 // pages are numbered from 1 (some API versions from 0)
	}
	if len(seen) != total {
		// Name a few missing pages; the loop ends early, however large total is.
		var missing []string
		for n := first; n < first+total && len(missing) < 5; n++ {
			if !seen[n] {
				missing = append(missing, strconv.Itoa(n))
			}
		}
		if len(missing) == 0 {
			return fmt.Errorf("thl: the export has %d JSON pages but says it has %d", len(seen), total)
		}
		return fmt.Errorf("thl: the register export is incomplete: it has %d of %d JSON pages (missing: page %s)", len(seen), total, strings.Join(missing, ", "))
	}
	for n := range seen {
		if n < first || n >= first+total {
			return fmt.Errorf("thl: JSON page %d is outside the export's %d pages", n, total)
		}
	}
	if items := pages[0].TotalItems; items != nil {
		n := 0
		for _, p := range pages {
			if p.TotalItems == nil || *p.TotalItems != *items {
				return errors.New("thl: the JSON pages disagree on totalItems: they are not one answer")
			}
			n += len(*p.ConceptCodes)
		}
		if n != *items {
			return fmt.Errorf("thl: the register export says it holds %d concept codes but has %d", *items, n)
		}
	}
	return nil
}

// mergePages turns complete pages into entries.
func mergePages(pages []jsonPage) ([]Entry, error) {
	if err := checkPages(pages); err != nil {
		return nil, err
	}
	m := merger{where: map[string]string{}}
	for i, p := range pages {
		pageName := strconv.Itoa(i + 1)
		if p.Page != nil {
			pageName = strconv.Itoa(*p.Page)
		}
		for j, c := range *p.ConceptCodes {
			where := fmt.Sprintf("JSON page %s, concept code %d", pageName, j+1)
			begin, err := jsonDate(c.BeginDate, false)
			if err != nil {
				return nil, fmt.Errorf("thl: %s (%s): beginDate %w", where, c.ConceptCodeID, err)
			}
			end, err := jsonDate(c.ExpirationDate, true)
			if err != nil {
				return nil, fmt.Errorf("thl: %s (%s): expirationDate %w", where, c.ConceptCodeID, err)
			}
			attrs := make([]attribute, 0, len(c.Attributes))
			for _, a := range c.Attributes {
				for _, v := range a.Value {
					attrs = append(attrs, attribute{name: a.Name, value: v})
				}
			}
			if err := m.add(where, c.ConceptCodeID, c.Status, begin, end, attrs); err != nil {
				return nil, err
			}
		}
	}
	return m.result()
}

// jsonDate reads a date the JSON answer gives as a string or as unix milliseconds.
func jsonDate(raw json.RawMessage, endOfDay bool) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		return parseDate(s, endOfDay)
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || ms < -62135596800000 || ms > 253402300799999 {
		return time.Time{}, fmt.Errorf("%s is neither a date string nor unix milliseconds", clip(string(raw)))
	}
	return time.UnixMilli(ms).UTC(), nil
}

var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

// parseDate reads the export's dates. A bare date is the whole day: an expiration
// date runs to its last instant.
func parseDate(s string, endOfDay bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if endOfDay {
			t = t.Add(24*time.Hour - time.Nanosecond)
		}
		return t, nil
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (want 2006-01-02 or 2006-01-02T15:04:05)", clip(s))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// The code service's XML export: <termsystem id="…"> holding <termitementry> records,
// each with begindate and expirationdate and <attribute type="…"> children.
type xmlEntry struct {
	ID             string         `xml:"id,attr"`
	BeginDate      string         `xml:"begindate,attr"`
	ExpirationDate string         `xml:"expirationdate,attr"`
	Attributes     []xmlAttribute `xml:"attribute"`
}

type xmlAttribute struct {
	Type     string `xml:"type,attr"`
	Language string `xml:"language,attr"`
	Value    string `xml:",chardata"`
}

func parseXML(r io.Reader) ([]Entry, error) {
	dec := xml.NewDecoder(r)
	m := merger{where: map[string]string{}}
	n, elements, depth := 0, 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("thl: XML export: %w", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			depth--
			continue
		case xml.CharData:
			// Text outside the root element is not XML, whatever Go's lenient
			// decoder makes of it; telling the format by its first character
			// (FormatAuto) refuses it too, so both read one export alike.
			if depth == 0 && len(bytes.Trim(t, " \t\r\n\uFEFF")) > 0 {
				return nil, errors.New("thl: the register export has text outside its XML root element; is it XML?")
			}
			continue
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		elements++
		depth++
		switch se.Name.Local {
		case "termsystem":
			for _, a := range se.Attr {
				if a.Name.Local == "id" && a.Value != Classification {
					return nil, fmt.Errorf("thl: the XML export is of classification %q, not the SOTE organisation register %s", clip(a.Value), Classification)
				}
			}
		case "termitementry":
			n++
			var x xmlEntry
			if err := dec.DecodeElement(&x, &se); err != nil {
				return nil, fmt.Errorf("thl: XML export, termitementry %d: %w", n, err)
			}
			depth-- // DecodeElement read its end element
			where := fmt.Sprintf("XML termitementry %d", n)
			begin, err := parseDate(x.BeginDate, false)
			if err != nil {
				return nil, fmt.Errorf("thl: %s (%s): begindate %w", where, x.ID, err)
			}
			end, err := parseDate(x.ExpirationDate, true)
			if err != nil {
				return nil, fmt.Errorf("thl: %s (%s): expirationdate %w", where, x.ID, err)
			}
			attrs := make([]attribute, len(x.Attributes))
			for i, a := range x.Attributes {
				attrs[i] = attribute{name: a.Type, lang: a.Language, value: a.Value}
			}
			if err := m.add(where, x.ID, "", begin, end, attrs); err != nil {
				return nil, err
			}
		}
	}
	if elements == 0 {
		return nil, errors.New("thl: the register export holds no XML elements; is it XML?")
	}
	return m.result()
}

type attribute struct{ name, lang, value string }

// pick is the attribute's value: the first non-empty one in Finnish or without a
// language, else the first non-empty one.
func pick(attrs []attribute, name string) string {
	var other string
	for _, a := range attrs {
		v := strings.TrimSpace(a.value)
		if v == "" || !strings.EqualFold(a.name, name) {
			continue
		}
		if a.lang == "" || strings.EqualFold(a.lang, "fi") {
			return v
		}
		if other == "" {
			other = v
		}
	}
	return other
}

// merger collects entries and refuses duplicates.
type merger struct {
	entries []Entry
	where   map[string]string // OID → where it was first seen
}

func (m *merger) add(where, id, status string, begin, end time.Time, attrs []attribute) error {
	oid := strings.TrimSpace(id)
	switch {
	case oid == "":
		return fmt.Errorf("thl: %s has no OID", where)
	case len(oid) > maxOIDLength || !oidPattern.MatchString(oid):
		return fmt.Errorf("thl: %s: %q is not an OID", where, clip(oid))
	}
	if first, dup := m.where[oid]; dup {
		return fmt.Errorf("thl: %s appears twice in the register export (%s and %s)", oid, first, where)
	}
	if len(m.entries) >= maxEntries {
		return fmt.Errorf("thl: the register export holds more than %d records", maxEntries)
	}
	if status == "" {
		status = pick(attrs, AttrStatus)
	}
	e := Entry{
		OID:            oid,
		LongName:       pick(attrs, AttrLongName),
		Abbreviation:   pick(attrs, AttrAbbreviation),
		Status:         normalStatus(status),
		BeginDate:      begin,
		ExpirationDate: end,
		BusinessID:     pick(attrs, AttrBusinessID),
		SectorCode:     pick(attrs, AttrSector),
		Parent:         pick(attrs, AttrParent),
	}
	e.Sector = normalSector(e.SectorCode)
	if e.Parent != "" && (len(e.Parent) > maxOIDLength || !oidPattern.MatchString(e.Parent)) {
		return fmt.Errorf("thl: %s (%s): %s %q is not an OID", where, oid, AttrParent, clip(e.Parent))
	}
	v := pick(attrs, AttrIntermediary)
	var ok bool
	if e.Intermediary, ok = flag(v); !ok {
		return fmt.Errorf("thl: %s (%s): %s is %q; want T or F", where, oid, AttrIntermediary, clip(v))
	}
	if e.Status == StatusActive && e.LongName == "" {
		return fmt.Errorf("thl: %s (%s) is active but has no %s, which certificates need", where, oid, AttrLongName)
	}
	m.where[oid] = where
	m.entries = append(m.entries, e)
	return nil
}

func (m *merger) result() ([]Entry, error) {
	if len(m.entries) == 0 {
		return nil, errors.New("thl: the register export lists no organisations")
	}
	out := slices.Clone(m.entries)
	sort.Slice(out, func(i, j int) bool { return out[i].OID < out[j].OID })
	return out, nil
}
