package chain

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// extOptions are the options of the operator features: the switch file,
// the static tiers and the degradation level.
type extOptions struct {
	switchFile  string
	switchEvery time.Duration
	static      []string
}

// extState is the state of the operator features and the latency
// histograms.
type extState struct {
	level levelState
	// switchOn is whether the switch file existed at the last poll; it is
	// only touched by the ops loop.
	switchOn bool
}

// levelInterval is how often the ops loop computes the degradation level,
// so that a change is logged and exported even when nobody asks.
const levelInterval = time.Second

// WithSwitchFile makes the chain watch path, an operator's switch: while
// the file exists the chain is frozen (Freeze(true): every service is
// served its last known good state), and when it is removed the chain is
// unfrozen. Its content is ignored. The chain looks for the file when it
// starts and then every WithSwitchFileInterval. Only the file's appearing
// and disappearing switch: a Freeze call in between (from the admin
// handler, say) stands until the file next appears or disappears. An error
// other than "does not exist" (a permission problem) is logged and changes
// nothing. An operator can flip a whole fleet with a config-management
// push that creates or removes the file.
func WithSwitchFile(path string) Option { return func(o *options) { o.ext.switchFile = path } }

// WithSwitchFileInterval sets how often the switch file is looked for. If
// zero, 1s.
func WithSwitchFileInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.ext.switchEvery = d
		}
	}
}

// WithStaticTiers names the chain's static tiers (hand-written instance
// lists): a service served by one puts the chain at degradation level L2.
// A tier named "static" is always one.
func WithStaticTiers(names ...string) Option {
	return func(o *options) { o.ext.static = append(o.ext.static, names...) }
}

// startExt starts the operator features' loop. It is called once by New,
// after the tiers' loops are started. A switch file present at start
// freezes the chain before New returns.
func (c *Chain) startExt() {
	if c.opts.ext.switchFile != "" {
		c.pollSwitchFile()
	}
	c.spawn(c.extLoop)
}

// extLoop computes the degradation level every levelInterval and looks for
// the switch file every WithSwitchFileInterval.
func (c *Chain) extLoop() {
	lvl := time.NewTicker(levelInterval)
	defer lvl.Stop()
	var sw <-chan time.Time
	if c.opts.ext.switchFile != "" {
		every := c.opts.ext.switchEvery
		if every <= 0 {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		sw = t.C
	}
	c.Degradation()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-lvl.C:
			c.Degradation()
		case <-sw:
			c.pollSwitchFile()
		}
	}
}

// pollSwitchFile freezes or unfreezes the chain when the switch file has
// appeared or disappeared since the last poll.
func (c *Chain) pollSwitchFile() {
	path := c.opts.ext.switchFile
	_, err := os.Stat(path)
	var on bool
	switch {
	case err == nil:
		on = true
	case errors.Is(err, fs.ErrNotExist):
		on = false
	default:
		c.log.Error("chain: switch file: cannot tell whether it exists; nothing changed", "path", path, "error", err)
		return
	}
	if on == c.ext.switchOn {
		return
	}
	c.ext.switchOn = on
	if on {
		c.log.Warn("chain: switch file present: freezing", "path", path)
	} else {
		c.log.Warn("chain: switch file removed: unfreezing", "path", path)
	}
	c.Freeze(on)
	c.Degradation()
}
