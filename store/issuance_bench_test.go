package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkRecordIssuance measures what the group commit can record at most: the write
// behind every token response, from enough concurrent callers to fill every batch (fewer
// would leave each batch waiting out its gather window for callers that cannot come): a
// token without a refresh token (client credentials: one audit event), and a refresh
// (rotation in an open session plus the event).
func BenchmarkRecordIssuance(b *testing.B) {
	for _, rotate := range []bool{false, true} {
		name := map[bool]string{false: "event", true: "rotation"}[rotate]
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "gatehouse.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(2 * maxBatch) // callers per GOMAXPROCS
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n := next.Add(1) << 32
				session, prev, gen := fmt.Sprintf("ses-%d", n), "", 0
				for pb.Next() {
					n++
					iss := issuance(int(n))
					if rotate {
						hash := fmt.Sprintf("rt-%d", n)
						iss.Refresh = refreshIn(hash, session, gen, session)
						iss.SessionID, iss.Replaces, prev, gen = session, prev, hash, gen+1
					}
					if err := s.RecordIssuance(ctx, iss); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
