package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/regchain/regchain/adapters/file"
	"github.com/regchain/regchain/registry"
)

// describe returns err prefixed with the operation and the kind of failure
// ("get \"greeter\" on etcd://...: not found: ..."), plus a hint for the
// operator where there is an obvious next step.
func describe(ctx context.Context, op string, err error) error {
	k := kind(err)
	if ctx.Err() != nil {
		k = "interrupted"
	}
	msg := fmt.Sprintf("%s: %s: %v", op, k, err)
	if h := hint(err); h != "" {
		msg += "\n  hint: " + h
	}
	return errors.New(msg)
}

// kind names the sentinel err wraps. The file package's errors come first:
// they are wrapped together with the registry sentinel that classifies them.
func kind(err error) string {
	switch {
	case errors.Is(err, file.ErrLocked):
		return "locked"
	case errors.Is(err, file.ErrSchema):
		return "unsupported schema"
	case errors.Is(err, file.ErrWrongKind):
		return "wrong kind of file"
	case errors.Is(err, file.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, file.ErrUnsafe):
		return "unsafe file"
	case errors.Is(err, registry.ErrNotFound):
		return "not found"
	case errors.Is(err, registry.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, registry.ErrInvalid):
		return "invalid"
	case errors.Is(err, registry.ErrClosed):
		return "closed"
	case errors.Is(err, registry.ErrStopped):
		return "stopped"
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return "failed"
}

func hint(err error) string {
	switch {
	case errors.Is(err, file.ErrLocked):
		return "another process has the file open (a running service?): stop it, or inspect a copy of the file"
	case errors.Is(err, file.ErrSchema):
		return "the file was written by a newer regchain, or is not a regchain file: use a newer regctl"
	case errors.Is(err, file.ErrWrongKind):
		return "snapshot commands read a chain's snapshot file; read a file registry with -registry file://PATH list"
	case errors.Is(err, file.ErrCorrupt):
		return "restore the file from a backup or remove it; a chain starts without a snapshot"
	case errors.Is(err, file.ErrUnsafe):
		return "another user could change the file: keep it in a directory only this user can write, owned by this user, not behind a symbolic link"
	}
	return ""
}
