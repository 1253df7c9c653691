package console

// The health page, the filtered audit page and the form of a revocation.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/web"
)

// healthPage is the console's first page: the CA's health at a glance.
func (s *Server) healthPage(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
	h, err := s.svc.Health(r.Context(), c.who, s.CA)
	if err != nil {
		return err
	}
	data := struct {
		Health           *admin.HealthView
		Issued, Expiring chart
	}{h, newChart("issued-chart", "Certificates issued per day, last 30 days", h.Issued, h.IssuedTotal),
		newChart("expiring-chart", "Unrevoked certificates expiring per day, next 30 days", h.Expiring, h.ExpiringTotal)}
	return s.render(w, http.StatusOK, "health", page{Who: c.who, CSRF: c.csrf, Title: "Health of the CA", Data: data})
}

// auditPerPage is the audit page's default page size; limit= asks for another,
// up to admin.MaxAuditPage.
const auditPerPage = 100

// auditTimeLayouts are the times the audit filter reads, all in UTC unless they
// say otherwise.
var auditTimeLayouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", time.DateOnly}

func auditTime(field, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, l := range auditTimeLayouts {
		if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, refuse(admin.Malformed, "%s %q is not a time such as 2026-12-07T14:05 (UTC) or 2026-12-07T16:05:00+02:00", field, v)
}

// auditPage is the audit log, filtered by actor, action, organisation and time,
// one page at a time on the sequence number.
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, c *consoleRequest) error {
	q := r.URL.Query()
	after, limit, err := web.AuditPage(q)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = auditPerPage
	}
	aq := admin.AuditQuery{Actor: q.Get("actor"), Action: q.Get("action"), Org: q.Get("organisation"), After: after, Limit: limit}
	if aq.Since, err = auditTime("from", q.Get("since")); err != nil {
		return err
	}
	if aq.Until, err = auditTime("until", q.Get("until")); err != nil {
		return err
	}
	events, err := s.svc.SearchAudit(r.Context(), c.who, aq)
	if err != nil {
		return err
	}
	// The links keep the filters and move the keyset.
	link := func(after int64) string {
		v := url.Values{}
		for _, k := range []string{"actor", "action", "organisation", "since", "until", "limit"} {
			if x := strings.TrimSpace(q.Get(k)); x != "" {
				v.Set(k, x)
			}
		}
		if after > 0 {
			v.Set("after", strconv.FormatInt(after, 10))
		}
		if len(v) == 0 {
			return "/console/audit"
		}
		return "/console/audit?" + v.Encode()
	}
	data := struct {
		Query        admin.AuditQuery
		Since, Until string
		Limit        int
		MaxLimit     int
		After        int64
		Events       []admin.EventView
		First, Next  string
	}{Query: aq, Since: q.Get("since"), Until: q.Get("until"), Limit: limit, MaxLimit: admin.MaxAuditPage, After: after, Events: events, First: link(0)}
	if len(events) == limit {
		data.Next = link(events[len(events)-1].Seq)
	}
	return s.render(w, http.StatusOK, "audit", page{Who: c.who, CSRF: c.csrf, Title: "Audit log", Data: data})
}

// revokeInput reads a revocation form: the reason, who asked and how they were
// identified, when they asked, the invalidity date and a note.
func revokeInput(r *http.Request) (admin.RevokeInput, error) {
	in := admin.RevokeInput{Reason: r.PostFormValue("reason"), RequestedBy: r.PostFormValue("requested_by"),
		IdentifiedBy: r.PostFormValue("identified_by"), Note: r.PostFormValue("note"), Door: admin.DoorConsole}
	for _, f := range []struct {
		field, label string
		into         *time.Time
	}{{"requested_at", "requested at", &in.RequestedAt}, {"invalidity_date", "invalidity date", &in.InvalidityDate}} {
		v := strings.TrimSpace(r.PostFormValue(f.field))
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return in, refuse(admin.Malformed, "%s %q is not an RFC 3339 time such as 2026-01-31T14:05:00+02:00", f.label, v)
		}
		*f.into = t
	}
	return in, nil
}
