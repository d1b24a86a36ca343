// Package freeport hands out loopback ports for the servers the tests start
// and restart (etcd, ZooKeeper, Consul) on the same port.
//
// A port a ":0" listener got lies in the kernel's ephemeral range: once the
// server stops, the kernel may give it to any outgoing connection or ":0"
// listener of any process, and the restart fails with "address already in
// use" (it did, on a loaded CI run). The ports handed out here lie below
// that range, where the kernel assigns nothing by itself: a stopped
// server's port stays free for its restart unless another process picks
// the same one explicitly. Picks are random and checked by listening, and a
// process never hands out one port twice.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

const span = 16000 // ports tried below the ephemeral range

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// TCP returns a loopback port free for TCP.
func TCP() (int, error) { return pick(false) }

// TCPUDP returns a loopback port free for both TCP and UDP.
func TCPUDP() (int, error) { return pick(true) }

func pick(udp bool) (int, error) {
	low := ephemeralLow()
	if low-span < 1024 {
		return anyPort(udp) // an unusual range: fall back to the kernel's pick
	}
	mu.Lock()
	defer mu.Unlock()
	for range 500 {
		p := low - span + rand.IntN(span)
		if given[p] || !free(p, udp) {
			continue
		}
		given[p] = true
		return p, nil
	}
	return 0, errors.New("freeport: no free port found below the ephemeral range")
}

func free(p int, udp bool) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	if udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		pc.Close()
	}
	return true
}

func anyPort(udp bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if free(p, udp) {
			return p, nil
		}
	}
	return 0, errors.New("freeport: no free port found")
}

// ephemeralLow returns the low end of the kernel's ephemeral port range
// (Linux's default, 32768, where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
