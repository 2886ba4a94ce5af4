// Package pgtest starts real PostgreSQL servers for tests: Debian's postgresql package
// (binaries under /usr/lib/postgresql/*/bin, or initdb on PATH), in a temp dir, as an
// unprivileged user when the tests run as root (initdb refuses root).
//
// One server is shared by a test binary and started on first use; each test gets a fresh,
// empty database on it (NewDatabase). A package that uses it calls Run from its TestMain so
// that the server stops when the tests end. The server needs a password; pgtest puts it in
// PGPASSWORD of the test process, so that Gatehouse reads it exactly as in production, and
// the database URLs carry none.
//
// Without the binaries a test is skipped, saying so — except under CI (CI set), where it
// fails: .ci/run installs the package, so a missing server there is a broken setup.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// User is the superuser every server is created with; the tests connect as it.
const User = "gatehouse"

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error

	passwordOnce sync.Once
	password     string

	dbSeq atomic.Int64
)

// Run runs the tests of m and then stops the shared server, if one was started. Call it
// from TestMain: func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }.
func Run(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
		shared.cleanup()
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first use. It skips t
// when PostgreSQL is not installed (fails under CI).
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		fail(t, sharedErr)
	}
	return shared
}

// NewDatabase returns the URL of a new, empty database on the shared server (see Shared).
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Start starts a server of the test's own, for tests that stop and restart it; it is
// removed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		fail(t, err)
	}
	t.Cleanup(func() { s.stop(); s.cleanup() })
	return s
}

// errNotInstalled says that PostgreSQL's binaries were not found.
var errNotInstalled = errors.New("PostgreSQL is not installed (apt-get install postgresql): its tests are skipped")

func fail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNotInstalled) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	t.Fatalf("pgtest: %v", err)
}

// Server is a running PostgreSQL server in a temp dir.
type Server struct {
	bin  string // the folder holding initdb and postgres
	dir  string // data, password file and log
	port int
	cred *syscall.Credential // whom the server runs as; nil when the tests are not root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // the exit of cmd
	admin  *sql.DB
}

// Port is the TCP port the server listens on, on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// NewDatabase creates a new, empty database and returns its URL, which has no password.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.copyDatabase(t, "template1")
}

// CopyDatabase returns the URL of a new database that is a copy of the one at url, which
// nothing may be connected to. A test suite that needs many databases with the same schema
// migrates one and copies it: faster than migrating each.
func CopyDatabase(t testing.TB, url string) string {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: CopyDatabase before NewDatabase")
	}
	name := url[strings.LastIndex(url, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	return shared.copyDatabase(t, name)
}

func (s *Server) copyDatabase(t testing.TB, template string) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}

// URL is the address of database name on this server, without the password.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.port, name)
}

func start() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	base := "" // $TMPDIR
	if os.Geteuid() == 0 {
		base = "/tmp" // the unprivileged server user must reach it; root's TMPDIR may be private
	}
	if s.dir, err = os.MkdirTemp(base, "gatehouse-pg-"); err != nil {
		return nil, err
	}
	if err := s.initdb(); err != nil {
		s.cleanup()
		return nil, err
	}
	if err := s.Restart(); err != nil {
		s.cleanup()
		return nil, err
	}
	s.admin, err = sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		s.stop()
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// findBinaries returns the bin folder of the newest PostgreSQL installed.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errNotInstalled
}

func versionOf(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

// initdb creates the cluster, as an unprivileged user when the tests run as root.
func (s *Server) initdb() error {
	passwordOnce.Do(func() { password = rand.Text() })
	pwfile := filepath.Join(s.dir, "password")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := s.runAsUnprivileged(); err != nil {
			return err
		}
	}
	// The server must want the password: then the tests prove it comes from PGPASSWORD.
	if err := os.Setenv("PGPASSWORD", password); err != nil {
		return err
	}
	out, err := s.command("initdb", "-D", s.dataDir(), "-U", User, "--pwfile", pwfile, "--auth", "scram-sha-256",
		"-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return nil
}

// runAsUnprivileged picks the user the server runs as (Debian's postgres user, else
// nobody) and gives it the temp dir.
func (s *Server) runAsUnprivileged() error {
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("no unprivileged user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return filepath.Walk(s.dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + s.dir}
	// Killed with the test binary, however that ends, so no server outlives its tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Restart starts the server again after Stop (or for the first time), on the same port
// and data, and waits until it takes connections.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: the server is running")
	}
	var lastErr error
	for range 3 { // a free port may be taken between choosing it and binding it
		if s.port == 0 || lastErr != nil {
			port, err := freePort()
			if err != nil {
				return err
			}
			s.port = port
		}
		if lastErr = s.launch(); lastErr == nil {
			return nil
		}
		if s.admin != nil { // a restart must keep its port: the URLs handed out name it
			return lastErr
		}
	}
	return lastErr
}

// launch starts postgres, tuned for tests (no fsync), and waits until it answers.
func (s *Server) launch() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command("postgres", "-D", s.dataDir(), "-k", s.dir, "-h", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
		"-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited at start: %v\n%s", err, s.logTail())
		case <-deadline:
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not take connections within 30 s\n%s", s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if s.answers() {
			s.cmd, s.exited = cmd, exited
			return nil
		}
	}
}

// answers reports whether the server takes a connection now.
func (s *Server) answers() bool {
	db, err := sql.Open("pgx", s.URL("postgres")+"&connect_timeout=1")
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return db.PingContext(ctx) == nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop shuts the server down (fast: open connections are cut) and waits until it is gone;
// Restart brings it back with the same data.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin != nil {
		s.admin.Close()
	}
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd, s.exited = nil, nil
}

func (s *Server) cleanup() { os.RemoveAll(s.dir) }

// freePort returns a TCP port on 127.0.0.1 that nothing listens on just now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
