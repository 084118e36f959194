package tray

import (
	"context"
	"sync"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

// need names the control API answers the menu is drawn from, as a set.
type need uint8

const (
	needSheds need = 1 << iota
	needPending
	needMade
	needStatus
	// needRedraw asks nothing again: the menu is drawn from the last
	// answers with the latest provisioning steps.
	needRedraw
	needAll = needSheds | needPending | needMade | needStatus
)

// countersOnly is what answered requests change: an attachment's request
// counters, and the audit log's health when a line failed.
const countersOnly = needSheds | needStatus

// throttled is what redraws at most once per counterEvery.
const throttled = countersOnly | needRedraw

// counterEvery is the least time between two redraws that only counters
// or steps asked for: a busy shed answers hundreds of requests a second,
// an image build prints thousands of lines, and the menu shows them in
// tooltips and one step line.
const counterEvery = time.Second

// eventNeeds says what each event can have changed. Reading the made sheds
// again has spuff-app ask every cloud provider's API for its machines, so
// it is asked only when a shed's lifecycle state moves: never for an
// answered request, and not for a provisioning step within a state, whose
// words the event carries itself. It remembers each shed's state as the
// events told it.
type eventNeeds struct {
	state map[string]string
}

func (n *eventNeeds) of(e api.Event) need {
	switch e.Kind {
	case api.EventRequest:
		return countersOnly
	case api.EventShed:
		return needSheds
	case api.EventApproval:
		return needPending
	case api.EventProvision:
		if last, ok := n.state[e.Shed]; ok && last == e.State {
			return needRedraw
		}
		if n.state == nil {
			n.state = map[string]string{}
		}
		n.state[e.Shed] = e.State
	case api.EventOpen:
		// A reconnect may have missed anything.
		clear(n.state)
	}
	// Idle changes, and kinds this build does not know.
	return needAll
}

// wants gathers what events and clicks asked for until a redraw takes it.
type wants struct {
	mu sync.Mutex
	n  need
}

func (w *wants) add(n need) {
	w.mu.Lock()
	w.n |= n
	w.mu.Unlock()
}

func (w *wants) take() need {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n
	w.n = 0
	return n
}

// wait is how long a redraw of n must wait after one at last: none,
// unless n is throttled only and the last redraw was under counterEvery ago.
func wait(n need, last, now time.Time) time.Duration {
	if n&^throttled != 0 || last.IsZero() {
		return 0
	}
	return max(0, counterEvery-now.Sub(last))
}

// answers keeps the last answer to each of the menu's questions, and the
// error each last gave, so that a redraw asks again only what it needs.
type answers struct {
	sheds   []api.Attachment
	pending []api.PendingItem
	made    *api.MadeList
	madeAt  time.Time
	status  *api.Status
	errs    [4]error // by bit of need
}

// refresh asks c what n names and returns the view of every last answer.
func (a *answers) refresh(ctx context.Context, c Client, n need, steps map[string]string) View {
	if n&needSheds != 0 {
		a.sheds, a.errs[0] = c.Sheds(ctx)
	}
	if n&needPending != 0 {
		a.pending, a.errs[1] = c.Pending(ctx)
	}
	if n&needMade != 0 {
		a.made, a.errs[2] = c.Made(ctx)
		a.madeAt = time.Now()
	}
	if n&needStatus != 0 {
		a.status, a.errs[3] = c.Status(ctx)
	}
	v := View{Sheds: a.sheds, Pending: a.pending, Steps: steps, Read: a.madeAt}
	for _, err := range a.errs {
		if err != nil {
			v.Err = err
			break
		}
	}
	if a.made != nil {
		v.Made = a.made.Sheds
	}
	if a.status != nil {
		v.Audit, v.Fence = a.status.Audit, a.status.Fence
	}
	return v
}
