package grpcbalancer

import (
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// failed reports whether an RPC's result counts against its endpoint
// (rule 7 of package locality/nearest, for gRPC). ok is false for results
// that say nothing of it: the call was never sent (grpc-go reports a pick
// whose connection was not ready as a zero DoneInfo) or the client
// cancelled it.
func failed(di balancer.DoneInfo) (fail, ok bool) {
	if di.Err == nil {
		return false, di.BytesReceived
	}
	switch status.Code(di.Err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.DataLoss:
		return true, true
	case codes.Canceled:
		return false, false
	}
	return false, di.BytesReceived // the server answered with an application error
}
