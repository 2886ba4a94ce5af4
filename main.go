// Command gatehouse puts human approval in Slack in front of elevated access and mints
// short-lived OpenID Connect tokens that carry the approval.
//
//	gatehouse serve --config FILE         run the Slack bot and the OpenID Provider
//	gatehouse check-config --config FILE  validate a policy file, listing every problem
//	gatehouse token --issuer URL --role R get an access token (device flow)
//	gatehouse keys rotate --config FILE   make a new signing key the active one
//	gatehouse audit export|verify --config FILE  export the audit trail or check its hash chain
//
// The program lives in internal/gatehouse; this file only starts it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatehouse/gatehouse/internal/gatehouse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	m := &gatehouse.Main{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
	err := m.Run(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gatehouse:", err)
		}
		os.Exit(1)
	}
}
