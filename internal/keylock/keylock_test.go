package keylock

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSerializesOneKey: holders of one key run one at a time; other keys
// are not held up.
func TestSerializesOneKey(t *testing.T) {
	var l Locks
	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			key := "a"
			if i%2 == 1 {
				key = "b"
			}
			unlock, err := l.Lock(context.Background(), nil, key)
			if err != nil {
				t.Error(err)
				return
			}
			if key == "a" {
				mu.Lock()
				inside++
				most = max(most, inside)
				mu.Unlock()
				runtime.Gosched() // another holder would come in now
				mu.Lock()
				inside--
				mu.Unlock()
			}
			unlock()
		})
	}
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders of one key at once, want 1", most)
	}
	if n := l.held(); n != 0 {
		t.Errorf("%d locks left after every holder released, want 0", n)
	}
}

// TestGivesUp: a waiter leaves on its ctx or on stop, with the matching
// error, and leaves nothing behind; the holder is not disturbed.
func TestGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l Locks
		unlock, err := l.Lock(context.Background(), nil, "k")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := l.Lock(ctx, nil, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Lock with a ctx that ends = %v, want DeadlineExceeded", err)
		}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := l.Lock(context.Background(), stop, "k")
			done <- err
		}()
		synctest.Wait()
		close(stop)
		if err := <-done; !errors.Is(err, ErrStopped) {
			t.Errorf("Lock stopped = %v, want ErrStopped", err)
		}
		unlock()
		if n := l.held(); n != 0 {
			t.Errorf("%d locks left, want 0", n)
		}
		again, err := l.Lock(context.Background(), nil, "k")
		if err != nil {
			t.Fatalf("Lock after release: %v", err)
		}
		again()
	})
}
