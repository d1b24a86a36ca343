//go:build !linux

package kubetest

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
