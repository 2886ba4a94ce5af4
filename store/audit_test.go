package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

var auditT0 = time.Date(2026, 11, 30, 9, 0, 0, 123456789, time.UTC)

// appendAuditEvents records n events about one request, a minute apart from auditT0.
func appendAuditEvents(t *testing.T, s *Store, n int) {
	t.Helper()
	events := make([]app.AuditEvent, n)
	for i := range events {
		events[i] = app.AuditEvent{At: auditT0.Add(time.Duration(i) * time.Minute), Actor: "U0BOB", Action: app.ActionDecisionApprove,
			Principal: app.User("U0ALICE"), RequestID: "req_a", Reason: fmt.Sprintf("reason %d", i+1), Source: app.SourceSlack}
	}
	if err := s.db.Transaction(func(tx *gorm.DB) error { return appendEvents(tx, events) }); err != nil {
		t.Fatal(err)
	}
}

func exportAll(t *testing.T, s *Store, since time.Time) []app.AuditEvent {
	t.Helper()
	var events []app.AuditEvent
	err := s.AuditExport(context.Background(), since, func(e app.AuditEvent) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// verifyIntact fails the test unless the trail holds exactly n intact events.
func verifyIntact(t *testing.T, s *Store, n int) {
	t.Helper()
	v, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Events != n {
		t.Errorf("verification = %+v, want %d intact events", v, n)
	}
}

func TestAuditChainAcrossStateChanges(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		verifyIntact(t, s, 0)

		alice := app.User("U0ALICE")
		r := app.Request{ID: "req_a", Requester: alice, Role: "prod-db-admin", Duration: time.Hour, Reason: "incident 4123",
			Status: app.StatusPending, ApprovalsRequired: 1, CreatedAt: auditT0, ExpiresAt: auditT0.Add(time.Hour)}
		err := s.CreateRequest(ctx, r, app.AuditEvent{At: auditT0, Actor: alice.ID, Action: app.ActionRequestCreated, Principal: alice,
			RequestID: r.ID, Reason: r.Reason, Source: app.SourceSlack})
		if err != nil {
			t.Fatal(err)
		}
		approvedAt := auditT0.Add(time.Minute)
		g := app.Grant{ID: "grt_a", RequestID: r.ID, Principal: alice, Role: r.Role, ApprovedBy: []string{"U0BOB"},
			CreatedAt: approvedAt, ExpiresAt: approvedAt.Add(r.Duration), Status: app.GrantActive}
		err = s.UpdateRequest(ctx, r.ID, func(r app.Request) (app.RequestChange, error) {
			r.Status, r.DecidedAt, r.GrantID = app.StatusApproved, approvedAt, g.ID
			return app.RequestChange{Request: r, Grant: &g, Events: []app.AuditEvent{
				{At: approvedAt, Actor: "U0BOB", Action: app.ActionRequestApproved, Principal: alice, RequestID: r.ID, Source: app.SourceSlack},
				{At: approvedAt, Actor: "U0BOB", Action: app.ActionGrantCreated, Principal: alice, RequestID: r.ID, GrantID: g.ID, Source: app.SourceSlack},
			}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.EndGrant(ctx, g.ID, app.GrantRevoked, app.AuditEvent{At: approvedAt.Add(time.Minute), Actor: "U0SECOPS", Action: app.ActionGrantRevoked,
			Principal: alice, RequestID: r.ID, GrantID: g.ID, Reason: "done early", Source: app.SourceSlack})
		if err != nil {
			t.Fatal(err)
		}

		events := exportAll(t, s, time.Time{})
		wantActions := []string{app.ActionRequestCreated, app.ActionRequestApproved, app.ActionGrantCreated, app.ActionGrantRevoked}
		if len(events) != len(wantActions) {
			t.Fatalf("exported %d events, want %d: %+v", len(events), len(wantActions), events)
		}
		prev := ""
		for i, e := range events {
			if e.ID != uint64(i+1) || e.Action != wantActions[i] || e.PrevHash != prev || e.Hash != e.ChainHash() || len(e.Hash) != 64 {
				t.Errorf("event %d = %+v, want ID %d, action %s, chained onto %q", i, e, i+1, wantActions[i], prev)
			}
			prev = e.Hash
		}
		if !events[0].At.Equal(auditT0.Truncate(time.Microsecond)) {
			t.Errorf("first event at %s, want %s to the microsecond", events[0].At, auditT0)
		}
		verifyIntact(t, s, len(wantActions))
	})
}

// Writers racing on different requests must still leave one unbroken chain.
func TestAuditChainConcurrentAppends(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		const requests = 16
		for i := range requests {
			id := fmt.Sprintf("req_%02d", i)
			r := app.Request{ID: id, Requester: app.User("U0ALICE"), Role: "prod-db-admin", Duration: time.Hour, Reason: "load",
				Status: app.StatusPending, ApprovalsRequired: 2, CreatedAt: auditT0, ExpiresAt: auditT0.Add(time.Hour)}
			if err := s.CreateRequest(ctx, r, app.AuditEvent{At: auditT0, Actor: "U0ALICE", Action: app.ActionRequestCreated, RequestID: id}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for i := range requests {
			for _, approver := range []string{"U0BOB", "U0CAROL"} {
				wg.Go(func() {
					err := s.UpdateRequest(ctx, fmt.Sprintf("req_%02d", i), func(r app.Request) (app.RequestChange, error) {
						d := app.Decision{Approver: approver, Approve: true, At: auditT0}
						return app.RequestChange{Request: r, Decision: &d, Events: []app.AuditEvent{
							{At: auditT0, Actor: approver, Action: app.ActionDecisionApprove, RequestID: r.ID, Reason: "looks fine"},
						}}, nil
					})
					if err != nil {
						t.Error(err)
					}
				})
			}
		}
		wg.Wait()
		verifyIntact(t, s, requests*3)
	})
}

func TestVerifyAuditFindsTampering(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		tests := []struct {
			name   string
			tamper func(t *testing.T, db *gorm.DB)
			want   string
		}{
			{"edited reason", func(t *testing.T, db *gorm.DB) {
				mustExec(t, db.Model(&auditEventRow{}).Where("id = ?", 3).Update("reason", "nothing to see"))
			}, "event 3 was edited (its hash does not match its content)"},
			{"edited reason with its hash recomputed", func(t *testing.T, db *gorm.DB) {
				var row auditEventRow
				mustExec(t, db.Take(&row, 3))
				e := row.toApp()
				e.Reason = "nothing to see"
				mustExec(t, db.Model(&row).Updates(map[string]any{"reason": e.Reason, "hash": e.ChainHash()}))
			}, "event 4 does not follow event 3: an event was deleted or reordered"},
			{"deleted in the middle", func(t *testing.T, db *gorm.DB) {
				mustExec(t, db.Delete(&auditEventRow{}, 3))
			}, "event 4 does not follow event 2: an event was deleted or reordered"},
			{"deleted first", func(t *testing.T, db *gorm.DB) {
				mustExec(t, db.Delete(&auditEventRow{}, 1))
			}, "event 2 does not follow the start of the trail: an event was deleted or reordered"},
			{"deleted newest", func(t *testing.T, db *gorm.DB) {
				mustExec(t, db.Delete(&auditEventRow{}, 5))
			}, "the chain head says the last event is 5, but the trail ends at event 4: the newest events were deleted"},
			{"deleted all", func(t *testing.T, db *gorm.DB) {
				mustExec(t, db.Where("id > 0").Delete(&auditEventRow{}))
			}, "the chain head says the last event is 5, but the trail has no events"},
			{"newest replaced by a forged event", func(t *testing.T, db *gorm.DB) {
				var row auditEventRow
				mustExec(t, db.Take(&row, 5))
				e := row.toApp()
				e.Actor = "U0MALLORY"
				mustExec(t, db.Model(&row).Updates(map[string]any{"actor": e.Actor, "hash": e.ChainHash()}))
			}, "the chain head says event 5 has hash"},
			{"reordered pair", func(t *testing.T, db *gorm.DB) {
				var a, b auditEventRow
				mustExec(t, db.Take(&a, 3))
				mustExec(t, db.Take(&b, 4))
				a.ID, b.ID = b.ID, a.ID
				mustExec(t, db.Save(&a))
				mustExec(t, db.Save(&b))
			}, "event 3 does not follow event 2: an event was deleted or reordered"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, _ := b.Open(t)
				appendAuditEvents(t, s, 5)
				verifyIntact(t, s, 5)
				tt.tamper(t, s.db)
				v, err := s.VerifyAudit(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if v.OK() || !strings.Contains(v.Problem, tt.want) {
					t.Errorf("verification = %+v, want the problem %q", v, tt.want)
				}
			})
		}
	})
}

func mustExec(t *testing.T, res *gorm.DB) {
	t.Helper()
	if res.Error != nil {
		t.Fatal(res.Error)
	}
}

func TestAuditExportStreamsInOrder(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		const n = 2*auditPageSize + 7 // several pages
		appendAuditEvents(t, s, n)
		verifyIntact(t, s, n)

		t.Run("everything", func(t *testing.T) {
			events := exportAll(t, s, time.Time{})
			if len(events) != n {
				t.Fatalf("exported %d events, want %d", len(events), n)
			}
			for i, e := range events {
				if e.ID != uint64(i+1) || e.Reason != fmt.Sprintf("reason %d", i+1) {
					t.Fatalf("event %d = %+v, want ID and reason %d", i, e, i+1)
				}
			}
		})
		t.Run("since a time", func(t *testing.T) {
			since := auditT0.Add(600 * time.Minute) // the 601st event's time, to the microsecond
			events := exportAll(t, s, since.Truncate(time.Microsecond))
			if len(events) != n-600 || events[0].ID != 601 || events[len(events)-1].ID != n {
				t.Errorf("exported %d events from %d, want %d from 601", len(events), events[0].ID, n-600)
			}
		})
		t.Run("since after the last", func(t *testing.T) {
			if events := exportAll(t, s, auditT0.Add(n*time.Minute)); len(events) != 0 {
				t.Errorf("exported %d events, want none", len(events))
			}
		})
		t.Run("each stops it", func(t *testing.T) {
			stop := errors.New("disk full")
			seen := 0
			err := s.AuditExport(context.Background(), time.Time{}, func(app.AuditEvent) error {
				if seen++; seen == 3 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || seen != 3 {
				t.Errorf("err = %v after %d events, want disk full after 3", err, seen)
			}
		})
	})
}

// A database from before the hash chain (and so from before versioned migrations) has its
// events sealed into it when opened.
func TestMigrateAuditChainSealsOlderEvents(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, path := b.Open(t)
		mustExec(t, s.db.Exec("DROP TABLE schema_migrations"))
		for i := range 3 {
			mustExec(t, s.db.Create(&auditEventRow{At: auditT0.Add(time.Duration(i) * time.Minute), Actor: "U0BOB", Action: app.ActionDecisionApprove}))
		}
		mustExec(t, s.db.Where("id > 0").Delete(&auditChainHeadRow{}))
		s.Close()

		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		verifyIntact(t, s, 3)
		appendAuditEvents(t, s, 2)
		verifyIntact(t, s, 5)
	})
}
