package store

import (
	"context"
	"sync"
)

// writeGate lets one write transaction run at a time, in the order they came, except that
// urgent ones (keeping commands before their acks) go before the others: a burst's acks do
// not wait behind the work the burst itself causes.
type writeGate struct {
	mu     sync.Mutex
	busy   bool
	urgent []chan struct{}
	normal []chan struct{}
}

// acquire waits for the gate until ctx ends. A nil gate lets everyone through.
func (g *writeGate) acquire(ctx context.Context, urgent bool) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	if urgent {
		g.urgent = append(g.urgent, turn)
	} else {
		g.normal = append(g.normal, turn)
	}
	g.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	select {
	case <-turn: // handed the gate just now: pass it on
		g.mu.Unlock()
		g.release()
	default:
		g.urgent, g.normal = without(g.urgent, turn), without(g.normal, turn)
		g.mu.Unlock()
	}
	return ctx.Err()
}

// release hands the gate to the next waiting, urgent ones first.
func (g *writeGate) release() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, queue := range []*[]chan struct{}{&g.urgent, &g.normal} {
		if len(*queue) > 0 {
			next := (*queue)[0]
			*queue = (*queue)[1:]
			close(next) // busy stays true: the gate changes hands
			return
		}
	}
	g.busy = false
}

func without(queue []chan struct{}, turn chan struct{}) []chan struct{} {
	for i, c := range queue {
		if c == turn {
			return append(queue[:i:i], queue[i+1:]...)
		}
	}
	return queue
}
