package kratosplugin

import (
	"slices"
	"testing"

	"github.com/regchain/regchain/registry"
)

// A state republished with new but equal Instances reuses the conversion;
// a changed one does not.
func TestReadCacheContent(t *testing.T) {
	ins := []*registry.Instance{
		{ID: "a", Name: "s", Endpoints: []string{"grpc://10.0.0.1:1", "http://10.0.0.1:2"}, Metadata: map[string]string{"k": "v"}},
		{ID: "b", Name: "s", Endpoints: []string{"grpc://10.0.0.2:1"}},
	}
	var c readCache
	cv := convert(ins)
	c.put("s", cv)
	if got := c.get("s", slices.Clone(ins)); got != cv {
		t.Fatal("the same Instances in a new slice: conversion not reused")
	}
	again := registry.CloneInstances(ins)
	got := c.get("s", again)
	if got == nil || &got.tmpl[0] != &cv.tmpl[0] || !sameState(got.from, again) {
		t.Fatal("equal content: conversion not reused, or not keyed by the new Instances")
	}
	if c.get("s", again) != got {
		t.Fatal("the new Instances are not the cached identity")
	}
	reordered := registry.CloneInstances(ins)
	slices.Reverse(reordered[0].Endpoints)
	changed := registry.CloneInstances(ins)
	changed[1].Metadata = map[string]string{"k": "w"}
	for _, s := range [][]*registry.Instance{reordered, changed, ins[:1]} {
		if c.get("s", s) != nil {
			t.Errorf("different state %v: conversion reused", s)
		}
	}
}
