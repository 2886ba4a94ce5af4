//go:build pprof

package gatehouse

// Built only with -tags pprof, for profiling under internal/loadtest: it serves
// net/http/pprof on GATEHOUSE_PPROF_ADDR (give a loopback address), on a listener of its
// own; the public listener never uses http.DefaultServeMux. An ordinary build has none of it.

import (
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("GATEHOUSE_PPROF_ADDR"); addr != "" {
		go func() {
			fmt.Fprintln(os.Stderr, "pprof:", http.ListenAndServe(addr, http.DefaultServeMux))
		}()
	}
}
