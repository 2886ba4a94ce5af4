// Command loadtest measures Gatehouse's token endpoint against the built binary, next to a
// bare HTTP handler that only signs one JWT with a key of the same type, in the same run
// with the same load generator, in alternating rounds (bare, client credentials, refresh,
// device flow, bare, …). It prints requests per second, latency percentiles, each
// scenario's rate as a fraction of the bare signer's, the server's peak RSS and its CPU
// time per request.
//
//	go build -o gatehouse . && go run ./internal/loadtest -binary ./gatehouse -alg ES256 -c 16
//
// -database postgres://… runs Gatehouse on that PostgreSQL database instead.
//
// -cpus pins the server and the bare signer (taskset -c LIST), for scaling runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	binary   string
	algs     []string
	workers  int
	warmup   time.Duration
	duration time.Duration
	rounds   int
	cpus     string
	only     []string
	database string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "bare-signer" {
		if err := serveBareSigner(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var o options
	var algs, only string
	flag.StringVar(&o.binary, "binary", "./gatehouse", "the built gatehouse binary")
	flag.StringVar(&algs, "alg", "RS256,ES256", "signing algorithms to measure, comma-separated")
	flag.IntVar(&o.workers, "c", 16, "concurrent clients (keep-alive connections)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each measured round")
	flag.DurationVar(&o.duration, "d", 8*time.Second, "measured time per scenario and round")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of every scenario (A B A B …)")
	flag.StringVar(&o.cpus, "cpus", "", "pin the server and the bare signer to these CPUs (taskset -c LIST)")
	flag.StringVar(&o.database, "database", "", "a PostgreSQL URL (password from PGPASSWORD) to run on instead of a new SQLite file")
	flag.StringVar(&only, "scenarios", "bare,client_credentials,refresh,device", "scenarios to run")
	flag.Parse()
	o.algs, o.only = strings.Split(algs, ","), strings.Split(only, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for _, alg := range o.algs {
		if err := run(ctx, o, alg); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
	}
}

// run measures one algorithm: it starts Gatehouse and the bare signer, prepares the
// sessions, then runs the rounds and prints the table.
func run(ctx context.Context, o options, alg string) error {
	dir, err := os.MkdirTemp("", "gatehouse-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	slack, err := startSlack()
	if err != nil {
		return err
	}
	defer slack.close()
	g, err := startGatehouse(ctx, o, alg, dir, slack)
	if err != nil {
		return err
	}
	defer g.stop()
	bare, err := startBare(ctx, o, alg)
	if err != nil {
		return err
	}
	defer bare.stop()
	scenarios, err := prepare(ctx, o, g, bare)
	if err != nil {
		return err
	}
	fmt.Printf("\n%s, %d clients, server on CPUs %q, %d rounds of %s after %s warm-up\n", alg, o.workers, orAll(o.cpus), o.rounds, o.duration, o.warmup)
	results := map[string][]result{}
	for round := 1; round <= o.rounds; round++ {
		for _, sc := range scenarios {
			target := g
			if sc.name == "bare" {
				target = bare
			}
			res, err := measure(ctx, o, sc, target)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", sc.name, round, err)
			}
			results[sc.name] = append(results[sc.name], res)
			fmt.Printf("  round %d %-20s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu %5.3f ms/req  rss %3d MB\n",
				round, sc.name, res.rate, ms(res.p50), ms(res.p99), res.cpuPerReq*1000, res.rssMB)
		}
	}
	printSummary(scenarios, results)
	return nil
}

func orAll(cpus string) string {
	if cpus == "" {
		return "all"
	}
	return cpus
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pinned returns the command to run name pinned to cpus, or as is.
func pinned(cpus, name string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
