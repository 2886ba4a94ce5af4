package app

import (
	"testing"
	"time"
)

func TestExtensionEnd(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	grant := Grant{CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	tests := []struct {
		name          string
		maxExtensions int
		extensions    int
		by            time.Duration
		want          time.Time
	}{
		{"within max_duration", 0, 0, 2 * time.Hour, t0.Add(3 * time.Hour)},
		{"capped at max_duration from first approval", 0, 0, 5 * time.Hour, t0.Add(4 * time.Hour)},
		{"max_extensions lets it go beyond", 2, 1, 5 * time.Hour, t0.Add(6 * time.Hour)},
		{"max_extensions used up", 2, 2, 5 * time.Hour, t0.Add(4 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := Role{MaxDuration: 4 * time.Hour, MaxExtensions: tt.maxExtensions}
			g := grant
			g.Extensions = tt.extensions
			if got := role.extensionEnd(g, tt.by); !got.Equal(tt.want) {
				t.Errorf("extensionEnd = %s, want %s", got, tt.want)
			}
		})
	}
}
