package handlers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// The largest break-glass notice and DM a policy and its users can produce must still be
// accepted by Slack, in every state of the grant and its review.
func TestBreakGlassSurfacesFitSlackLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	role := app.Role{Name: strings.Repeat("r", 64), Description: long(5000), DefaultDuration: time.Hour, MaxDuration: app.MaxGrantDuration,
		BreakGlass: true, BreakGlassUsers: []string{"U0ONCALL"}}
	for i := range 300 {
		role.Approvers = append(role.Approvers, fmt.Sprintf("S%04d", i))
	}
	now := time.Now()
	r := app.Request{ID: "req_aaaaaaaaaaaaaaaa", Requester: app.User("U0ONCALL"), Role: role.Name, Duration: app.MaxGrantDuration,
		Reason: strings.Repeat("<!channel> & ", app.MaxTextLength/13), Status: app.StatusApproved, CreatedAt: now, ExpiresAt: now,
		DecidedAt: now, GrantID: "grt_aaaaaaaaaaaaaaaa"}
	active := app.Grant{ID: r.GrantID, RequestID: r.ID, Principal: r.Requester, Role: r.Role, ApprovedBy: []string{}, CreatedAt: now,
		ExpiresAt: now.Add(r.Duration), Status: app.GrantActive, BreakGlass: true, NeedsReview: true}
	reviewed := active
	reviewed.NeedsReview, reviewed.ReviewedBy, reviewed.ReviewedAt = false, "U0BOB", now
	revoked := active
	revoked.Status, revoked.EndedBy, revoked.EndReason = app.GrantRevoked, "U0BOB", long(app.MaxTextLength)

	for name, g := range map[string]app.Grant{"needing review": active, "reviewed": reviewed, "revoked": revoked} {
		t.Run("notice "+name, func(t *testing.T) {
			text, blocks := approvalMessage(r, role, &g)
			raw, _ := json.Marshal(blocks)
			if vs := slackfake.ValidateMessage(text, raw); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
			if hasButton := strings.Contains(string(raw), `"action_id":"review"`); hasButton != g.NeedsReview {
				t.Errorf("Reviewed button shown: %v, needs review: %v", hasButton, g.NeedsReview)
			}
		})
		t.Run("DM "+name, func(t *testing.T) {
			if vs := slackfake.ValidateMessage(requesterMessage(r, &g), nil); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
		})
	}
}
