package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

func TestDueRequests(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		file := func(id string, change func(*app.Request)) {
			t.Helper()
			r := pendingRequest(id)
			r.Message = app.MessageRef{Channel: "C0DBA", TS: "1700000000.000100"}
			change(&r)
			if err := s.CreateRequest(ctx, r, created(r)); err != nil {
				t.Fatal(err)
			}
		}
		file("req_remind", func(r *app.Request) { r.RemindAt = t0.Add(10 * time.Minute) })
		file("req_escalate", func(r *app.Request) { r.EscalateAt = t0.Add(20 * time.Minute) })
		file("req_both", func(r *app.Request) { r.RemindAt, r.EscalateAt = t0.Add(10*time.Minute), t0.Add(20*time.Minute) })
		file("req_none", func(r *app.Request) {})
		// Not posted yet (Slack refuses the channel): nothing to reply to, so never due.
		file("req_unposted", func(r *app.Request) { r.RemindAt, r.Message = t0.Add(10*time.Minute), app.MessageRef{} })
		file("req_denied", func(r *app.Request) {
			r.RemindAt, r.Status, r.DecidedAt = t0.Add(10*time.Minute), app.StatusDenied, t0.Add(time.Minute)
		})

		tests := []struct {
			name string
			at   time.Duration
			want []string
		}{
			{"nothing due yet", 10*time.Minute - time.Second, nil},
			{"reminders due", 10 * time.Minute, []string{"req_both", "req_remind"}},
			{"escalations due too", 20 * time.Minute, []string{"req_both", "req_escalate", "req_remind"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.DueRequests(ctx, t0.Add(tt.at), 100)
				slices.Sort(got)
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("DueRequests = %v, %v; want %v", got, err, tt.want)
				}
			})
		}

		t.Run("clearing what is done round-trips", func(t *testing.T) {
			err := s.UpdateRequest(ctx, "req_both", func(r app.Request) (app.RequestChange, error) {
				if !r.RemindAt.Equal(t0.Add(10*time.Minute)) || !r.EscalateAt.Equal(t0.Add(20*time.Minute)) || r.Escalated {
					t.Errorf("stored follow-ups = %v, %v, %v", r.RemindAt, r.EscalateAt, r.Escalated)
				}
				r.RemindAt, r.EscalateAt, r.Escalated = time.Time{}, time.Time{}, true
				return app.RequestChange{Request: r}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Request(ctx, "req_both")
			if err != nil || !got.RemindAt.IsZero() || !got.EscalateAt.IsZero() || !got.Escalated {
				t.Errorf("after update: %+v, %v", got, err)
			}
			due, _ := s.DueRequests(ctx, t0.Add(time.Hour), 100)
			if slices.Contains(due, "req_both") {
				t.Errorf("done request still due: %v", due)
			}
		})
	})
}
