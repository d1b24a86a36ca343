package freeport

import (
	"net"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Ports are below the ephemeral range, distinct, and usable.
func TestPorts(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := range 50 {
		pick := TCP
		if i%2 == 1 {
			pick = TCPUDP
		}
		p, err := pick()
		if err != nil {
			t.Fatal(err)
		}
		if p >= low || p < 1024 {
			t.Fatalf("port %d outside [1024, %d)", p, low)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not usable: %v", p, err)
		}
		ln.Close()
	}
}
