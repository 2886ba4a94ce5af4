package gatehouse

import (
	"net/http"
	"time"
)

// HTTPTimeouts bound how long a connection may hold the server: a body trickled byte by
// byte or an idle keep-alive is cut off. Zero fields take the defaults.
type HTTPTimeouts struct {
	ReadHeader time.Duration // default 5s
	Read       time.Duration // the whole request, body included; default 10s
	Write      time.Duration // default 30s
	Idle       time.Duration // an idle keep-alive; default 30s
}

func (t HTTPTimeouts) apply(srv *http.Server) {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	srv.ReadHeaderTimeout = or(t.ReadHeader, 5*time.Second)
	srv.ReadTimeout = or(t.Read, 10*time.Second)
	srv.WriteTimeout = or(t.Write, 30*time.Second)
	srv.IdleTimeout = or(t.Idle, 30*time.Second)
}
