package store

import (
	"context"
	"os"
	"testing"
)

// TestCheckpointsLeaveTheWriter: the writer's commits never run a WAL checkpoint (one
// stalls every write queued behind it for the copy and an fsync); the checkpointer copies
// the WAL into the database file in the background instead.
func TestCheckpointsLeaveTheWriter(t *testing.T) {
	s, path := Backends[0].Open(t) // SQLite
	var auto int
	if err := s.db.Raw("PRAGMA wal_autocheckpoint").Scan(&auto).Error; err != nil || auto != 0 {
		t.Fatalf("the writer's wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
	ctx := context.Background()
	for i := range 3000 { // some 15,000 pages of WAL, each commit rewriting a few
		if err := s.RecordIssuance(ctx, issuance(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The WAL starts over once checkpointed: it ends far shorter than what was written.
	if err := s.RecordIssuance(ctx, issuance(3000)); err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, path+"-wal"); size > 2*walRestartFrames*4096 {
		t.Errorf("the WAL is %d bytes: nothing checkpointed it", size)
	}
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
