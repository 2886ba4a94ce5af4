package store

import (
	"strings"
	"sync"

	"testing"

	"gorm.io/gorm"
)

func appliedMigrations(t *testing.T, s *Store) []schemaMigrationRow {
	t.Helper()
	var rows []schemaMigrationRow
	mustExec(t, s.db.Order("version").Find(&rows))
	return rows
}

func TestMigrationsAppliedOnceInOrder(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, database := b.Open(t)
		first := appliedMigrations(t, s)
		if len(first) != len(migrations) {
			t.Fatalf("applied %+v, want the %d migrations", first, len(migrations))
		}
		for i, m := range migrations {
			if first[i].Version != m.version || first[i].Name != m.name {
				t.Errorf("migration %d recorded as %+v, want %d %q", i, first[i], m.version, m.name)
			}
		}
		s.Close()
		s, err := Open(database)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		again := appliedMigrations(t, s)
		if len(again) != len(first) || !again[len(again)-1].AppliedAt.Equal(first[len(first)-1].AppliedAt) {
			t.Errorf("after reopening: %+v, want %+v untouched", again, first)
		}
	})
}

// Replicas started at the same instant on an empty database all come up, and each
// migration is applied once.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		database := b.NewDatabase(t)
		const replicas = 4
		var wg sync.WaitGroup
		for range replicas {
			wg.Go(func() {
				s, err := Open(database)
				if err != nil {
					t.Error(err)
					return
				}
				s.Close()
			})
		}
		wg.Wait()
		s, err := Open(database)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := appliedMigrations(t, s); len(got) != len(migrations) {
			t.Errorf("applied %+v, want each of the %d migrations once", got, len(migrations))
		}
		verifyIntact(t, s, 0) // the chain head exists, once
	})
}

// A migration appended later is applied to a database that has had the others, and once.
func TestAddedMigrationRunsOnce(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, database := b.Open(t)
		s.Close()
		saved := migrations
		t.Cleanup(func() { migrations = saved })
		// Not idempotent on purpose: applied twice, it fails.
		migrations = append(migrations[:len(migrations):len(migrations)], migration{len(saved) + 1, "probe",
			func(tx *gorm.DB) error { return tx.Exec("CREATE TABLE migration_probe (id INTEGER PRIMARY KEY)").Error }})
		for range 2 {
			s, err := Open(database)
			if err != nil {
				t.Fatal(err)
			}
			if !s.db.Migrator().HasTable("migration_probe") {
				t.Error("the added migration did not run")
			}
			if got := appliedMigrations(t, s); len(got) != len(saved)+1 || got[len(got)-1].Name != "probe" {
				t.Errorf("applied %+v, want the probe last", got)
			}
			s.Close()
		}
	})
}

func TestCheckDatabase(t *testing.T) {
	tests := []struct {
		database string
		problem  string // "" when fine
	}{
		{"gatehouse.db", ""},
		{"/var/lib/gatehouse/gatehouse.db", ""},
		{"postgres://gatehouse@db.internal:5432/gatehouse?sslmode=verify-full", ""},
		{"postgresql://gatehouse@db.internal/gatehouse", ""},
		{"postgres://gatehouse:hunter2@db.internal/gatehouse", "must not hold a password: give it in PGPASSWORD or a .pgpass file"},
		{"postgres://gatehouse@db.internal/gatehouse?password=hunter2", "must not hold a password"},
		{"postgres://gatehouse@db.internal/gatehouse?sslmode=sometimes", "sslmode is invalid"},
		{"postgres://gatehouse@db.internal:port/gatehouse", "does not parse"},
		{"postgres://gatehouse:hunter2@db.internal:port/gatehouse", "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.database, func(t *testing.T) {
			err := CheckDatabase(tt.database)
			switch {
			case tt.problem == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Errorf("err = %v, want %q", err, tt.problem)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Errorf("the error shows the password: %v", err)
			}
			if tt.problem == "" {
				return // opening it would reach for a server that is not there
			}
			if _, err := Open(tt.database); err == nil || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Open: err = %v, want the problem without the password", err)
			}
		})
	}
}
