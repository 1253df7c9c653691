package thl

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func date(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

// sample is what testdata/register.{json,xml} hold.
var sample = []Entry{
	{OID: "1.2.246.10.12345678.10.0", LongName: "Helsingin VI apteekki", Abbreviation: "HKI VI apt", Status: StatusActive,
		BeginDate: date(2009, 5, 4, 0, 0, 0), ExpirationDate: date(2100, 12, 31, 23, 59, 59),
		BusinessID: "1234567-8", Sector: SectorPrivate, SectorCode: "2 Yksityinen"},
	{OID: "1.2.246.10.23456789.10.0", LongName: "Esimerkin sairaanhoitopiirin kuntayhtymä", Abbreviation: "ESHP", Status: StatusActive,
		BeginDate: date(1990, 12, 31, 22, 0, 0), BusinessID: "2345678-9", Sector: SectorPublic, SectorCode: "1 Julkinen"},
	{OID: "1.2.246.10.23456789.10.1001", LongName: "Kirurgian poliklinikka, Esimerkin keskussairaala", Abbreviation: "KIR POL EKS",
		Status: StatusActive, BeginDate: date(2012, 9, 1, 0, 0, 0), ExpirationDate: date(2100, 12, 31, 23, 59, 59).Add(time.Second - time.Nanosecond),
		BusinessID: "2345678-9", Sector: SectorPublic, SectorCode: "1 Julkinen", Parent: "1.2.246.10.23456789.10.0"},
	{OID: "1.2.246.10.34567890.10.0", LongName: "Kanta-välityspalvelu Oy", Abbreviation: "KVP", Status: StatusActive,
		BeginDate: date(2015, 1, 1, 0, 0, 0), ExpirationDate: date(2100, 12, 31, 23, 59, 59),
		BusinessID: "3456789-0", Sector: SectorPrivate, SectorCode: "2 Yksityinen", Intermediary: true},
	{OID: "1.2.246.10.45678901.10.0", LongName: "Lakannut Lääkäriasema Oy", Status: StatusActive,
		BeginDate: date(2001, 3, 1, 0, 0, 0), ExpirationDate: date(2020, 12, 31, 23, 59, 59),
		BusinessID: "4567890-1", Sector: SectorPrivate, SectorCode: "2 Yksityinen"},
	{OID: "1.2.246.10.56789012.10.0", LongName: "Passiivinen Hoivakoti Oy", Status: StatusPassive,
		BeginDate: date(2010, 1, 1, 0, 0, 0), ExpirationDate: date(2100, 12, 31, 23, 59, 59),
		BusinessID: "5678901-2", Sector: SectorPrivate, SectorCode: "3 Yksityinen itseilmoitettu yksikkö"},
	{OID: "1.2.246.10.67890123.10.0", LongName: "Tuleva Terveys Oy", Status: StatusActive,
		BeginDate: date(2099, 1, 1, 0, 0, 0), ExpirationDate: date(2100, 12, 31, 23, 59, 59),
		BusinessID: "6789012-3", Sector: SectorPrivate, SectorCode: "2 Yksityinen"},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestParseSample(t *testing.T) {
	p1, p2 := readTestdata(t, "register-p1.json"), readTestdata(t, "register-p2.json")
	tests := []struct {
		name   string
		input  []byte
		format Format
	}{
		{"two JSON pages in one file", readTestdata(t, "register.json"), FormatJSON},
		{"two JSON pages, the later one first", append(append([]byte{}, p2...), p1...), FormatJSON},
		{"JSON pages as one array", []byte("[" + string(p1) + "," + string(p2) + "]"), FormatJSON},
		{"JSON pages told apart from XML by their first character", readTestdata(t, "register.json"), FormatAuto},
		{"XML export", readTestdata(t, "register.xml"), FormatXML},
		{"XML export told apart by its first character", readTestdata(t, "register.xml"), FormatAuto},
		{"XML export after a byte order mark", append([]byte("\uFEFF"), readTestdata(t, "register.xml")...), FormatAuto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(tt.input), tt.format)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantEntries(t, got, sample)
		})
	}
}

// page builds a one-page JSON answer around concept code objects.
func page(n, total, items int, concepts ...string) string {
	head := `{"conceptCodes":[` + strings.Join(concepts, ",") + `]`
	if n > 0 {
		head += `,"page":` + itoa(n) + `,"totalPages":` + itoa(total)
	}
	if items >= 0 {
		head += `,"totalItems":` + itoa(items)
	}
	return head + "}"
}

func itoa(n int) string { return strconv.Itoa(n) }

// concept is a JSON concept code of an active organisation with the given OID and
// extra attributes/fields.
func concept(oid string, extra ...string) string {
	attrs := `{"attributeName":"LongName","attributeValue":["Org ` + oid + `"]}`
	fields := `"conceptCodeId":"` + oid + `","status":"ACTIVE"`
	for _, e := range extra {
		if strings.HasPrefix(e, `{`) {
			attrs += "," + e
		} else {
			fields += "," + e
		}
	}
	return `{` + fields + `,"attributes":[` + attrs + `]}`
}

