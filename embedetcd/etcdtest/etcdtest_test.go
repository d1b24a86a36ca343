package etcdtest

import "testing"

var shared Shared

func TestMain(m *testing.M) { VerifyMain(m, &shared) }

func TestSharedAndOwn(t *testing.T) {
	a, b := shared.Server(t), shared.Server(t)
	if a != b || !a.Running() {
		t.Fatalf("Shared.Server: %p and %p (running %v), want one running server", a, b, a.Running())
	}
	own := Start(t)
	if own == a || own.Endpoint() == a.Endpoint() {
		t.Fatal("Start returned the shared server")
	}
}
