package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	mreg "go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regchain/regchain/registry"
)

// metaT is the metadata key holding the time (Unix nanoseconds) an
// instance's record was last written by a change; 0 when filled.
const metaT = "bench-t"

// layout is how one side's records sit in etcd.
type layout struct {
	name   string
	record func(svc, inst int, t int64) (key, val string)
}

var layouts = []layout{
	{name: "regchain", record: regchainRecord},
	{name: "go-micro", record: microRecord},
}

var layoutOf = map[string]layout{"regchain": layouts[0], "go-micro": layouts[1]}

func svcName(s int) string   { return fmt.Sprintf("svc-%05d", s) }
func instID(i int) string    { return fmt.Sprintf("i-%02d", i) }
func addr(s, i int) string   { return fmt.Sprintf("10.%d.%d.%d:9000", s/256%256, s%256, i) }
func zoneOf(s int) string    { return fmt.Sprintf("z%d", s%3) }
func stamp(t int64) string   { return strconv.FormatInt(t, 10) }
func unstamp(v string) int64 { t, _ := strconv.ParseInt(v, 10, 64); return t }

// regchainRecord is what regchain's etcd adapter writes (Kratos' layout).
func regchainRecord(s, i int, t int64) (string, string) {
	in := &registry.Instance{
		ID: instID(i), Name: svcName(s), Version: "v1",
		Metadata:  map[string]string{"zone": zoneOf(s), "weight": "10", metaT: stamp(t)},
		Endpoints: []string{"grpc://" + addr(s, i), "http://" + addr(s, i)},
	}
	b, err := registry.Marshal(in)
	if err != nil {
		panic(err)
	}
	return "/microservices/" + in.Name + "/" + in.ID, string(b)
}

// microRecord is what go-micro's etcd plugin writes: one node per record,
// under /micro/registry/<service>/<node>.
func microRecord(s, i int, t int64) (string, string) {
	svc := &mreg.Service{
		Name: svcName(s), Version: "v1",
		Metadata: map[string]string{"zone": zoneOf(s)},
		Nodes: []*mreg.Node{{
			Id: instID(i), Address: addr(s, i),
			Metadata: map[string]string{"weight": "10", "registry": "etcd", "protocol": "grpc", metaT: stamp(t)},
		}},
	}
	b, err := json.Marshal(svc)
	if err != nil {
		panic(err)
	}
	return "/micro/registry/" + svc.Name + "/" + instID(i), string(b)
}

// fill writes every record of l, 100 to a transaction.
func fill(cli *clientv3.Client, l layout) error {
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		ops = ops[:0]
		return err
	}
	for s := range *services {
		for i := range *perSvc {
			k, v := l.record(s, i, 0)
			ops = append(ops, clientv3.OpPut(k, v))
			if len(ops) == 100 {
				if err := flush(); err != nil {
					return fmt.Errorf("fill %s: %w", l.name, err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("fill %s: %w", l.name, err)
	}
	return nil
}
