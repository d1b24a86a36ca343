package consultest

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the agent if the test binary dies without
// stopping it (a panic, a timeout kill).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
