package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed
	exitUsage = 2 // bad command line
)

// defaultRegistry is used when neither -registry nor $REGCTL_REGISTRY is set.
const defaultRegistry = "etcd://127.0.0.1:2379"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C kills a regctl stuck in a call at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line's flags.
type options struct {
	registry string
	timeout  time.Duration
	json     bool
	count    int
	verbose  bool
	conn     connFlags

	set map[string]bool // the flags given on the command line
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is regctl: it parses args (without the program name), runs the
// command and returns the exit status. ctx ends a watch (main cancels it on
// SIGINT and SIGTERM) and interrupts any other call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	stdout, stderr = termWriter{stdout}, termWriter{stderr}
	opts, pos, err := parseArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return exitOK
	case err != nil:
		return usageFail(stderr, err)
	}
	if len(pos) == 0 {
		return usageFail(stderr, usagef("no command"))
	}
	if pos[0] == "help" {
		printUsage(stdout)
		return exitOK
	}
	c := &cli{opts: opts, stdout: stdout, stderr: stderr, log: newLogger(stderr, opts.verbose)}
	err = c.dispatch(ctx, pos[0], pos[1:])
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return usageFail(stderr, err)
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "regctl: %v\n", err)
		return ee.code
	default:
		fmt.Fprintf(stderr, "regctl: %v\n", err)
		return exitFail
	}
}

func usageFail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "regctl: %v\nRun 'regctl -h' for usage.\n", err)
	return exitUsage
}

// newFlagSet returns the flag set of every command, writing into o.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("regctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run reports errors and usage itself
	def := os.Getenv("REGCTL_REGISTRY")
	if def == "" {
		def = defaultRegistry
	}
	fs.StringVar(&o.registry, "registry", def, "the registry `URL`: etcd://, consul://, zk:// or file://, or a chain of them separated by '|' ($REGCTL_REGISTRY sets the default)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound on each call to the registry or file")
	fs.BoolVar(&o.json, "json", false, "JSON output (get: Kratos' ServiceInstance layout; watch: one object per line)")
	fs.IntVar(&o.count, "count", 0, "watch: exit after `N` updates (0: until interrupted)")
	fs.BoolVar(&o.verbose, "v", false, "log the backend's debug messages to stderr")
	fs.StringVar(&o.conn.user, "user", "", "etcd user name or ZooKeeper digest user (password: -password-file, else $REGCTL_PASSWORD)")
	fs.StringVar(&o.conn.passwordFile, "password-file", "", "the etcd or ZooKeeper password is in `file`")
	fs.StringVar(&o.conn.token, "token", "", "Consul ACL token (default $CONSUL_HTTP_TOKEN); for status, freeze, unfreeze, release and rollback,\nthe admin handler's bearer token (default $REGCTL_TOKEN). Visible to other users in ps: prefer -token-file or the environment")
	fs.StringVar(&o.conn.tokenFile, "token-file", "", "the token of -token is in `file`")
	fs.BoolVar(&o.conn.tls, "tls", false, "connect with TLS (system roots unless -ca)")
	fs.StringVar(&o.conn.ca, "ca", "", "TLS: PEM `file` of the CAs to trust (implies -tls)")
	fs.StringVar(&o.conn.cert, "cert", "", "TLS: client certificate PEM `file`, with -key (implies -tls)")
	fs.StringVar(&o.conn.key, "key", "", "TLS: client key PEM `file`, with -cert")
	fs.StringVar(&o.conn.serverName, "server-name", "", "TLS: the `name` to check in the server's certificate")
	return fs
}

