package thl

import (
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// TestRecordRefusal: the stored register data of an import allows an organisation
// only while the import lists it as active; one no import listed is allowed in
// development and refused in production.
func TestRecordRefusal(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	synced := now.Add(-48 * time.Hour)
	tests := []struct {
		name       string
		r          store.OrganisationRegister
		production bool
		want       string // "" allowed, else a part of the reason
	}{
		{"never imported: added by an operator", store.OrganisationRegister{}, false, ""},
		{"never imported, in production", store.OrganisationRegister{}, true, "is not listed in THL's SOTE organisation register"},
		{"listed and active, in production", store.OrganisationRegister{SyncedAt: synced, Status: "active"}, true, ""},
		{"left the register, in production", store.OrganisationRegister{SyncedAt: synced, Status: "active", LeftAt: synced}, true,
			"is no longer in THL's SOTE organisation register"},
		{"listed and active", store.OrganisationRegister{SyncedAt: synced, Status: "active"}, false, ""},
		{"listed, active, within its dates", store.OrganisationRegister{SyncedAt: synced, Status: "active",
			BeginDate: now.AddDate(-1, 0, 0), ExpirationDate: now.AddDate(1, 0, 0)}, false, ""},
		{"a status in capitals reads the same", store.OrganisationRegister{SyncedAt: synced, Status: "ACTIVE"}, false, ""},
		{"left the register", store.OrganisationRegister{SyncedAt: synced, Status: "active", LeftAt: synced}, false,
			"is no longer in THL's SOTE organisation register (since the import of 2026-02-27)"},
		{"passive", store.OrganisationRegister{SyncedAt: synced, Status: "passive"}, false, "is passive according to THL's SOTE organisation register (imported 2026-02-27)"},
		{"ended", store.OrganisationRegister{SyncedAt: synced, Status: "active", ExpirationDate: time.Date(2020, 12, 31, 23, 59, 59, 0, time.UTC)}, false,
			"ended on 2020-12-31"},
		{"not begun", store.OrganisationRegister{SyncedAt: synced, Status: "active", BeginDate: now.AddDate(0, 1, 0)}, false, "begins on 2026-04-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RecordRefusal(tt.r, now, tt.production)
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("RecordRefusal = %q, want %q", got, tt.want)
			}
		})
	}
}