const (
	oidA = "1.2.246.10.1111111.10.0"
	oidB = "1.2.246.10.2222222.10.0"
)

func TestParseRefuses(t *testing.T) {
	xmlEntry := func(body string) string {
		return `<?xml version="1.0" encoding="UTF-8"?><arb:result xmlns:arb="urn::codeservice"><arb:document><body>` +
			`<termsystem id="1.2.246.537.6.202.2008">` + body + `</termsystem></body></arb:document></arb:result>`
	}
	tests := []struct {
		name   string
		input  string
		format Format
		wants  []string
	}{
		{"an empty file", "", FormatAuto, []string{"export is empty"}},
		{"white space only", " \n\t", FormatAuto, []string{"export is empty"}},
		{"plain text", "Service Unavailable", FormatAuto, []string{"neither JSON nor XML"}},
		{"text before the XML root", "0" + xmlEntry(""), FormatXML, []string{"text outside its XML root"}},
		{"text after the XML root", xmlEntry("") + "junk", FormatXML, []string{"text outside its XML root"}},
		{"an empty JSON file", "", FormatJSON, []string{"holds no JSON page"}},
		{"a JSON object that is not a conceptcodes answer", `{"error":"not found"}`, FormatJSON, []string{"no conceptCodes list", "conceptcodes answer"}},
		{"a JSON number", `5`, FormatJSON, []string{"not a page object"}},
		{"a member twice, which parsers read differently", `{"conceptCodes":[],"conceptCodes":[]}`, FormatJSON, []string{`duplicate member "conceptCodes"`}},
		{"truncated JSON", `{"conceptCodes":[` + concept(oidA), FormatJSON, []string{"JSON document 1"}},
		{"an empty page", page(1, 1, 0), FormatJSON, []string{"lists no organisations"}},
		{"page 1 of 2 only", page(1, 2, -1, concept(oidA)), FormatJSON, []string{"incomplete", "1 of 2", "page 2"}},
		{"page 2 of 2 only", page(2, 2, -1, concept(oidA)), FormatJSON, []string{"incomplete", "page 1"}},
		{"the same page twice", page(1, 2, -1, concept(oidA)) + page(1, 2, -1, concept(oidB)), FormatJSON, []string{"page 1 appears twice"}},
		{"pages of two answers", page(1, 2, -1, concept(oidA)) + page(2, 3, -1, concept(oidB)), FormatJSON, []string{"disagree on totalPages"}},
		{"a page beyond totalPages", page(1, 2, -1, concept(oidA)) + page(3, 2, -1, concept(oidB)), FormatJSON, []string{"outside"}},
		{"more pages than totalPages", page(1, 1, -1, concept(oidA)) + page(2, 1, -1, concept(oidB)), FormatJSON, []string{"has 2 JSON pages but says it has 1"}},
		{"numbered and unnumbered pages", page(1, 2, -1, concept(oidA)) + page(0, 0, -1, concept(oidB)), FormatJSON, []string{"some do not"}},
		{"fewer concept codes than totalItems", page(1, 1, 3, concept(oidA), concept(oidB)), FormatJSON, []string{"holds 3 concept codes but has 2"}},
		{"pages disagreeing on totalItems", page(1, 2, 2, concept(oidA)) + page(2, 2, 3, concept(oidB)), FormatJSON, []string{"disagree on totalItems"}},
		{"an OID on two pages", page(1, 2, -1, concept(oidA)) + page(2, 2, -1, concept(oidA)), FormatJSON, []string{oidA, "appears twice", "page 1", "page 2"}},
		{"a record without an OID", page(1, 1, -1, concept("")), FormatJSON, []string{"concept code 1", "has no OID"}},
		{"a record whose OID is not one", page(1, 1, -1, concept("1.2.x")), FormatJSON, []string{`"1.2.x" is not an OID`}},
		{"an expiration date that is not one", page(1, 1, -1, concept(oidA, `"expirationDate":"31.12.2100"`)), FormatJSON, []string{oidA, "expirationDate", `"31.12.2100" is not a date`}},
		{"a begin date that is an object", page(1, 1, -1, concept(oidA, `"beginDate":{}`)), FormatJSON, []string{oidA, "beginDate"}},
		{"an attribute value that is an object", page(1, 1, -1, concept(oidA, `{"attributeName":"Sektori","attributeValue":{"x":1}}`)), FormatJSON, []string{"neither a string nor a list"}},
		{"an active record without a long name", page(1, 1, -1, `{"conceptCodeId":"`+oidA+`","status":"ACTIVE","attributes":[]}`), FormatJSON, []string{oidA, "no LongName"}},
		{"an intermediary flag that is neither T nor F", page(1, 1, -1, concept(oidA, `{"attributeName":"Kanta-välittäjä","attributeValue":["maybe"]}`)), FormatJSON, []string{oidA, "Kanta-välittäjä", `"maybe"`, "want T or F"}},
		{"a parent that is not an OID", page(1, 1, -1, concept(oidA, `{"attributeName":"ParentId","attributeValue":["HUS"]}`)), FormatJSON, []string{oidA, "ParentId", `"HUS" is not an OID`}},
		{"XML that is not well formed", xmlEntry(`<termitementry id="` + oidA + `">`), FormatXML, []string{"XML export"}},
		{"XML of another classification", strings.Replace(xmlEntry(""), "1.2.246.537.6.202.2008", "1.2.246.537.6.21.2003", 1), FormatXML, []string{`"1.2.246.537.6.21.2003"`, "not the SOTE organisation register"}},
		{"XML without records", xmlEntry(""), FormatXML, []string{"lists no organisations"}},
		{"an XML record without an id", xmlEntry(`<termitementry><attribute type="longname">X</attribute></termitementry>`), FormatXML, []string{"termitementry 1", "has no OID"}},
		{"an XML record with a bad date", xmlEntry(`<termitementry id="` + oidA + `" begindate="yesterday"><attribute type="status">1</attribute><attribute type="longname">X</attribute></termitementry>`), FormatXML, []string{oidA, "begindate", `"yesterday" is not a date`}},
		{"an XML record listed twice", xmlEntry(`<termitementry id="` + oidA + `"><attribute type="longname">X</attribute></termitementry><termitementry id="` + oidA + `"><attribute type="longname">X</attribute></termitementry>`), FormatXML, []string{oidA, "appears twice", "termitementry 1", "termitementry 2"}},
		{"XML in another encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, FormatXML, []string{"XML export", "ISO-8859-1"}},
		{"an unknown format", page(1, 1, -1, concept(oidA)), Format("csv"), []string{`"csv"`, "not json or xml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input), tt.format)
			if err == nil {
				t.Fatalf("Parse succeeded with %d entries, want an error", len(got))
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tt.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(e Entry) bool
		want  string
	}{
		{"unix milliseconds as a date", page(0, 0, -1, concept(oidA, `"expirationDate":4102444799000`)),
			func(e Entry) bool { return e.ExpirationDate.Equal(date(2099, 12, 31, 23, 59, 59)) }, "expiration 2099-12-31T23:59:59Z"},
		{"a bare expiration date runs to the end of the day", page(0, 0, -1, concept(oidA, `"expirationDate":"2030-06-30"`)),
			func(e Entry) bool {
				return e.ActiveAt(date(2030, 6, 30, 23, 59, 59)) && !e.ActiveAt(date(2030, 7, 1, 0, 0, 0))
			}, "active through 2030-06-30"},
		{"a time with an offset is converted to UTC", page(0, 0, -1, concept(oidA, `"beginDate":"2030-01-01T00:00:00+02:00"`)),
			func(e Entry) bool { return e.BeginDate.Equal(date(2029, 12, 31, 22, 0, 0)) }, "begin 2029-12-31T22:00Z"},
		{"a single string as attributeValue", page(0, 0, -1, concept(oidA, `{"attributeName":"Y-Tunnus","attributeValue":"1111111-1"}`)),
			func(e Entry) bool { return e.BusinessID == "1111111-1" }, "business id 1111111-1"},
		{"attribute names in another case", page(0, 0, -1, concept(oidA, `{"attributeName":"sektori","attributeValue":["1 julkinen"]}`)),
			func(e Entry) bool { return e.Sector == SectorPublic }, "public sector"},
		{"an unknown sector", page(0, 0, -1, concept(oidA, `{"attributeName":"Sektori","attributeValue":["9 muu"]}`)),
			func(e Entry) bool { return e.Sector == SectorUnknown && e.SectorCode == "9 muu" }, "unknown sector, code kept"},
		{"a deleted record", page(0, 0, -1, `{"conceptCodeId":"`+oidA+`","status":"DELETED","attributes":[]}`),
			func(e Entry) bool { return e.Status == StatusDeleted && !e.ActiveAt(date(2026, 1, 1, 0, 0, 0)) }, "deleted, not active"},
		{"a record without a status is not active", page(0, 0, -1, `{"conceptCodeId":"`+oidA+`","attributes":[]}`),
			func(e Entry) bool { return !e.ActiveAt(date(2026, 1, 1, 0, 0, 0)) }, "not active"},
		{"unknown fields are ignored", page(0, 0, -1, concept(oidA, `"conceptCodeName":"x"`, `"classificationId":"y"`)),
			func(e Entry) bool { return e.OID == oidA }, "the record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input), FormatJSON)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != 1 || !tt.check(got[0]) {
				t.Errorf("got %+v, want %s", got, tt.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in   string
		want Format
		ok   bool
	}{
		{"json", FormatJSON, true}, {"XML", FormatXML, true}, {"", FormatAuto, true}, {"csv", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseFormat(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}
