package chain

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

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
