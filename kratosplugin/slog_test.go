package kratosplugin

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/regchain/regchain/internal/testsupport/kratostest"
)

func TestSlogHandlerToKratos(t *testing.T) {
	var kl kratostest.Logger
	sl := slog.New(SlogHandler(&kl)).With("registry", "etcd").WithGroup("g")
	sl.Warn("lease lost", "key", "/a/b", "error", errors.New("boom"))
	sl.Debug("detail")
	got := kl.Lines()
	want := []string{"WARN msg=lease lost registry=etcd g.key=/a/b g.error=boom", "DEBUG msg=detail registry=etcd"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("lines\n got %q\nwant %q", got, want)
	}
}
