package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/polling"
	"sigs.k8s.io/cli-utils/pkg/kstatus/polling/aggregator"
	"sigs.k8s.io/cli-utils/pkg/kstatus/polling/collector"
	"sigs.k8s.io/cli-utils/pkg/kstatus/polling/event"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/cli-utils/pkg/object"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

type waitAnswer struct {
	Status  string  `json:"status"`
	Message string  `json:"message"`
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds"`
}

// runWait polls one object with kstatus' status poller until the aggregate status is Current (or, with
// --fail-fast, Failed), as Flux's kustomize-controller does for `wait: true`; it prints the last status.
// It exits 0 when the wait ended on Current, 1 otherwise (Failed with --fail-fast, or the timeout).
func runWait(args []string) error {
	flags := flag.NewFlagSet("wait", flag.ContinueOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig file")
	namespace := flags.String("namespace", "", "namespace of the object")
	group := flags.String("group", "", "API group of the object")
	kind := flags.String("kind", "", "kind of the object")
	name := flags.String("name", "", "name of the object")
	timeout := flags.Duration("timeout", 5*time.Minute, "give up after this long")
	interval := flags.Duration("interval", 2*time.Second, "poll interval")
	failFast := flags.Bool("fail-fast", false, "stop as soon as the object is Failed")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" || *kind == "" || *name == "" {
		return errors.New("wait: --kubeconfig, --kind and --name are required")
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	poller, err := newPoller(config)
	if err != nil {
		return err
	}
	id := object.ObjMetadata{
		GroupKind: schema.GroupKind{Group: *group, Kind: *kind}, Namespace: *namespace, Name: *name,
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	started := time.Now()
	set := object.ObjMetadataSet{id}
	statuses := collector.NewResourceStatusCollector(set)
	done := false
	finished := statuses.ListenWithObserver(
		poller.Poll(ctx, set, polling.PollOptions{PollInterval: *interval}),
		collector.ObserverFunc(func(c *collector.ResourceStatusCollector, _ event.Event) {
			var all []*event.ResourceStatus
			for _, rs := range c.ResourceStatuses {
				all = append(all, rs)
			}
			aggregate := aggregator.AggregateStatus(all, status.CurrentStatus)
			if aggregate == status.CurrentStatus || (*failFast && aggregate == status.FailedStatus) {
				done = aggregate == status.CurrentStatus
				cancel()
			}
		}),
	)
	<-finished
	answer := waitAnswer{Status: status.UnknownStatus.String(), Done: done, Seconds: time.Since(started).Seconds()}
	if rs := statuses.ResourceStatuses[id]; rs != nil {
		answer.Status, answer.Message = rs.Status.String(), rs.Message
	}
	encoded, err := json.Marshal(answer)
	if err != nil {
		return err
	}
	fmt.Println(string(encoded))
	if !done {
		os.Exit(1)
	}
	return nil
}

func newPoller(config *rest.Config) (*polling.StatusPoller, error) {
	httpClient, err := rest.HTTPClientFor(config)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(config, httpClient)
	if err != nil {
		return nil, err
	}
	reader, err := client.New(config, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, err
	}
	return polling.NewStatusPoller(reader, mapper, polling.Options{}), nil
}
