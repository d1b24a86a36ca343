package microplugin

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	mreg "go-micro.dev/v4/registry"

	"github.com/regchain/regchain/registry"
)

// inst returns an instance of svc; spec is "id@version" with an optional
// "+tag" that changes its node metadata.
func inst(svc, spec string) *registry.Instance {
	spec, tag, _ := strings.Cut(spec, "+")
	id, version, _ := strings.Cut(spec, "@")
	md := map[string]string{MetadataKeyService: `{"svc":"` + svc + `"}`}
	if tag != "" {
		md["tag"] = tag
	}
	return &registry.Instance{ID: id, Name: svc, Version: version, Metadata: md, Endpoints: []string{"micro://10.0.0.1:" + fmt.Sprint(len(id))}}
}

func state(svc string, specs ...string) *registry.Update {
	u := &registry.Update{Service: svc, Source: "memory"}
	for _, s := range specs {
		u.Instances = append(u.Instances, inst(svc, s))
	}
	return u
}

// describe renders results as "action svc@version [ids]".
func describe(rs []*mreg.Result) []string {
	var out []string
	for _, r := range rs {
		ids := make([]string, len(r.Service.Nodes))
		for i, n := range r.Service.Nodes {
			ids[i] = n.Id
		}
		out = append(out, fmt.Sprintf("%s %s@%s %v", r.Action, r.Service.Name, r.Service.Version, ids))
	}
	return out
}

func TestDiff(t *testing.T) {
	type step struct {
		u    *registry.Update
		want []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty first state says nothing", []step{
			{state("s"), nil},
			{state("s", "a@1"), []string{"create s@1 [a]"}},
		}},
		{"first state creates every node, grouped by version", []step{
			{state("s", "b@1", "a@1", "c@2"), []string{"create s@1 [a b]", "create s@2 [c]"}},
		}},
		{"simultaneous create, update and delete in one state", []step{
			{state("s", "a@1", "b@1", "c@1"), []string{"create s@1 [a b c]"}},
			{state("s", "a@1+new", "c@1", "d@1", "e@1"), []string{"create s@1 [d e]", "update s@1 [a]", "delete s@1 [b]"}},
		}},
		{"unchanged state says nothing", []step{
			{state("s", "a@1"), []string{"create s@1 [a]"}},
			{state("s", "a@1"), nil},
		}},
		{"version change is delete from old and create in new", []step{
			{state("s", "a@1", "b@1"), []string{"create s@1 [a b]"}},
			{state("s", "a@2", "b@1"), []string{"create s@2 [a]", "delete s@1 [a]"}},
		}},
		{"emptied service deletes every node, then is forgotten", []step{
			{state("s", "a@1", "b@2"), []string{"create s@1 [a]", "create s@2 [b]"}},
			{state("s"), []string{"delete s@1 [a]", "delete s@2 [b]"}},
			{state("s", "a@1"), []string{"create s@1 [a]"}},
		}},
		{"watch-all: services diffed separately", []step{
			{state("x", "a@1"), []string{"create x@1 [a]"}},
			{state("y", "a@1", "b@1"), []string{"create y@1 [a b]"}},
			{state("x", "a@1", "b@1"), []string{"create x@1 [b]"}},
			{state("y", "b@1"), []string{"delete y@1 [a]"}},
			{state("x"), []string{"delete x@1 [a b]"}},
		}},
		{"unmappable instances are ignored", []step{
			{&registry.Update{Service: "s", Instances: []*registry.Instance{
				inst("s", "a@1"), {ID: "b", Name: "s", Endpoints: []string{"/nohost"}}, nil, inst("other", "c@1"),
			}}, []string{"create s@1 [a]"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d differ
			for i, s := range tt.steps {
				got, _ := d.apply(s.u)
				if g := describe(got); !reflect.DeepEqual(g, s.want) {
					t.Fatalf("step %d: got %q, want %q", i, g, s.want)
				}
			}
		})
	}
}

// Results carry what a go-micro consumer needs: the service's descriptors,
// the node's metadata and, for deletes, the node that went away.
func TestDiffResultContent(t *testing.T) {
	svc := greeter()
	ins, err := ToInstances(svc)
	if err != nil {
		t.Fatal(err)
	}
	var d differ
	rs, _ := d.apply(&registry.Update{Service: svc.Name, Instances: ins})
	if len(rs) != 1 || rs[0].Action != "create" {
		t.Fatalf("got %q, want one create", describe(rs))
	}
	if want := sortedNodes(svc); !reflect.DeepEqual(rs[0].Service, want) {
		t.Errorf("create result service = %+v, want %+v", rs[0].Service, want)
	}
	rs, _ = d.apply(&registry.Update{Service: svc.Name, Instances: ins[:1]})
	if len(rs) != 1 || rs[0].Action != "delete" || len(rs[0].Service.Nodes) != 1 {
		t.Fatalf("got %q, want one delete of one node", describe(rs))
	}
	if got, want := rs[0].Service.Nodes[0], svc.Nodes[1]; !reflect.DeepEqual(got, want) {
		t.Errorf("deleted node = %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(rs[0].Service.Endpoints, svc.Endpoints) {
		t.Errorf("delete result lost the endpoint descriptors")
	}
}

// Nodes of one version whose descriptors differ (a rolling deploy without a
// version bump) each keep their own in watch results.
func TestDiffKeepsEachNodesDescriptors(t *testing.T) {
	a, b := inst("s", "a@1"), inst("s", "b@1")
	b.Metadata[MetadataKeyService] = `{"build":"2"}`
	var d differ
	rs, _ := d.apply(&registry.Update{Service: "s", Instances: []*registry.Instance{a, b}})
	// Groups of one version are ordered by their encoded descriptors.
	if got := describe(rs); !reflect.DeepEqual(got, []string{"create s@1 [b]", "create s@1 [a]"}) {
		t.Fatalf("got %q, want one create per descriptor set", got)
	}
	if rs[0].Service.Metadata["build"] != "2" || rs[1].Service.Metadata["svc"] != "s" {
		t.Errorf("descriptors mixed up: %v, %v", rs[0].Service.Metadata, rs[1].Service.Metadata)
	}
}
