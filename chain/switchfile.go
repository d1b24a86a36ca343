package chain

import (
	"errors"
	"io/fs"
	"os"
)

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
