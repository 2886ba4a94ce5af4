package store

import (
	"fmt"
	"time"

	"gorm.io/gorm"
)

// migration is one versioned change to the schema.
type migration struct {
	version int
	name    string
	up      func(tx *gorm.DB) error
}

// migrations are the schema changes in the order they were made. A database records the
// ones it has had in schema_migrations; Open applies the rest. Append only: never edit,
// renumber or remove one that has shipped, since databases out there have had it.
//
// To add a table or columns, define or change the row type, then append a line:
//
//	{6, "outbox", autoMigrate(&outboxRow{})},
//
// autoMigrate creates what is missing and leaves the rest, so a migration made with it is
// also safe on a database whose schema already has the change.
var migrations = []migration{
	{1, "initial schema", autoMigrate(&requestRow{}, &decisionRow{}, &grantRow{}, &auditEventRow{}, &loginRow{},
		&refreshTokenRow{}, &sessionRow{}, &authRequestRow{}, &browserSessionRow{}, &signingKeyRow{})},
	{2, "audit hash chain", migrateAuditChain},
	{3, "user-code guesses", autoMigrate(&codeGuessRow{})},
	{4, "revocations", func(tx *gorm.DB) error {
		if err := tx.AutoMigrate(&revocationRow{}, &revocationHeadRow{}); err != nil {
			return err
		}
		return migrateRevocationHead(tx)
	}},
	{5, "access tokens are self-contained JWTs", dropTable("access_tokens")},
	{6, "outbox, kept commands, requests that owe a posted DM", autoMigrate(&deliveryRow{}, &inboxRow{}, &requestRow{})},
	{7, "App Home viewers, shared by replicas", autoMigrate(&homeViewerRow{})},
	{8, "refresh tokens rotate in place within their chain", autoMigrate(&refreshTokenRow{})},
}

// dropTable is a migration that drops a table no longer used, if it is there.
func dropTable(name string) func(*gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.Migrator().DropTable(name) }
}

// autoMigrate is a migration that brings the tables of rows up to their row types.
func autoMigrate(rows ...any) func(*gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.AutoMigrate(rows...) }
}

// schemaMigrationRow records that a migration was applied.
type schemaMigrationRow struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

func (schemaMigrationRow) TableName() string { return "schema_migrations" }

// migrate applies the migrations the database has not had, in order, in one transaction
// that holds the dialect's migration lock: when several processes start at once on the
// same database, one migrates and the others then find nothing left to do. A database
// that has had migrations this binary does not know (a newer replica's) is left as it is:
// migrations only add, so older code keeps working on it during a rolling upgrade.
func (s *Store) migrate(d dialect) error {
	return s.db.Transaction(func(tx *gorm.DB) error {
		if err := d.lockMigrations(tx); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if err := tx.AutoMigrate(&schemaMigrationRow{}); err != nil {
			return err
		}
		var applied []int
		if err := tx.Model(&schemaMigrationRow{}).Pluck("version", &applied).Error; err != nil {
			return err
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range migrations {
			if done[m.version] {
				continue
			}
			if err := m.up(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
			if err := tx.Create(&schemaMigrationRow{Version: m.version, Name: m.name, AppliedAt: time.Now().UTC()}).Error; err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		return nil
	})
}
