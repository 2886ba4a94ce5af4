package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// BenchmarkCreateRequest files requests from 8 goroutines at once (Gatehouse's handler
// limit on 2 cores), each with its audit event: the write every /access request makes.
func BenchmarkCreateRequest(b *testing.B) {
	for _, backend := range store.Backends {
		b.Run(backend.Name, func(b *testing.B) {
			s, _ := backend.Open(b)
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(4) // × GOMAXPROCS(2) = 8
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := pendingRequest(fmt.Sprintf("req_%d", n.Add(1)))
					if err := s.CreateRequest(ctx, r, created(r)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDecide records an approval on a new request: a locked read, the decision, the
// audit event.
func BenchmarkDecide(b *testing.B) {
	for _, backend := range store.Backends {
		b.Run(backend.Name, func(b *testing.B) {
			s, _ := backend.Open(b)
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				r := pendingRequest(fmt.Sprintf("req_%d", i))
				if err := s.CreateRequest(ctx, r, created(r)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				err := s.UpdateRequest(ctx, r.ID, func(r app.Request) (app.RequestChange, error) {
					d := app.Decision{Approver: "U0BOB", Approve: true, At: t0}
					return app.RequestChange{Request: r, Decision: &d, Events: []app.AuditEvent{{At: t0, Actor: "U0BOB", Action: app.ActionDecisionApprove, RequestID: r.ID}}}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
