package slackfake

import (
	"encoding/json"
	"fmt"
	"time"
)

// trigger is a trigger_id the fake issued with a user interaction.
type trigger struct {
	user   string
	issued time.Time
	used   bool
}

// newTrigger issues a trigger_id for user; the caller holds s.mu.
func (s *Server) newTrigger(user string) string {
	id := fmt.Sprintf("%d.%d.%s", 1700000000+s.seq.Add(1), 42, randomHex(16))
	s.triggers[id] = &trigger{user: user, issued: time.Now()}
	return id
}

// exchangeTrigger spends a trigger_id on views.open or views.push and
// returns its user; the caller holds s.mu.
func (s *Server) exchangeTrigger(method, id string) (string, *apiError) {
	tr := s.triggers[id]
	switch {
	case tr == nil:
		s.fail("%s: invalid_trigger_id: %q was never issued by Slack", method, id)
		return "", errorf("invalid_trigger_id")
	case tr.used:
		s.fail("%s: exchanged_trigger_id: trigger_id %q was already used for a views.open/views.push (each trigger works once)", method, id)
		return "", errorf("exchanged_trigger_id")
	}
	if age := time.Since(tr.issued); age > s.TriggerTTL {
		s.fail("%s: expired_trigger_id: trigger_id used %v after the interaction; Slack allows %v", method, age.Round(time.Millisecond), s.TriggerTTL)
		return "", errorf("expired_trigger_id")
	}
	tr.used = true
	return tr.user, nil
}

// checkView validates a view for method and gives its blocks their
// generated IDs.
func (s *Server) checkView(method string, raw json.RawMessage, wantType string) (map[string]any, *apiError) {
	def, vs := parseView(raw)
	if err := s.rejected(method, vs); err != nil {
		return nil, err
	}
	if def["type"] != wantType {
		s.fail("%s: invalid_arguments: view type must be %q, got %s", method, wantType, show(def["type"]))
		return nil, errorf(errInvalidArguments)
	}
	assignIDs(def["blocks"])
	return def, nil
}

// newView makes a view for user; the caller holds s.mu.
func (s *Server) newView(user string, def map[string]any) *storedView {
	v := &storedView{id: s.nextID("V"), user: user, def: def}
	v.hash = s.newHash()
	v.resetState()
	return v
}

func (s *Server) newHash() string {
	return fmt.Sprintf("%d.%s", 1700000000+s.seq.Add(1), randomHex(4))
}

// externalIDTaken reports whether another open view uses the def's
// external_id; the caller holds s.mu.
func (s *Server) externalIDTaken(def map[string]any, except *storedView) bool {
	ext, _ := def["external_id"].(string)
	if ext == "" {
		return false
	}
	for _, v := range s.views {
		if v != except && v.def["external_id"] == ext {
			return true
		}
	}
	return false
}

// viewArgs reads the view argument of a views.* call.
func (s *Server) viewArgs(method string, p *params) (json.RawMessage, *apiError) {
	raw, ok := p.json("view")
	if !ok || len(raw) == 0 || string(raw) == "null" {
		s.fail("%s: invalid_arguments: no view given", method)
		return nil, errorf(errInvalidArguments)
	}
	return raw, nil
}

func (s *Server) viewsOpen(p *params) (map[string]any, *apiError) {
	raw, err := s.viewArgs("views.open", p)
	if err != nil {
		return nil, err
	}
	def, err := s.checkView("views.open", raw, "modal")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, err := s.exchangeTrigger("views.open", p.str("trigger_id"))
	if err != nil {
		return nil, err
	}
	if s.externalIDTaken(def, nil) {
		return nil, errorf("duplicate_external_id")
	}
	s.closeViews(user, len(s.stacks[user]))
	v := s.newView(user, def)
	s.pushView(v)
	return map[string]any{"view": v.json()}, nil
}

func (s *Server) viewsPush(p *params) (map[string]any, *apiError) {
	raw, err := s.viewArgs("views.push", p)
	if err != nil {
		return nil, err
	}
	def, err := s.checkView("views.push", raw, "modal")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	user, err := s.exchangeTrigger("views.push", p.str("trigger_id"))
	if err != nil {
		return nil, err
	}
	if n := len(s.stacks[user]); n >= maxModalStack {
		s.fail("views.push: push_limit_reached: %s already has %d modals stacked, limit %d", user, n, maxModalStack)
		return nil, errorf("push_limit_reached")
	}
	if s.externalIDTaken(def, nil) {
		return nil, errorf("duplicate_external_id")
	}
	v := s.newView(user, def)
	s.pushView(v)
	return map[string]any{"view": v.json()}, nil
}

// viewsUpdate replaces an open view, found by view_id or external_id. A
// hash that is not the view's current one means someone else updated it
// first: hash_conflict (not a test failure: apps must handle it).
func (s *Server) viewsUpdate(p *params) (map[string]any, *apiError) {
	raw, err := s.viewArgs("views.update", p)
	if err != nil {
		return nil, err
	}
	def, err := s.checkView("views.update", raw, "modal")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var v *storedView
	if id := p.str("view_id"); id != "" {
		v = s.views[id]
	} else if ext := p.str("external_id"); ext != "" {
		for _, x := range s.views {
			if x.def["external_id"] == ext {
				v = x
			}
		}
	} else {
		s.fail("views.update: invalid_arguments: neither view_id nor external_id given")
		return nil, errorf(errInvalidArguments)
	}
	if v == nil {
		return nil, errorf("not_found")
	}
	if h := p.str("hash"); h != "" && h != v.hash {
		return nil, errorf("hash_conflict")
	}
	if s.externalIDTaken(def, v) {
		return nil, errorf("duplicate_external_id")
	}
	s.replaceView(v, def)
	return map[string]any{"view": v.json()}, nil
}

func (s *Server) viewsPublish(p *params) (map[string]any, *apiError) {
	raw, err := s.viewArgs("views.publish", p)
	if err != nil {
		return nil, err
	}
	def, err := s.checkView("views.publish", raw, "home")
	if err != nil {
		return nil, err
	}
	user := p.str("user_id")
	if !userID.MatchString(user) {
		s.fail("views.publish: invalid_arguments: user_id %q is not a user ID", user)
		return nil, errorf(errInvalidArguments)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.homes[user]
	if h == nil {
		h = s.newView(user, def)
		s.homes[user] = h
	} else {
		if hash := p.str("hash"); hash != "" && hash != h.hash {
			return nil, errorf("hash_conflict")
		}
		s.replaceView(h, def)
	}
	s.notify()
	return map[string]any{"view": h.json()}, nil
}

// pushView puts v on top of its user's stack; the caller holds s.mu.
func (s *Server) pushView(v *storedView) {
	stack := s.stacks[v.user]
	v.rootID = v.id
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		v.prevID, v.rootID = top.id, top.rootID
	}
	s.stacks[v.user] = append(stack, v)
	s.views[v.id] = v
	s.notify()
}

// replaceView gives v new content and a new hash, keeping what the user
// entered in inputs that did not change; the caller holds s.mu.
func (s *Server) replaceView(v *storedView, def map[string]any) {
	v.def = def
	v.hash = s.newHash()
	v.errors = nil
	v.resetState()
	s.notify()
}

// closeViews pops n views off user's stack; the caller holds s.mu.
func (s *Server) closeViews(user string, n int) {
	stack := s.stacks[user]
	n = min(n, len(stack))
	for _, v := range stack[len(stack)-n:] {
		delete(s.views, v.id)
	}
	s.stacks[user] = stack[:len(stack)-n]
	s.notify()
}
