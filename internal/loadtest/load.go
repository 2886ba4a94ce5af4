package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// scenario is one kind of request: worker makes, for worker i, the function that sends one.
type scenario struct {
	name   string
	worker func(i int) (func() error, error)
}

type result struct {
	rate      float64
	p50, p99  time.Duration
	cpuPerReq float64 // seconds of server CPU per request
	rssMB     int     // the server's peak RSS during the round
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute}}

// tokenResponse is the part of a token response the scenarios read.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	DeviceCode   string `json:"device_code"`
}

// post sends form to u as the load-test service (HTTP Basic) and decodes the answer.
func post(u string, form url.Values) (tokenResponse, error) {
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("load-service", serviceSecret)
	resp, err := client.Do(req)
	if err != nil {
		return tokenResponse{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok tokenResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil {
		return tok, fmt.Errorf("%s: %d %s", u, resp.StatusCode, body)
	}
	return tok, nil
}

// deviceTokens runs the device flow of the load-test service: it asks for no role, so
// nobody has to approve and the first poll gets the tokens.
func deviceTokens(issuer, scope string) (tokenResponse, error) {
	da, err := post(issuer+"/device_authorization", url.Values{"scope": {scope}})
	if err != nil {
		return da, err
	}
	return post(issuer+"/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}})
}

// prepare makes the scenarios asked for; the refresh scenario starts one session per client.
func prepare(_ context.Context, o options, g, bare *process) ([]scenario, error) {
	cc := url.Values{"grant_type": {"client_credentials"}}
	all := []scenario{
		{"bare", func(int) (func() error, error) {
			return func() error { _, err := post(bare.url+"/oauth/token", cc); return err }, nil
		}},
		{"client_credentials", func(int) (func() error, error) {
			return func() error { _, err := post(g.url+"/oauth/token", cc); return err }, nil
		}},
		{"refresh", func(int) (func() error, error) {
			tok, err := deviceTokens(g.url, "offline_access")
			if err != nil {
				return nil, err
			}
			refresh := tok.RefreshToken
			return func() error {
				tok, err := post(g.url+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
				refresh = tok.RefreshToken
				return err
			}, nil
		}},
		{"device", func(int) (func() error, error) {
			return func() error { _, err := deviceTokens(g.url, "offline_access"); return err }, nil
		}},
	}
	var chosen []scenario
	for _, sc := range all {
		if slices.Contains(o.only, sc.name) {
			chosen = append(chosen, sc)
		}
	}
	return chosen, nil
}

// measure runs sc with o.workers clients: a warm-up, then o.duration measured.
func measure(ctx context.Context, o options, sc scenario, target *process) (result, error) {
	calls := make([]func() error, o.workers)
	for i := range calls {
		call, err := sc.worker(i)
		if err != nil {
			return result{}, err
		}
		calls[i] = call
	}
	if _, err := drive(ctx, calls, o.warmup); err != nil {
		return result{}, err
	}
	pid := target.cmd.Process.Pid
	cpu0, _ := usage(pid)
	peak := 0
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if _, rss := usage(pid); rss > peak {
				peak = rss
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	latencies, err := drive(ctx, calls, o.duration)
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	cpu1, _ := usage(pid)
	if err != nil {
		return result{}, err
	}
	slices.Sort(latencies)
	n := len(latencies)
	if n == 0 {
		return result{}, fmt.Errorf("no request completed")
	}
	return result{
		rate: float64(n) / elapsed.Seconds(), p50: latencies[n/2], p99: latencies[n*99/100],
		cpuPerReq: (cpu1 - cpu0).Seconds() / float64(n), rssMB: peak,
	}, nil
}

// drive runs every call in a loop, one goroutine each, for d; it returns the latencies.
func drive(ctx context.Context, calls []func() error, d time.Duration) ([]time.Duration, error) {
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := call(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return all, firstErr
}

// printSummary prints each scenario's mean rate over the rounds and its ratio to the bare
// signer's mean, with the worst p99 and the peak RSS.
func printSummary(scenarios []scenario, results map[string][]result) {
	mean := func(rs []result) float64 {
		var sum float64
		for _, r := range rs {
			sum += r.rate
		}
		return sum / float64(len(rs))
	}
	bare := mean(results["bare"])
	fmt.Printf("  %-20s %10s %8s %10s %10s %8s\n", "summary", "req/s", "× bare", "worst p99", "cpu/req", "peak RSS")
	for _, sc := range scenarios {
		rs := results[sc.name]
		var p99 time.Duration
		var cpu float64
		peak := 0
		for _, r := range rs {
			p99, peak = max(p99, r.p99), max(peak, r.rssMB)
			cpu += r.cpuPerReq / float64(len(rs))
		}
		ratio := "-"
		if bare > 0 {
			ratio = fmt.Sprintf("%.2f", mean(rs)/bare)
		}
		fmt.Printf("  %-20s %10.0f %8s %8.2fms %8.3fms %6d MB\n", sc.name, mean(rs), ratio, ms(p99), cpu*1000, peak)
	}
}
