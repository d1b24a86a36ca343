// Package microetcd checks that a go-micro fleet on the go-micro etcd
// plugin (github.com/go-micro/plugins/v4/registry/etcd v1.2.0) can move to
// regchain one node at a time: regchain's etcd adapter with
// microplugin.EtcdCodec, served to go-micro through microplugin, and the plugin
// see each other's nodes, in both directions, reads and watches.
package microetcd
