package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/gatehouse/gatehouse/app"
)

// HomeViewers remembers, for every replica, who opened their App Home.
type HomeViewers interface {
	// AddHomeViewer records that user opened their App Home.
	AddHomeViewer(ctx context.Context, user string, at time.Time) error
	// HomeViewers returns those of users who opened their App Home.
	HomeViewers(ctx context.Context, users []string) ([]string, error)
}

// Homes publishes App Home tabs and remembers who looks at theirs, so a change redraws the
// tabs people actually open rather than every approver's. Who looks is kept in viewers (the
// database), since the replica that redraws a tab is rarely the one its user opened it at;
// known caches those this process has recorded, to record each once.
type Homes struct {
	api     *slack.Client
	now     func() time.Time
	log     *slog.Logger
	viewers HomeViewers

	mu    sync.Mutex
	known map[string]bool
}

// NewHomes returns the App Home publisher.
func NewHomes(api *slack.Client, viewers HomeViewers, now func() time.Time, log *slog.Logger) *Homes {
	return &Homes{api: api, viewers: viewers, now: now, log: log, known: map[string]bool{}}
}

// RefreshHomes redraws the tabs of those users who opened theirs.
func (h *Homes) RefreshHomes(ctx context.Context, users []string, overview func(string) (app.Overview, error)) error {
	looking, err := h.viewers.HomeViewers(ctx, users)
	if err != nil {
		return err
	}
	for _, u := range looking {
		o, err := overview(u)
		if err == nil {
			err = h.publish(ctx, o)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// opened publishes the tab of a user who just opened it, and remembers them.
func (h *Homes) opened(ctx context.Context, o app.Overview) error {
	h.mu.Lock()
	known := h.known[o.User]
	h.mu.Unlock()
	if !known {
		if err := h.viewers.AddHomeViewer(ctx, o.User, h.now()); err != nil {
			return err
		}
		h.mu.Lock()
		h.known[o.User] = true
		h.mu.Unlock()
	}
	return h.publish(ctx, o)
}

func (h *Homes) publish(ctx context.Context, o app.Overview) error {
	view := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: homeBlocks(o, h.now())}}
	return retry(ctx, func() error {
		_, err := h.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: o.User, View: view})
		return err
	})
}

// maxWaitingShown bounds the requests with buttons on a Home tab (two blocks each; a tab
// holds 100 blocks).
const maxWaitingShown = 30

// homeBlocks is the Home tab: grants, pending requests, and the requests waiting on the
// user with Approve and Deny buttons that work exactly as in the channel.
func homeBlocks(o app.Overview, now time.Time) []slack.Block {
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain("Gatehouse")),
		slack.NewSectionBlock(markdown(clipText(overviewMine(o, now), maxSectionText)), nil, nil),
	}
	blocks = append(blocks, extendBlocks(o.Grants)...)
	blocks = append(blocks,
		slack.NewDividerBlock(),
		slack.NewSectionBlock(markdown(fmt.Sprintf("*Waiting on you* (%d)", len(o.Waiting))), nil, nil))
	for i, r := range o.Waiting {
		if i == maxWaitingShown {
			blocks = append(blocks, slack.NewContextBlock("", markdown(fmt.Sprintf("…and %d more: see the approval channels.", len(o.Waiting)-i))))
			break
		}
		approve := slack.NewButtonBlockElement(actionApprove, r.ID, plain("Approve")).WithStyle(slack.StylePrimary)
		deny := slack.NewButtonBlockElement(actionDeny, r.ID, plain("Deny")).WithStyle(slack.StyleDanger)
		blocks = append(blocks,
			slack.NewSectionBlock(markdown(clipText(requestLine(r)+"\n"+quote(r.Reason), maxSectionText)), nil, nil),
			slack.NewActionBlock("decide_"+r.ID, approve, deny))
	}
	if len(o.Others) > 0 {
		blocks = append(blocks, slack.NewDividerBlock(), slack.NewSectionBlock(markdown(clipText(overviewOthers(o), maxSectionText)), nil, nil))
	}
	return blocks
}

// overviewText is /access list's answer: the same overview as the Home tab, in words.
func overviewText(o app.Overview, now time.Time) string {
	text := overviewMine(o, now) + "\n\n*Waiting on you*"
	if len(o.Waiting) == 0 {
		text += "\nNothing."
	}
	for _, r := range o.Waiting {
		text += "\n• " + requestLine(r)
	}
	if len(o.Others) > 0 {
		text += "\n\n" + overviewOthers(o)
	}
	return clipText(text, maxMessageText)
}

// overviewMine lists the user's grants and pending requests.
func overviewMine(o app.Overview, now time.Time) string {
	var b strings.Builder
	b.WriteString("*Your active grants*")
	if len(o.Grants) == 0 {
		b.WriteString("\nNone.")
	}
	for _, g := range o.Grants {
		fmt.Fprintf(&b, "\n• *%s* until %s (ends in %s) — `%s`", g.Role, slackDate(g.ExpiresAt),
			app.FormatDuration(g.ExpiresAt.Sub(now).Round(time.Minute)), g.ID)
	}
	b.WriteString("\n\n*Your pending requests*")
	if len(o.Pending) == 0 {
		b.WriteString("\nNone.")
	}
	for _, r := range o.Pending {
		fmt.Fprintf(&b, "\n• *%s* for %s — %d of %d approvals — `%s`", r.Role, app.FormatDuration(r.Duration),
			len(r.Approvers()), r.ApprovalsRequired, r.ID)
	}
	return b.String()
}

// overviewOthers lists, for admins, every other pending request.
func overviewOthers(o app.Overview) string {
	text := "*Other pending requests* (admin view)"
	for _, r := range o.Others {
		text += "\n• " + requestLine(r)
	}
	return text
}

// requestLine sums up a request in one line.
func requestLine(r app.Request) string {
	return fmt.Sprintf("%s asks for *%s* for %s — %d of %d approvals — `%s`", principalName(r.Requester), r.Role,
		app.FormatDuration(r.Duration), len(r.Approvers()), r.ApprovalsRequired, r.ID)
}

// onHomeOpened publishes the Home tab of the user who opened it.
func (b *Bot) onHomeOpened(ctx context.Context, teamID string, e *slackevents.AppHomeOpenedEvent) {
	if !b.sameTeam(teamID) || e.Tab != "home" {
		return
	}
	o, err := b.svc.Overview(ctx, e.User)
	if err == nil {
		err = b.homes.opened(ctx, o)
	}
	if err != nil {
		b.log.Error("publishing App Home failed", "user", e.User, "err", err)
	}
}

// onList answers /access list.
func (b *Bot) onList(ctx context.Context, cmd slack.SlashCommand) {
	o, err := b.svc.Overview(ctx, cmd.UserID)
	if err != nil {
		b.log.Error("listing failed", "user", cmd.UserID, "err", err)
		b.reply(ctx, cmd.ResponseURL, userMessage(err))
		return
	}
	text := overviewText(o, b.homes.now())
	blocks := append([]slack.Block{slack.NewSectionBlock(markdown(text), nil, nil)}, extendBlocks(o.Grants)...)
	b.replyBlocks(ctx, cmd.ResponseURL, text, blocks)
}
