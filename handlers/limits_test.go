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

// The largest things a policy and its users can produce must still be accepted by Slack.
func TestLargestSurfacesFitSlackLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // multi-byte, counted in characters
	role := app.Role{Name: strings.Repeat("r", 64), Description: long(5000), ApprovalsRequired: app.MaxApprovalsRequired,
		DefaultDuration: time.Hour, MaxDuration: app.MaxGrantDuration, RequestTTL: time.Hour}
	r := app.Request{ID: "req_aaaaaaaaaaaaaaaa", Requester: app.User("U0ALICE"), Role: role.Name, Duration: 90 * time.Minute,
		Reason: strings.Repeat("<!channel> & ", app.MaxTextLength/13), Status: app.StatusPending, ApprovalsRequired: role.ApprovalsRequired,
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	for i := range app.MaxApprovalsRequired - 1 {
		r.Decisions = append(r.Decisions, app.Decision{Approver: fmt.Sprintf("U%04d", i), Approve: true, Comment: long(app.MaxTextLength)})
	}
	denied := r
	denied.Status = app.StatusDenied
	denied.Decisions = append(denied.Decisions, app.Decision{Approver: "U0BOB", Comment: long(app.MaxTextLength)})
	approved := r
	approved.Status, approved.GrantID, approved.DecidedAt = app.StatusApproved, "grt_aaaaaaaaaaaaaaaa", time.Now()

	for name, req := range map[string]app.Request{"pending": r, "denied": denied, "approved": approved} {
		t.Run("approval message "+name, func(t *testing.T) {
			text, blocks := approvalMessage(req, role, nil)
			raw, _ := json.Marshal(blocks)
			if vs := slackfake.ValidateMessage(text, raw); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
		})
		t.Run("DM "+name, func(t *testing.T) {
			if vs := slackfake.ValidateMessage(requesterMessage(req, nil), nil); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
		})
	}
	t.Run("decision modals", func(t *testing.T) {
		for _, approve := range []bool{true, false} {
			raw, _ := json.Marshal(decisionModal(r, approve))
			if vs := slackfake.ValidateView(raw); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
		}
	})
	t.Run("request form with every role", func(t *testing.T) {
		policy := app.Policy{ApprovalsChannel: "C0APPROVALS"}
		for i := range app.MaxRoles {
			rr := role
			rr.Name = fmt.Sprintf("%s%02d", strings.Repeat("r", 62), i)
			rr.MaxDuration = time.Duration(i+1) * 17 * time.Minute
			rr.DefaultDuration = rr.MaxDuration
			policy.Roles = append(policy.Roles, rr)
		}
		for _, in := range []app.RequestInput{{}, {Role: policy.Roles[99].Name, Duration: "1h7m", Reason: long(5000)}} {
			raw, _ := json.Marshal(requestModal(policy, in))
			if vs := slackfake.ValidateView(raw); len(vs) > 0 {
				t.Errorf("Slack would reject it: %v", vs)
			}
		}
	})
	t.Run("help and errors", func(t *testing.T) {
		if vs := slackfake.ValidateMessage(clipText(helpText, maxMessageText), nil); len(vs) > 0 {
			t.Errorf("help: %v", vs)
		}
	})
}
