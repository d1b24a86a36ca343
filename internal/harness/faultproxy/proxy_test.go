package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes lines until the listener closes.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					c.Write(append(s.Bytes(), '\n'))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string, timeout time.Duration) (string, error) {
	t.Helper()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func TestPartitionHeal(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "one", 5*time.Second); err != nil || got != "one\n" {
		t.Fatalf("before partition: %q, %v", got, err)
	}
	p.Partition()
	// The deadline is the assertion: nothing may come back while partitioned.
	if got, err := roundTrip(t, c, "two", 200*time.Millisecond); err == nil {
		t.Fatalf("during partition got %q, want a timeout", got)
	}
	p.Heal()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "two\n" {
		t.Fatalf("after heal: %q, %v; want the held message", line, err)
	}
}

func TestSeverAndRefuse(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(t, c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Sever()
	if _, err := roundTrip(t, c, "y", 5*time.Second); err == nil {
		t.Fatal("severed connection still works")
	}
	p.Refuse(true)
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_, err = roundTrip(t, c2, "z", 5*time.Second)
		c2.Close()
	}
	if err == nil {
		t.Fatal("refusing proxy forwarded a connection")
	}
	p.Refuse(false)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(t, c3, "w", 5*time.Second); err != nil || got != "w\n" {
		t.Fatalf("after refuse off: %q, %v", got, err)
	}
}