// parseArgs parses flags anywhere on the command line ("get -json NAME" and
// "-json get NAME" alike) and returns the positional arguments. Everything
// after "--" is positional.
func parseArgs(args []string) (*options, []string, error) {
	o := &options{set: make(map[string]bool)}
	fs := newFlagSet(o)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, usagef("%v", err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.timeout <= 0 {
		return nil, nil, usagef("-timeout must be positive, not %v", o.timeout)
	}
	if o.count < 0 {
		return nil, nil, usagef("-count must not be negative, not %d", o.count)
	}
	if o.conn.token != "" && o.conn.tokenFile != "" {
		return nil, nil, usagef("-token and -token-file: give one")
	}
	return o, pos, nil
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `regctl: list, read and watch the services of a regchain registry (etcd,
Consul, ZooKeeper, a bbolt file), and check the chain's snapshot files.

Usage:
  regctl [flags] list                    service names, one per line
  regctl [flags] get NAME                the service's instances
  regctl [flags] watch [NAME]            print every change of NAME (of every service without NAME)
  regctl [flags] ping                    exit 0 if the registry answers
  regctl [flags] snapshot dump FILE      every entry of a snapshot file
  regctl [flags] snapshot inspect FILE   check a snapshot file and summarize it
  regctl [flags] mirror DEST ORIGIN [SERVICE...]
                                        keep the services (all without SERVICE) mirrored into
                                        the registry URL DEST, marked with ORIGIN, until interrupted

A running process's admin handler (package admin; URL like http://HOST:PORT/admin/):
  regctl [flags] status URL              level, readiness, tiers, services (-json: the raw report)
  regctl [flags] freeze URL              serve every service its last known good state
  regctl [flags] unfreeze URL            back to the tiers
  regctl [flags] release URL SERVICE     let a held drop through, end a rollback
  regctl [flags] rollback URL SERVICE    serve SERVICE its last known good state
  Mutations send a bearer token when one is given: -token-file, -token or $REGCTL_TOKEN.

Manual repair against -registry:
  regctl [flags] register NAME ID ENDPOINT... [version=V] [KEY=VALUE...]
                                         register (or one JSON instance); kept until interrupted,
                                         then deregistered (a file registry keeps it)
  regctl [flags] deregister NAME ID      remove an instance (exit 1 "not found" if absent; for entries whose owner is gone)

Registries (-registry URL, the compact form of package regconfig):
  etcd://HOST:PORT[,HOST:PORT...][?namespace=/microservices&username=U&password=P]
  consul://HOST:PORT[?token=T&dc=DC&scheme=https]    token default: $CONSUL_HTTP_TOKEN
  zk://HOST:PORT[,HOST:PORT...][?root=/microservices&user=U&password=P]
  file:///path/to/registry.db                        opened read-only
  TLS parameters: tls=true, ca=FILE, cert=FILE, key=FILE, server_name=NAME
  (or the -tls, -ca, -cert, -key, -server-name flags; etcd, consul, and
  zk on ZooKeeper's secure client port);
  also ttl=, timeout=, name=, read_only=true.
  A chain: URLs separated by '|', plus static:///peers.json,
  snapshot:///path/snap.db and chain:?name=N elements (quote it).
  With a user name and no password parameter, the password comes from
  -password-file or $REGCTL_PASSWORD. Parameters (password=, token=) and
  flags (-token) are visible to other users in ps: prefer password_file=,
  token_file=, -password-file, -token-file or the environment.

Flags (before or after the command):
`)
	var o options
	fs := newFlagSet(&o)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, `
Exit status:
  0  success (watch: -count reached, or interrupted)
  1  the operation failed: the message names the cause (not found,
     unavailable, invalid, locked, corrupt, unsupported schema, ...)
  2  usage error
  3  status: the process answered and is not ready
  4  freeze/unfreeze/release/rollback: refused (mutations disabled,
     caller not on loopback, missing or wrong token)

Examples:
  regctl -registry etcd://10.0.0.1:2379,10.0.0.2:2379 list
  regctl -registry 'consul://127.0.0.1:8500?dc=eu1' get -json greeter
  regctl -registry zk://127.0.0.1:2181 watch -count 3 greeter
  regctl snapshot inspect /var/lib/app/snapshot.db
  regctl status http://127.0.0.1:9901/admin/
  REGCTL_TOKEN=... regctl freeze http://10.0.0.7:9901/admin/
`)
}

// newLogger returns the logger handed to the backends: warnings (records
// skipped as malformed, lost connections) on stderr, debug with -v.
func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}
