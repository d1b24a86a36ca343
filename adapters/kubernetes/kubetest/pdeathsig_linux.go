package kubetest

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the API server if the process that
// started it dies without stopping it (a panic, a test timeout's kill).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
